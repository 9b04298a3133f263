//! The key-encryption key (KEK). What would let a copy of the database test passwords
//! offline (each account's VP and sealed record) and the server's own secrets are stored
//! wrapped under a 32-byte key that never sits in the database: a file only the service can
//! read, or a systemd credential. Identifiers are stored as keyed hashes (the key is one of
//! those wrapped secrets), so a copy does not even list who has an account.
//!
//! Wrapped value: `version (1) || key id (8) || F_KEK(plain)` with F the protocol's
//! key-committing seal, its context naming the field and its associated data the row, so
//! that a value moved to another row or column does not open. The key id lets several KEKs
//! serve during a rotation: values are written under the current one and read under any.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use stb_protocol::seal::SealingKey;
use stb_protocol::{SecretArray, SecretVec};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Bytes in a KEK file.
pub const KEK_LEN: usize = 32;
const VERSION: u8 = 1;
const ID_LEN: usize = 8;

/// What went wrong with a KEK or a value wrapped under one.
#[derive(Debug, Error)]
pub enum KekError {
    /// The file cannot be read.
    #[error(
        "no key-encryption key at {path}: {source} (run `keyserver init` for a new database, or restore the key from your backup)"
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a key.
    #[error("{path} must hold exactly {KEK_LEN} bytes, it holds {len}")]
    BadLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Others can read the file.
    #[error("{path} can be read by other users (mode {mode:o}): chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A value was wrapped under a key the server was not given.
    #[error(
        "the database's {field} is sealed under KEK {found}, and this server has {have}: configure the key this database was sealed under (kek_file, or extra_kek_files during a rotation)"
    )]
    UnknownKey {
        /// The field.
        field: &'static str,
        /// The key id in the value.
        found: String,
        /// The key ids the server has.
        have: String,
    },
    /// A value does not open under the key its id names: altered, or moved to another row.
    #[error("the database's {field} does not open under KEK {id}: it was altered or moved")]
    Corrupt {
        /// The field.
        field: &'static str,
        /// The key id.
        id: String,
    },
    /// Not a wrapped value at all.
    #[error("the database's {field} is not a wrapped value")]
    Malformed {
        /// The field.
        field: &'static str,
    },
}

/// The fields stored wrapped. Each seals under its own context label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An account's VP.
    Verifier,
    /// An account's sealed personal data.
    Sealed,
    /// An account's identifier, for `accounts list`.
    Identifier,
    /// A server secret in `meta`.
    Secret,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::Verifier => "verifier",
            Self::Sealed => "sealed record",
            Self::Identifier => "identifier",
            Self::Secret => "server secret",
        }
    }

    fn context(self) -> &'static [u8] {
        match self {
            Self::Verifier => b"stb-keyserver/v1/at-rest/verifier",
            Self::Sealed => b"stb-keyserver/v1/at-rest/sealed",
            Self::Identifier => b"stb-keyserver/v1/at-rest/identifier",
            Self::Secret => b"stb-keyserver/v1/at-rest/secret",
        }
    }
}

/// One key-encryption key.
#[derive(Debug)]
pub struct Kek {
    id: [u8; ID_LEN],
    key: SealingKey,
}

impl Kek {
    /// From the key's bytes.
    pub fn from_bytes(bytes: &SecretArray<KEK_LEN>) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(bytes.expose()).unwrap_or_else(|_| {
            unreachable!("HMAC takes any key length");
        });
        mac.update(b"stb-keyserver/v1/kek-id");
        let digest = mac.finalize().into_bytes();
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Self {
            id,
            key: SealingKey::derive(bytes.expose(), &[b"stb-keyserver/v1/kek"]),
        }
    }

    /// Reads a key file, refusing one that other users can read.
    pub fn load(path: &Path) -> Result<Self, KekError> {
        use std::os::unix::fs::PermissionsExt;
        let missing = |source| KekError::Missing {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(missing)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KekError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let bytes = SecretVec::new(std::fs::read(path).map_err(missing)?);
        let key = SecretArray::from_slice(bytes.expose()).ok_or_else(|| KekError::BadLength {
            path: path.to_owned(),
            len: bytes.len(),
        })?;
        Ok(Self::from_bytes(&key))
    }

    /// Makes a new random key file (mode 0600); refuses to replace one.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !path.exists(),
            "{} exists: a new key would make the database unreadable",
            path.display()
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let key = SecretArray::new(stb_protocol::random_array());
        stb_server_common::write_private(path, key.expose())?;
        Ok(Self::from_bytes(&key))
    }

    /// The public key id, hex: names the key in errors, logs and `kek status`.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }
}

/// The current KEK, which wraps, and the others, which only unwrap (during a rotation).
#[derive(Debug)]
pub struct Keyring {
    current: Kek,
    others: Vec<Kek>,
}

impl Keyring {
    /// A keyring.
    pub fn new(current: Kek, others: Vec<Kek>) -> Self {
        Self { current, others }
    }

    /// The current key's id.
    pub fn current_id(&self) -> String {
        self.current.id()
    }

    /// Wraps `plain`, bound to `field` and `row`.
    pub fn wrap(&self, field: Field, row: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + ID_LEN + plain.len() + stb_protocol::seal::SEAL_OVERHEAD);
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&self.current.key.seal(
            field.context(),
            &aad(&self.current.id, row),
            stb_protocol::random_array(),
            plain,
        ));
        out
    }

    /// Unwraps a value made by [`Keyring::wrap`] under any key of the ring.
    pub fn unwrap(&self, field: Field, row: &[u8], wrapped: &[u8]) -> Result<SecretVec, KekError> {
        let id = key_id(wrapped).ok_or(KekError::Malformed {
            field: field.name(),
        })?;
        let kek = self
            .keys()
            .find(|k| k.id == id)
            .ok_or_else(|| KekError::UnknownKey {
                field: field.name(),
                found: hex::encode(id),
                have: self.keys().map(Kek::id).collect::<Vec<_>>().join(", "),
            })?;
        kek.key
            .open(field.context(), &aad(&id, row), &wrapped[1 + ID_LEN..])
            .map_err(|_| KekError::Corrupt {
                field: field.name(),
                id: hex::encode(id),
            })
    }

    /// Every key of the ring, the current one first.
    fn keys(&self) -> impl Iterator<Item = &Kek> {
        std::iter::once(&self.current).chain(&self.others)
    }

    /// Whether `wrapped` is under the current key (a rotation re-wraps the others).
    pub fn is_current(&self, wrapped: &[u8]) -> bool {
        key_id(wrapped) == Some(self.current.id)
    }
}

/// The key id of a wrapped value, if it is one.
pub fn key_id(wrapped: &[u8]) -> Option<[u8; ID_LEN]> {
    match wrapped {
        [VERSION, rest @ ..] if rest.len() > ID_LEN => rest[..ID_LEN].try_into().ok(),
        _ => None,
    }
}

// The key id is bound too, so that a value cannot be relabelled as another key's.
fn aad(id: &[u8; ID_LEN], row: &[u8]) -> Vec<u8> {
    [id.as_slice(), row].concat()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ring(k: u8) -> Keyring {
        Keyring::new(Kek::from_bytes(&SecretArray::new([k; 32])), vec![])
    }

    #[test]
    fn wraps_and_binds_field_row_and_key() {
        let ring = ring(1);
        let w = ring.wrap(Field::Verifier, b"row-a", b"vp bytes");
        assert_eq!(
            ring.unwrap(Field::Verifier, b"row-a", &w).unwrap().expose(),
            b"vp bytes"
        );
        assert!(!w.windows(8).any(|x| x == b"vp bytes"));
        assert!(matches!(
            ring.unwrap(Field::Verifier, b"row-b", &w),
            Err(KekError::Corrupt { .. })
        ));
        assert!(matches!(
            ring.unwrap(Field::Sealed, b"row-a", &w),
            Err(KekError::Corrupt { .. })
        ));
        let mut flipped = w.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(ring.unwrap(Field::Verifier, b"row-a", &flipped).is_err());
        assert!(matches!(
            ring.unwrap(Field::Verifier, b"row-a", &[0u8; 32]),
            Err(KekError::Malformed { .. })
        ));
    }

    #[test]
    fn another_key_is_named_not_guessed() {
        let w = ring(1).wrap(Field::Secret, b"s", b"x");
        let err = ring(2).unwrap(Field::Secret, b"s", &w).unwrap_err();
        assert!(matches!(err, KekError::UnknownKey { .. }), "{err}");
        assert!(err.to_string().contains(&ring(1).current_id()));
    }

    #[test]
    fn rotation_reads_old_and_writes_new() {
        let old = ring(1);
        let w_old = old.wrap(Field::Sealed, b"r", b"data");
        let both = Keyring::new(
            Kek::from_bytes(&SecretArray::new([2; 32])),
            vec![Kek::from_bytes(&SecretArray::new([1; 32]))],
        );
        assert_eq!(
            both.unwrap(Field::Sealed, b"r", &w_old).unwrap().expose(),
            b"data"
        );
        assert!(!both.is_current(&w_old));
        let w_new = both.wrap(Field::Sealed, b"r", b"data");
        assert!(both.is_current(&w_new));
        assert!(old.unwrap(Field::Sealed, b"r", &w_new).is_err());
    }

    #[test]
    fn key_files_are_private_and_sized() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/kek.key");
        let made = Kek::create(&path).unwrap();
        assert_eq!(Kek::load(&path).unwrap().id(), made.id());
        assert!(Kek::create(&path).is_err(), "never replaces a key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Kek::load(&path), Err(KekError::Exposed { .. })));
        let short = dir.path().join("short");
        stb_server_common::write_private(&short, &[0u8; 16]).unwrap();
        assert!(matches!(
            Kek::load(&short),
            Err(KekError::BadLength { len: 16, .. })
        ));
        assert!(matches!(
            Kek::load(&dir.path().join("none")),
            Err(KekError::Missing { .. })
        ));
    }
}
