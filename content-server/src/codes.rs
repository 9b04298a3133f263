//! Enrollment codes: made here, checked by the format shared with the box
//! ([`stb_protocol::code`]).

use stb_protocol::enrollment_code::luhn_digit;
pub use stb_protocol::enrollment_code::{CodeError, LEN, display, normalise};

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
    }
}
