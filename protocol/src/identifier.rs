//! Subscriber identifiers (N): short, typed on a TV remote, normalised before any use so that
//! `Alice.Smith ` and `alice.smith` are the same subscriber everywhere (KDF salt, records,
//! audit hashes).

use core::fmt;
use thiserror::Error;

/// Shortest accepted identifier, in characters.
pub const MIN_LEN: usize = 3;
/// Longest accepted identifier, in characters (fits a one-byte length on the wire).
pub const MAX_LEN: usize = 32;

/// Why an identifier was refused; the text is fit to show on screen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// Fewer than [`MIN_LEN`] characters.
    #[error("the identifier needs at least {MIN_LEN} characters")]
    TooShort,
    /// More than [`MAX_LEN`] characters.
    #[error("the identifier can have at most {MAX_LEN} characters")]
    TooLong,
    /// A character outside `a-z 0-9 . - _`.
    #[error("the identifier may only use letters, digits, '.', '-' and '_'")]
    BadCharacter,
    /// Starts or ends with punctuation.
    #[error("the identifier must start and end with a letter or a digit")]
    BadEdge,
}

/// A validated, normalised subscriber identifier.
///
/// Normalisation: surrounding whitespace removed, ASCII letters lowercased. Accepted
/// characters: `a-z`, `0-9`, `.`, `-`, `_`; first and last characters alphanumeric; 3 to 32
/// characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    /// Normalises and validates `input`.
    pub fn parse(input: &str) -> Result<Self, IdentifierError> {
        let normalised = input.trim().to_ascii_lowercase();
        Self::validate(&normalised)?;
        Ok(Self(normalised))
    }

    /// Accepts only bytes that are already normalised (as found on the wire): a sender that
    /// skipped normalisation is refused rather than silently mapped to someone else.
    pub fn from_wire(bytes: &[u8]) -> Result<Self, IdentifierError> {
        let s = core::str::from_utf8(bytes).map_err(|_| IdentifierError::BadCharacter)?;
        Self::validate(s)?;
        Ok(Self(s.to_owned()))
    }

    fn validate(s: &str) -> Result<(), IdentifierError> {
        if s.len() < MIN_LEN {
            return Err(IdentifierError::TooShort);
        }
        if s.len() > MAX_LEN {
            return Err(IdentifierError::TooLong);
        }
        let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-_".contains(&c);
        if !s.bytes().all(ok) {
            return Err(IdentifierError::BadCharacter);
        }
        let edge = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !edge(s.bytes().next()) || !edge(s.bytes().last()) {
            return Err(IdentifierError::BadEdge);
        }
        Ok(())
    }

    /// The normalised identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised identifier as bytes (what every derivation uses).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({:?})", self.0)
    }
}

impl core::str::FromStr for Identifier {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let id = Identifier::parse("  Alice.Smith ").expect("valid");
        assert_eq!(id.as_str(), "alice.smith");
    }

    #[test]
    fn refuses_bad_input_with_reason() {
        assert_eq!(Identifier::parse("ab"), Err(IdentifierError::TooShort));
        assert_eq!(
            Identifier::parse(&"a".repeat(33)),
            Err(IdentifierError::TooLong)
        );
        assert_eq!(
            Identifier::parse("al ice"),
            Err(IdentifierError::BadCharacter)
        );
        assert_eq!(
            Identifier::parse("alïce"),
            Err(IdentifierError::BadCharacter)
        );
        assert_eq!(Identifier::parse(".alice"), Err(IdentifierError::BadEdge));
        assert_eq!(Identifier::parse("alice-"), Err(IdentifierError::BadEdge));
        assert!(Identifier::parse("a_b-c.9").is_ok());
    }

    #[test]
    fn wire_form_must_be_normalised() {
        assert!(Identifier::from_wire(b"alice").is_ok());
        assert!(Identifier::from_wire(b"Alice").is_err());
        assert!(Identifier::from_wire(&[0xff, 0xfe, 0x41]).is_err());
    }
}
