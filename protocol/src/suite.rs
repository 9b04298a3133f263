//! Versioned suites and the password-derived keys.
//!
//! ```text
//! salt = SHA-256("stb-eke/v1/argon2-salt" || N)
//! KP   = Argon2id(P, salt, m = 65536 KiB, t = 3, p = 1, 32 bytes)
//! VP   = HKDF-SHA256(ikm = KP, salt = none, info = "stb-eke/v1/verifier" || N), 32 bytes
//! KSEAL= HKDF-SHA256(ikm = KP, salt = none, info = "stb-eke/v1/seal-key" || N), 64 bytes
//! ```
//!
//! KP never leaves the box; VP is what the key server stores; KSEAL seals the personal data.

use crate::error::{DecodeError, Error, Result};
use crate::identifier::Identifier;
use crate::password::Password;
use crate::seal::{SealingKey, expand};
use crate::secret::SecretArray;
use sha2::{Digest, Sha256};

/// A protocol suite: KDF parameters, curve, hash and symmetric algorithms, by one byte sent in
/// every message. New parameters get a new suite; old records keep theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// Argon2id (64 MiB, t=3, p=1), P-256 with RFC 9380 `P256_XMD:SHA-256_SSWU_RO_`,
    /// HKDF-SHA256, AES-256-CTR + HMAC-SHA256.
    V1,
}

impl Suite {
    /// The suite new registrations use.
    pub const CURRENT: Suite = Suite::V1;

    /// Wire identifier.
    pub fn id(self) -> u8 {
        match self {
            Suite::V1 => 1,
        }
    }

    /// Parses a wire identifier.
    pub fn from_id(id: u8) -> Result<Self, DecodeError> {
        match id {
            1 => Ok(Suite::V1),
            other => Err(DecodeError::UnsupportedSuite(other)),
        }
    }

    /// Argon2id memory in KiB, iterations, lanes.
    pub fn argon2_params(self) -> (u32, u32, u32) {
        match self {
            Suite::V1 => (64 * 1024, 3, 1),
        }
    }
}

/// VP: the password verification value the key server stores for an identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier(SecretArray<32>);

impl Verifier {
    /// Wraps stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretArray::new(bytes))
    }

    /// The bytes to store.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }
}

/// Everything the box derives from (N, P): VP and the sealing key for D.
#[derive(Clone, Debug)]
pub struct PasswordKeys {
    suite: Suite,
    identifier: Identifier,
    verifier: Verifier,
    seal: SealingKey,
}

impl PasswordKeys {
    /// Runs the suite's slow KDF (about 0.2 s and 64 MiB for [`Suite::V1`]) and the HKDF steps.
    pub fn derive(suite: Suite, identifier: &Identifier, password: &Password) -> Result<Self> {
        let kp = derive_kp(suite, identifier, password)?;
        Ok(Self::from_kp(suite, identifier, &kp))
    }

    /// The HKDF steps alone, from an already derived KP.
    pub fn from_kp(suite: Suite, identifier: &Identifier, kp: &SecretArray<32>) -> Self {
        let n = identifier.as_bytes();
        let mut vp = SecretArray::new([0u8; 32]);
        expand(
            None,
            kp.expose(),
            &[b"stb-eke/v1/verifier", n],
            vp.expose_mut(),
        );
        Self {
            suite,
            identifier: identifier.clone(),
            verifier: Verifier(vp),
            seal: SealingKey::derive(kp.expose(), &[b"stb-eke/v1/seal-key", n]),
        }
    }

    /// The suite these keys belong to.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The identifier these keys belong to.
    pub fn identifier(&self) -> &Identifier {
        &self.identifier
    }

    /// VP.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn sealing_key(&self) -> &SealingKey {
        &self.seal
    }
}

/// KP = Argon2id(P, SHA-256("stb-eke/v1/argon2-salt" || N)).
pub fn derive_kp(
    suite: Suite,
    identifier: &Identifier,
    password: &Password,
) -> Result<SecretArray<32>> {
    let salt = Sha256::new()
        .chain_update(b"stb-eke/v1/argon2-salt")
        .chain_update(identifier.as_bytes())
        .finalize();
    let (m, t, p) = suite.argon2_params();
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|_| Error::Kdf)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kp = SecretArray::new([0u8; 32]);
    argon
        .hash_password_into(password.expose().as_bytes(), &salt, kp.expose_mut())
        .map_err(|_| Error::Kdf)?;
    Ok(kp)
}
