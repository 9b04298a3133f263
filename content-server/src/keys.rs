//! The operator's secrets, all derived from one 32-byte master key kept in
//! `DATA_DIR/secrets/master.key` (mode 0600; share it between instances):
//!
//! - channel content keys per (channel, epoch), and their public key ids;
//! - the key-encryption key that seals every subscriber's KS at rest in the database;
//! - the pepper under which enrollment codes are hashed.

use anyhow::{Context, Result};
use hkdf::Hkdf;
use sha2::Sha256;
use stb_protocol::seal::SealingKey;
use stb_protocol::{ChannelKey, KeyId, SecretArray};
use std::path::Path;

const KS_CONTEXT: &[u8] = b"stb-content/v1/ks-at-rest";

/// The operator's key material.
#[derive(Debug)]
pub struct OperatorKeys {
    master: SecretArray<32>,
    kek: SealingKey,
    code_pepper: SecretArray<32>,
    pin_pepper: SecretArray<32>,
}

impl OperatorKeys {
    /// Derives every key from the master key.
    pub fn from_master(master: [u8; 32]) -> Self {
        let master = SecretArray::new(master);
        let kek = SealingKey::derive(master.expose(), &[b"stb-content/v1/kek"]);
        let code_pepper =
            SecretArray::filled_by(|b| expand(&master, &[b"stb-content/v1/code-pepper"], b));
        let pin_pepper =
            SecretArray::filled_by(|b| expand(&master, &[b"stb-content/v1/pin-pepper"], b));
        Self {
            master,
            kek,
            code_pepper,
            pin_pepper,
        }
    }

    /// Reads the master key file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "reading master key {} (run `content-server init`)",
                path.display()
            )
        })?;
        let master: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
        Ok(Self::from_master(master))
    }

    /// The keys shared with the edge: one signs the boxes' segment tokens, the other lets the
    /// edge fetch from this server.
    pub fn edge_keys(&self) -> crate::edge::EdgeKeys {
        crate::edge::EdgeKeys::new(
            SecretArray::filled_by(|b| expand(&self.master, &[b"stb-content/v1/edge-token"], b)),
            SecretArray::filled_by(|b| expand(&self.master, &[b"stb-content/v1/edge-origin"], b)),
        )
    }

    /// The content key of `channel` for `epoch`.
    pub fn channel_key(&self, channel: u16, epoch: u32) -> ChannelKey {
        let (ch, ep) = (channel.to_be_bytes(), epoch.to_be_bytes());
        let mut key_id = [0u8; 16];
        expand(
            &self.master,
            &[b"stb-content/v1/key-id", &ch, &ep],
            &mut key_id,
        );
        let key = SecretArray::filled_by(|b| {
            expand(&self.master, &[b"stb-content/v1/channel-key", &ch, &ep], b)
        });
        ChannelKey {
            key_id: KeyId(key_id),
            key,
        }
    }

    /// Seals a subscriber's KS for the database, bound to the subscriber's name.
    pub fn seal_ks(&self, subscriber: &str, ks: &SecretArray<32>) -> Vec<u8> {
        self.kek.seal(
            KS_CONTEXT,
            subscriber.as_bytes(),
            stb_protocol::random_array(),
            ks.expose(),
        )
    }

    /// Opens a sealed KS.
    pub fn open_ks(&self, subscriber: &str, sealed: &[u8]) -> Result<SecretArray<32>> {
        let plain = self
            .kek
            .open(KS_CONTEXT, subscriber.as_bytes(), sealed)
            .map_err(|_| anyhow::anyhow!("KS of {subscriber} does not open (wrong master key?)"))?;
        SecretArray::from_slice(plain.expose()).context("KS length")
    }

    /// HMAC-style keyed hash of a normalised enrollment code, as stored.
    pub fn code_hash(&self, code: &str) -> Vec<u8> {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(self.code_pepper.expose())
            .unwrap_or_else(|_| unreachable!());
        mac.update(code.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// A subscriber's parental PIN as stored: keyed by a key from the master key, which is
    /// not in the database, so a copy of the database does not give the PIN away (four
    /// digits would fall to any unkeyed hash at once).
    pub fn pin_tag(&self, subscriber: &str, pin: &str) -> Vec<u8> {
        use hmac::Mac;
        self.pin_mac(subscriber, pin)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `pin` is the one `tag` was made from (compared in constant time).
    pub fn pin_matches(&self, subscriber: &str, pin: &str, tag: &[u8]) -> bool {
        use hmac::Mac;
        self.pin_mac(subscriber, pin).verify_slice(tag).is_ok()
    }

    fn pin_mac(&self, subscriber: &str, pin: &str) -> hmac::Hmac<Sha256> {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(self.pin_pepper.expose())
            .unwrap_or_else(|_| unreachable!());
        // Length-prefixed: no (subscriber, PIN) pair reads as another.
        mac.update(&(subscriber.len() as u64).to_be_bytes());
        mac.update(subscriber.as_bytes());
        mac.update(pin.as_bytes());
        mac
    }
}

fn expand(master: &SecretArray<32>, info: &[&[u8]], out: &mut [u8]) {
    Hkdf::<Sha256>::new(None, master.expose())
        .expand_multi_info(info, out)
        .unwrap_or_else(|_| unreachable!("short HKDF output"));
}
