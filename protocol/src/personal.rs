//! D, the subscriber's personal cryptographic data, and its sealing under KP.
//!
//! The encoding is padded to a fixed [`PADDED_LEN`] so that every sealed record, real or fake,
//! has the same size: record sizes must not tell subscribers apart.

use crate::codec::{Reader, Writer, msg};
use crate::error::{DecodeError, Error, Result};
use crate::seal::SEAL_OVERHEAD;
use crate::secret::{SecretArray, SecretVec};
use crate::suite::PasswordKeys;

/// Size of an encoded [`PersonalData`], padding included.
pub const PADDED_LEN: usize = 4096;
/// Size of D sealed under KP: what the key server stores and returns.
pub const SEALED_LEN: usize = PADDED_LEN + SEAL_OVERHEAD;

const SEAL_CONTEXT: &[u8] = b"stb-eke/v1/personal-data";

/// D: what a subscriber needs on any box, recovered at every login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonalData {
    /// Account name (the certificate subject's common name), shown on screen.
    pub account: String,
    /// Certificate A, DER.
    pub certificate_der: Vec<u8>,
    /// KR, the P-256 private key of A, PKCS#8 DER.
    pub private_key_pkcs8: SecretVec,
    /// KS, the subscriber's symmetric key; channel keys arrive wrapped under it.
    pub ks: SecretArray<32>,
    /// Base URL of the content server.
    pub content_server_url: String,
    /// The operator CA certificate (DER) that the content server's certificate chains to.
    pub operator_ca_der: Vec<u8>,
    /// Base URL of the key server.
    pub keyserver_url: String,
    /// KL, the locker key: made by the box, known to nobody else (not the operator, who knows
    /// KS). `None` in a record made before the locker existed; such a record is given one at
    /// the next login (`docs/protocol.md`, section 6).
    pub locker_key: Option<SecretArray<32>>,
}

impl PersonalData {
    /// Encodes D, padded with zeros to [`PADDED_LEN`].
    pub fn encode(&self) -> Result<SecretVec> {
        let kind = match self.locker_key {
            Some(_) => msg::PERSONAL_DATA_WITH_LOCKER,
            None => msg::PERSONAL_DATA,
        };
        let mut w = Writer::header(kind);
        w.vec8(self.account.as_bytes())?;
        w.vec16("certificate", &self.certificate_der)?;
        w.vec16("private key", self.private_key_pkcs8.expose())?;
        w.bytes(self.ks.expose());
        w.vec16("content server URL", self.content_server_url.as_bytes())?;
        w.vec16("operator CA", &self.operator_ca_der)?;
        w.vec16("key server URL", self.keyserver_url.as_bytes())?;
        if let Some(kl) = &self.locker_key {
            w.bytes(kl.expose());
        }
        if w.buf.len() > PADDED_LEN {
            let mut buf = SecretVec::new(w.buf);
            zeroize::Zeroize::zeroize(&mut buf);
            return Err(Error::TooLarge("personal data"));
        }
        w.buf.resize(PADDED_LEN, 0);
        Ok(SecretVec::new(w.buf))
    }

    /// Decodes D; the padding must be all zeros.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != PADDED_LEN {
            return Err(DecodeError::InvalidLength("personal data"));
        }
        let (mut r, kind) =
            Reader::header_of(bytes, &[msg::PERSONAL_DATA, msg::PERSONAL_DATA_WITH_LOCKER])?;
        let text = |b: &[u8], what| {
            String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidField(what))
        };
        let data = Self {
            account: text(r.vec8()?, "account")?,
            certificate_der: r.vec16()?.to_vec(),
            private_key_pkcs8: SecretVec::from(r.vec16()?),
            ks: SecretArray::new(r.array()?),
            content_server_url: text(r.vec16()?, "content server URL")?,
            operator_ca_der: r.vec16()?.to_vec(),
            keyserver_url: text(r.vec16()?, "key server URL")?,
            locker_key: match kind {
                msg::PERSONAL_DATA_WITH_LOCKER => Some(SecretArray::new(r.array()?)),
                _ => None,
            },
        };
        if r.rest().iter().any(|&b| b != 0) {
            return Err(DecodeError::InvalidField("padding"));
        }
        Ok(data)
    }

    /// F_KP(D): seals D under the key derived from the password, bound to suite and identifier.
    pub fn seal(&self, keys: &PasswordKeys, iv: [u8; 16]) -> Result<SealedData> {
        let plain = self.encode()?;
        let sealed = keys
            .sealing_key()
            .seal(SEAL_CONTEXT, &seal_aad(keys), iv, plain.expose());
        Ok(SealedData(sealed))
    }

    /// Opens F_KP(D). A wrong password gives [`Error::AuthenticationFailed`].
    pub fn unseal(sealed: &SealedData, keys: &PasswordKeys) -> Result<Self> {
        let plain = keys
            .sealing_key()
            .open(SEAL_CONTEXT, &seal_aad(keys), &sealed.0)?;
        Ok(Self::decode(plain.expose())?)
    }
}

fn seal_aad(keys: &PasswordKeys) -> Vec<u8> {
    let mut aad = vec![keys.suite().id()];
    aad.extend_from_slice(keys.identifier().as_bytes());
    aad
}

/// F_KP(D), exactly [`SEALED_LEN`] bytes. Opaque to the key server.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedData(Vec<u8>);

impl SealedData {
    /// Wraps stored bytes, checking the length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != SEALED_LEN {
            return Err(DecodeError::InvalidLength("sealed data"));
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// SHA-256 of the bytes: how a replacement names the record it replaces (section 10.1).
    pub fn digest(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(&self.0).into()
    }
}

impl core::fmt::Debug for SealedData {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SealedData({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(locker_key: Option<SecretArray<32>>) -> PersonalData {
        PersonalData {
            account: "alice".into(),
            certificate_der: vec![1; 300],
            private_key_pkcs8: SecretVec::new(vec![2; 138]),
            ks: SecretArray::new([3; 32]),
            content_server_url: "https://content".into(),
            operator_ca_der: vec![4; 200],
            keyserver_url: "https://keys".into(),
            locker_key,
        }
    }

    #[test]
    fn records_with_and_without_a_locker_key_decode() {
        for d in [data(None), data(Some(SecretArray::new([5; 32])))] {
            let encoded = d.encode().expect("encode");
            assert_eq!(encoded.len(), PADDED_LEN);
            assert_eq!(PersonalData::decode(encoded.expose()), Ok(d));
        }
    }

    #[test]
    fn the_type_byte_says_whether_kl_follows() {
        let with = data(Some(SecretArray::new([5; 32])))
            .encode()
            .expect("encode");
        assert_eq!(with.expose()[1], msg::PERSONAL_DATA_WITH_LOCKER);
        // The same bytes claiming no KL leave KL where the padding must be zero.
        let mut relabelled = with.expose().to_vec();
        relabelled[1] = msg::PERSONAL_DATA;
        assert_eq!(
            PersonalData::decode(&relabelled),
            Err(DecodeError::InvalidField("padding"))
        );
    }
}
