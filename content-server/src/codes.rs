//! Enrollment codes: 12 digits (11 random + a Luhn check digit) shown as `1234-5678-9012`,
//! easy to type with a remote's digit keys; the check digit catches a mistyped digit or a
//! swap of two neighbours before the server counts an attempt.

use thiserror::Error;

/// Digits in a code.
pub const LEN: usize = 12;

/// A code that cannot be right.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodeError {
    /// Not 12 digits once spaces and dashes are removed.
    #[error("an enrollment code has 12 digits")]
    Length,
    /// The check digit does not match: a typo.
    #[error("this code is mistyped (check digit)")]
    Checksum,
}

fn luhn_digit(payload: &[u8]) -> u8 {
    // Luhn: from the right, double every second digit of the payload (the check digit will
    // sit to the right of it).
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// A fresh random code, as 12 digits without separators.
pub fn generate() -> String {
    let mut digits = Vec::with_capacity(LEN);
    while digits.len() < LEN - 1 {
        for b in stb_protocol::random_array::<16>() {
            // Rejection sampling keeps every digit uniform.
            if b < 250 && digits.len() < LEN - 1 {
                digits.push(b % 10);
            }
        }
    }
    digits.push(luhn_digit(&digits));
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// `123456789012` -> `1234-5678-9012`.
pub fn display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// Strips spaces and dashes and checks the length and the check digit.
pub fn normalise(input: &str) -> Result<String, CodeError> {
    let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() != LEN || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::Length);
    }
    let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    if luhn_digit(&values[..LEN - 1]) != values[LEN - 1] {
        return Err(CodeError::Checksum);
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_validate_and_typos_do_not() {
        for _ in 0..200 {
            let code = generate();
            assert_eq!(normalise(&display(&code)).as_deref(), Ok(code.as_str()));
            let mut typo = code.clone().into_bytes();
            typo[3] = b'0' + (typo[3] - b'0' + 1) % 10;
            assert_eq!(
                normalise(&String::from_utf8(typo).expect("ascii")),
                Err(CodeError::Checksum)
            );
        }
        assert_eq!(normalise("1234"), Err(CodeError::Length));
        assert_eq!(normalise("1234-5678-901x"), Err(CodeError::Length));
        // Known Luhn example: 7992739871 has check digit 3.
        assert_eq!(luhn_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
    }
}
