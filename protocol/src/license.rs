//! Licenses: the channel keys a subscriber is entitled to, each wrapped under KS.
//!
//! A wrapped key is F_{K_wrap}(key) with K_wrap = HKDF(KS, "stb/v1/license-wrap") and the
//! entry's metadata (channel, key id, epoch, validity) as associated data, so an entry cannot
//! be moved to another channel or have its validity stretched.

use crate::codec::{Reader, Writer, msg};
use crate::error::{DecodeError, Error, Result};
use crate::seal::SealingKey;
use crate::secret::SecretArray;
use crate::segment::{ChannelKey, KeyId};

/// Length of a wrapped channel key: IV, 16 key bytes, tag.
pub const WRAPPED_LEN: usize = 16 + 16 + 32;
/// Most entries one license may carry.
pub const MAX_ENTRIES: usize = 4096;
const WRAP_CONTEXT: &[u8] = b"stb/v1/channel-key";

/// One channel key for one epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseEntry {
    /// Channel number.
    pub channel: u16,
    /// Key id.
    pub key_id: KeyId,
    /// Key epoch.
    pub epoch: u32,
    /// Start of validity, Unix seconds.
    pub not_before: u64,
    /// End of validity (exclusive), Unix seconds.
    pub not_after: u64,
    /// The key, wrapped under KS.
    pub wrapped: [u8; WRAPPED_LEN],
}

impl LicenseEntry {
    fn aad(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u16(self.channel);
        w.bytes(&self.key_id.0);
        w.u32(self.epoch);
        w.u64(self.not_before);
        w.u64(self.not_after);
        w.buf
    }

    /// Whether the entry is valid at Unix time `now`.
    pub fn valid_at(&self, now: u64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The key that wraps channel keys for one subscriber, derived from KS.
#[derive(Clone, Debug)]
pub struct LicenseKey(SealingKey);

impl LicenseKey {
    /// K_wrap from KS.
    pub fn from_ks(ks: &SecretArray<32>) -> Self {
        Self(SealingKey::derive(ks.expose(), &[b"stb/v1/license-wrap"]))
    }

    /// Wraps a channel key into an entry (operator side).
    pub fn wrap(
        &self,
        channel: u16,
        epoch: u32,
        validity: (u64, u64),
        key: &ChannelKey,
        iv: [u8; 16],
    ) -> LicenseEntry {
        let mut entry = LicenseEntry {
            channel,
            key_id: key.key_id,
            epoch,
            not_before: validity.0,
            not_after: validity.1,
            wrapped: [0; WRAPPED_LEN],
        };
        let sealed = self
            .0
            .seal(WRAP_CONTEXT, &entry.aad(), iv, key.key.expose());
        entry.wrapped.copy_from_slice(&sealed);
        entry
    }

    /// Unwraps an entry (box side). Tampering or another subscriber's KS fails.
    pub fn unwrap(&self, entry: &LicenseEntry) -> Result<ChannelKey> {
        let key = self.0.open(WRAP_CONTEXT, &entry.aad(), &entry.wrapped)?;
        let key = SecretArray::from_slice(key.expose()).ok_or(Error::AuthenticationFailed)?;
        Ok(ChannelKey {
            key_id: entry.key_id,
            key,
        })
    }
}

/// A license (message type 0x20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    /// Account the license was issued to.
    pub account: String,
    /// Issue time, Unix seconds.
    pub issued_at: u64,
    /// The entitled channel keys (current and next epoch of each channel).
    pub entries: Vec<LicenseEntry>,
}

impl License {
    /// Wire form.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(Error::TooLarge("license"));
        }
        let mut w = Writer::header(msg::LICENSE);
        w.vec8(self.account.as_bytes())?;
        w.u64(self.issued_at);
        w.u16(self.entries.len() as u16);
        for e in &self.entries {
            w.bytes(&e.aad());
            w.bytes(&e.wrapped);
        }
        Ok(w.buf)
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, msg::LICENSE)?;
        let account = String::from_utf8(r.vec8()?.to_vec())
            .map_err(|_| DecodeError::InvalidField("account"))?;
        let issued_at = r.u64()?;
        let count = usize::from(r.u16()?);
        if count > MAX_ENTRIES {
            return Err(DecodeError::InvalidLength("license entries"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let entry = LicenseEntry {
                channel: r.u16()?,
                key_id: KeyId(r.array()?),
                epoch: r.u32()?,
                not_before: r.u64()?,
                not_after: r.u64()?,
                wrapped: r.array()?,
            };
            if entry.not_after < entry.not_before {
                return Err(DecodeError::InvalidField("validity"));
            }
            entries.push(entry);
        }
        r.finish()?;
        Ok(Self {
            account,
            issued_at,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_tamper() {
        let lk = LicenseKey::from_ks(&SecretArray::new([5; 32]));
        let key = ChannelKey {
            key_id: KeyId([1; 16]),
            key: SecretArray::new([2; 16]),
        };
        let entry = lk.wrap(3, 7, (100, 200), &key, [0; 16]);
        assert_eq!(lk.unwrap(&entry).expect("unwrap").key, key.key);
        let mut moved = entry.clone();
        moved.channel = 4;
        assert_eq!(
            lk.unwrap(&moved).map(|_| ()),
            Err(Error::AuthenticationFailed)
        );
        let mut stretched = entry.clone();
        stretched.not_after = 10_000;
        assert_eq!(
            lk.unwrap(&stretched).map(|_| ()),
            Err(Error::AuthenticationFailed)
        );
        let other = LicenseKey::from_ks(&SecretArray::new([6; 32]));
        assert_eq!(
            other.unwrap(&entry).map(|_| ()),
            Err(Error::AuthenticationFailed)
        );
        let lic = License {
            account: "alice".into(),
            issued_at: 150,
            entries: vec![entry],
        };
        let bytes = lic.encode().expect("encode");
        assert_eq!(License::decode(&bytes), Ok(lic));
        assert!(License::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
