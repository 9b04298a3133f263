//! Passwords (P): held in zeroizing memory, checked against the registration policy.

use crate::identifier::Identifier;
use core::fmt;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Minimum length in characters.
pub const MIN_CHARS: usize = 8;
/// Minimum number of characters that are neither letters nor digits.
pub const MIN_SYMBOLS: usize = 2;
/// Minimum zxcvbn score (0-4); 3 means "more than 10^8 guesses".
pub const MIN_SCORE: u8 = 3;

/// A password typed by the subscriber. Wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Password(String);

impl Password {
    /// Takes ownership of the typed text.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The UTF-8 bytes fed to the KDF.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Number of characters typed (not secret: the UI shows as many dots).
    pub fn char_count(&self) -> usize {
        self.0.chars().count()
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a new password was refused. The text is short enough for a TV screen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Shorter than [`MIN_CHARS`].
    #[error("use at least {MIN_CHARS} characters")]
    TooShort,
    /// Fewer than [`MIN_SYMBOLS`] non-alphanumeric characters.
    #[error("use at least {MIN_SYMBOLS} symbols such as ! ? # or *")]
    TooFewSymbols,
    /// The identifier appears in the password.
    #[error("do not put your identifier in the password")]
    ContainsIdentifier,
    /// The strength estimator rated it too easy to guess.
    #[error("too easy to guess{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    TooWeak {
        /// zxcvbn score, 0 to 4.
        score: u8,
        /// zxcvbn's warning, when it has one.
        hint: Option<String>,
    },
    /// The two entries differ.
    #[error("the two passwords differ")]
    Mismatch,
}

/// Strength as a UI meter shows it: the zxcvbn score (0-4).
pub fn strength(password: &Password, identifier: Option<&Identifier>) -> u8 {
    let inputs: Vec<&str> = identifier.map(|i| vec![i.as_str()]).unwrap_or_default();
    u8::from(zxcvbn::zxcvbn(password.expose(), &inputs).score())
}

/// Checks a new password against the policy; `confirmation` is the second entry.
///
/// Rules in order (the first that fails is reported): at least [`MIN_CHARS`] characters, at
/// least [`MIN_SYMBOLS`] non-alphanumeric characters, the identifier not contained
/// (case-insensitive), zxcvbn score at least [`MIN_SCORE`] with the identifier as a user input,
/// and both entries equal.
pub fn check_policy(
    password: &Password,
    confirmation: &Password,
    identifier: &Identifier,
) -> Result<(), PolicyViolation> {
    let text = password.expose();
    if password.char_count() < MIN_CHARS {
        return Err(PolicyViolation::TooShort);
    }
    if text.chars().filter(|c| !c.is_alphanumeric()).count() < MIN_SYMBOLS {
        return Err(PolicyViolation::TooFewSymbols);
    }
    let mut lowered = text.to_lowercase();
    let contains = lowered.contains(identifier.as_str());
    lowered.zeroize();
    if contains {
        return Err(PolicyViolation::ContainsIdentifier);
    }
    let entropy = zxcvbn::zxcvbn(text, &[identifier.as_str()]);
    let score = u8::from(entropy.score());
    if score < MIN_SCORE {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string());
        return Err(PolicyViolation::TooWeak { score, hint });
    }
    use subtle::ConstantTimeEq;
    if !bool::from(text.as_bytes().ct_eq(confirmation.expose().as_bytes())) {
        return Err(PolicyViolation::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str, id: &str) -> Result<(), PolicyViolation> {
        let id = Identifier::parse(id).expect("valid id");
        check_policy(&Password::from(p), &Password::from(p), &id)
    }

    #[test]
    fn policy_reasons() {
        assert_eq!(check("a!b?", "alice"), Err(PolicyViolation::TooShort));
        assert_eq!(
            check("abcdefgh1!", "alice"),
            Err(PolicyViolation::TooFewSymbols)
        );
        assert_eq!(
            check("xAlice!!zz", "alice"),
            Err(PolicyViolation::ContainsIdentifier)
        );
        assert!(matches!(
            check("password!!", "alice"),
            Err(PolicyViolation::TooWeak { .. })
        ));
        assert_eq!(check("correct-horse#battery", "alice"), Ok(()));
        let id = Identifier::parse("alice").expect("valid id");
        assert_eq!(
            check_policy(
                &Password::from("correct-horse#battery"),
                &Password::from("correct-horse#batterY"),
                &id
            ),
            Err(PolicyViolation::Mismatch)
        );
    }

    #[test]
    fn weak_reason_is_readable() {
        let err = check("password!!", "alice").expect_err("weak");
        assert!(err.to_string().starts_with("too easy to guess"));
    }

    #[test]
    fn strength_grows() {
        assert!(
            strength(&Password::from("aaaa"), None) < strength(&Password::from("v7#Qp!x2Lm"), None)
        );
    }
}
