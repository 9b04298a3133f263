//! F_K(m): the authenticated encryption used for personal data, EKE responses and wrapped
//! channel keys. AES-256-CTR then HMAC-SHA256 over a context label, associated data, the IV
//! and the ciphertext (encrypt-then-MAC). HMAC makes the construction key-committing, which
//! matters here: a ciphertext must not open under two password guesses (GCM would allow it).
//!
//! Layout: `iv (16) || ciphertext (len(m)) || tag (32)`.

use crate::error::{Error, Result};
use crate::secret::{SecretArray, SecretVec};
use aes::Aes256;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes added by [`SealingKey::seal`]: the IV and the tag.
pub const SEAL_OVERHEAD: usize = IV_LEN + TAG_LEN;
const IV_LEN: usize = 16;
const TAG_LEN: usize = 32;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// An encryption key and a MAC key, always derived together.
#[derive(Clone, Debug)]
pub struct SealingKey {
    enc: SecretArray<32>,
    mac: SecretArray<32>,
}

impl SealingKey {
    /// HKDF-SHA256 (no salt) of `ikm`, with `info` the concatenation of `info_parts`; the
    /// first 32 output bytes are the AES key, the next 32 the HMAC key.
    pub fn derive(ikm: &[u8], info_parts: &[&[u8]]) -> Self {
        Self::derive_salted(None, ikm, info_parts)
    }

    pub(crate) fn derive_salted(salt: Option<&[u8]>, ikm: &[u8], info_parts: &[&[u8]]) -> Self {
        let mut okm = SecretArray::new([0u8; 64]);
        expand(salt, ikm, info_parts, okm.expose_mut());
        Self::from_okm(&okm)
    }

    fn from_okm(okm: &SecretArray<64>) -> Self {
        Self::from_parts(okm.expose())
    }

    /// From 64 bytes of key material: encryption key, then MAC key.
    pub(crate) fn from_parts(okm: &[u8]) -> Self {
        let (enc, mac) = okm.split_at(32);
        Self {
            enc: SecretArray::from_slice(enc).unwrap_or_else(|| unreachable!()),
            mac: SecretArray::from_slice(mac).unwrap_or_else(|| unreachable!()),
        }
    }

    /// The key bytes, for the test-vector file.
    #[cfg(test)]
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        [self.enc.expose().as_slice(), self.mac.expose().as_slice()].concat()
    }

    /// Encrypts and authenticates `plaintext` under `context` (a fixed label naming the use)
    /// and `aad` (data bound to the ciphertext but not hidden).
    pub fn seal(&self, context: &[u8], aad: &[u8], iv: [u8; 16], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&iv);
        out.extend_from_slice(plaintext);
        let mut cipher = Aes256Ctr::new(self.enc.expose().into(), &iv.into());
        cipher.apply_keystream(&mut out[IV_LEN..]);
        let tag = self.tag(context, aad, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Checks the tag (in constant time) and decrypts. Any change to `sealed`, `context` or
    /// `aad`, or a different key, gives [`Error::AuthenticationFailed`] and no plaintext.
    pub fn open(&self, context: &[u8], aad: &[u8], sealed: &[u8]) -> Result<SecretVec> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(Error::AuthenticationFailed);
        }
        let (body, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        self.mac(context, aad, body)
            .verify_slice(tag)
            .map_err(|_| Error::AuthenticationFailed)?;
        let (iv, ct) = body.split_at(IV_LEN);
        let mut plain = SecretVec::new(ct.to_vec());
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| Error::AuthenticationFailed)?;
        let mut cipher = Aes256Ctr::new(self.enc.expose().into(), &iv.into());
        cipher.apply_keystream(plain.expose_mut());
        Ok(plain)
    }

    fn mac(&self, context: &[u8], aad: &[u8], iv_and_ct: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.mac.expose()).unwrap_or_else(|_| unreachable!());
        // Lengths first so that no (context, aad) pair can be shifted into another.
        mac.update(&[u8::try_from(context.len()).unwrap_or(u8::MAX)]);
        mac.update(context);
        mac.update(&u32::try_from(aad.len()).unwrap_or(u32::MAX).to_be_bytes());
        mac.update(aad);
        mac.update(iv_and_ct);
        mac
    }

    fn tag(&self, context: &[u8], aad: &[u8], iv_and_ct: &[u8]) -> [u8; TAG_LEN] {
        self.mac(context, aad, iv_and_ct)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// HKDF-SHA256 extract-and-expand with a multi-part info.
pub(crate) fn expand(salt: Option<&[u8]>, ikm: &[u8], info_parts: &[&[u8]], okm: &mut [u8]) {
    Hkdf::<Sha256>::new(salt, ikm)
        .expand_multi_info(info_parts, okm)
        // Callers ask for at most 255 * 32 bytes.
        .unwrap_or_else(|_| unreachable!("HKDF output length within bounds"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::derive(b"input keying material", &[b"test"])
    }

    #[test]
    fn round_trip_and_layout() {
        let sealed = key().seal(b"ctx", b"aad", [7; 16], b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(&sealed[..16], &[7; 16]);
        let plain = key().open(b"ctx", b"aad", &sealed).expect("opens");
        assert_eq!(plain.expose(), b"hello");
    }

    #[test]
    fn binds_context_aad_and_key() {
        let sealed = key().seal(b"ctx", b"aad", [7; 16], b"hello");
        assert_eq!(
            key().open(b"ctX", b"aad", &sealed),
            Err(Error::AuthenticationFailed)
        );
        assert_eq!(
            key().open(b"ctx", b"aaD", &sealed),
            Err(Error::AuthenticationFailed)
        );
        let other = SealingKey::derive(b"other", &[b"test"]);
        assert_eq!(
            other.open(b"ctx", b"aad", &sealed),
            Err(Error::AuthenticationFailed)
        );
        assert_eq!(
            key().open(b"ctx", b"aad", &sealed[..47]),
            Err(Error::AuthenticationFailed)
        );
    }
}
