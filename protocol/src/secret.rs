//! Containers for secret bytes: zeroized on drop, printed as `[redacted]`.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A fixed-size secret (a key, a password verifier, a derived key).
///
/// The bytes are wiped when the value is dropped and never appear in `Debug` output.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretArray<const N: usize>([u8; N]);

impl<const N: usize> SecretArray<N> {
    /// Wraps `bytes`; the caller should wipe its own copy.
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Builds a secret in place (e.g. as a KDF output) so no copy is left behind.
    pub fn filled_by(fill: impl FnOnce(&mut [u8; N])) -> Self {
        let mut secret = Self([0u8; N]);
        fill(&mut secret.0);
        secret
    }

    /// Copies a slice of exactly `N` bytes, or returns `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; N] = bytes.try_into().ok()?;
        Some(Self(array))
    }

    /// The secret bytes. Keep the borrow short and do not copy them out.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8; N] {
        &mut self.0
    }
}

impl<const N: usize> fmt::Debug for SecretArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<const N: usize> PartialEq for SecretArray<N> {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl<const N: usize> Eq for SecretArray<N> {}

/// A variable-length secret (a PKCS#8 private key, a decrypted plaintext).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretVec(Vec<u8>);

impl SecretVec {
    /// Takes ownership of `bytes`; they are wiped when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&[u8]> for SecretVec {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for SecretVec {
    /// Constant-time in the contents (the lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for SecretVec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let s = SecretArray::new([0x41u8; 32]);
        assert_eq!(format!("{s:?}"), "[redacted]");
        let v = SecretVec::new(b"hunter2".to_vec());
        assert_eq!(format!("{v:?}"), "[redacted]");
    }
}
