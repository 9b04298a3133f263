//! Enrollment codes: 12 digits (11 random + a Luhn check digit) shown as `1234-5678-9012`,
//! easy to type with a remote's digit keys; the check digit catches a mistyped digit or a
//! swap of two neighbours on the box, before the server counts an attempt.

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

/// The Luhn check digit of `payload` (digits 0-9).
pub fn luhn_digit(payload: &[u8]) -> u8 {
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
    fn check_digit_and_format() {
        // Known Luhn example: 7992739871 has check digit 3.
        assert_eq!(luhn_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        assert_eq!(normalise("0000 0000 0000").as_deref(), Ok("000000000000"));
        assert_eq!(normalise("0000-0000-0001"), Err(CodeError::Checksum));
        assert_eq!(normalise("1234"), Err(CodeError::Length));
        assert_eq!(normalise("1234-5678-901x"), Err(CodeError::Length));
        assert_eq!(display("123456789012"), "1234-5678-9012");
    }
}
