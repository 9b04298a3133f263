//! The channel keys of a license, each with its validity. A license carries the current and
//! the next epoch of every channel; a key is handed out only inside its own validity
//! (`not_before <= now < not_after`, docs/protocol.md section 12), so a segment under an
//! expired key, or under the next epoch's key before its time, is not decrypted.

use stb_protocol::{ChannelKey, KeyId, License, LicenseKey};
use std::collections::HashMap;
use thiserror::Error;

/// Why no key can be used for a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyUnusable {
    /// The license has no key with this id (a new epoch began: refresh the license).
    #[error("the license has no such key")]
    Missing,
    /// The key exists but `now` is outside its validity.
    #[error("the key is valid from {not_before} to {not_after}, not at {now} (Unix seconds)")]
    OutsideValidity {
        /// Start of validity.
        not_before: u64,
        /// End of validity (exclusive).
        not_after: u64,
        /// The box's clock.
        now: u64,
    },
}

struct Held {
    key: ChannelKey,
    not_before: u64,
    not_after: u64,
}

/// The unwrapped keys of one license, by key id. Dropping it wipes them (`ChannelKey`).
#[derive(Default)]
pub struct ChannelKeys {
    keys: HashMap<KeyId, Held>,
}

impl std::fmt::Debug for ChannelKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelKeys")
            .field("count", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl ChannelKeys {
    /// Unwraps every entry of `license` under `wrap` (from KS). One entry that does not
    /// open (tampered, another subscriber's) fails the whole license.
    pub fn unwrap(license: &License, wrap: &LicenseKey) -> stb_protocol::Result<Self> {
        let mut keys = HashMap::new();
        for entry in &license.entries {
            let key = wrap.unwrap(entry)?;
            keys.insert(
                key.key_id,
                Held {
                    key,
                    not_before: entry.not_before,
                    not_after: entry.not_after,
                },
            );
        }
        Ok(Self { keys })
    }

    /// The key `key_id`, if the license holds it and it is valid at Unix time `now`.
    pub fn get(&self, key_id: &KeyId, now: u64) -> Result<ChannelKey, KeyUnusable> {
        let held = self.keys.get(key_id).ok_or(KeyUnusable::Missing)?;
        if !(held.not_before <= now && now < held.not_after) {
            return Err(KeyUnusable::OutsideValidity {
                not_before: held.not_before,
                not_after: held.not_after,
                now,
            });
        }
        Ok(held.key.clone())
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The box's clock in Unix seconds (0 if it is set before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stb_protocol::SecretArray;

    fn key(id: u8) -> ChannelKey {
        ChannelKey {
            key_id: KeyId([id; 16]),
            key: SecretArray::new([id; 16]),
        }
    }

    #[test]
    fn a_key_is_used_only_inside_its_validity() {
        let wrap = LicenseKey::from_ks(&SecretArray::new([9; 32]));
        // Epoch 7 (current) and 8 (next), an hour each.
        let license = License {
            account: "Alice".into(),
            issued_at: 1_800_000_100,
            entries: vec![
                wrap.wrap(1, 7, (1_800_000_000, 1_800_003_600), &key(7), [1; 16]),
                wrap.wrap(1, 8, (1_800_003_600, 1_800_007_200), &key(8), [2; 16]),
            ],
        };
        let keys = ChannelKeys::unwrap(&license, &wrap).expect("unwrap");
        assert_eq!(keys.len(), 2);
        let current = keys.get(&KeyId([7; 16]), 1_800_000_100).expect("current");
        assert_eq!(current.key.expose(), &[7; 16]);
        // The next epoch's key is held but not used before its time, nor an old key after.
        assert_eq!(
            keys.get(&KeyId([8; 16]), 1_800_003_599).map(|k| k.key_id),
            Err(KeyUnusable::OutsideValidity {
                not_before: 1_800_003_600,
                not_after: 1_800_007_200,
                now: 1_800_003_599
            })
        );
        assert!(
            keys.get(&KeyId([8; 16]), 1_800_003_600).is_ok(),
            "from not_before"
        );
        assert!(matches!(
            keys.get(&KeyId([7; 16]), 1_800_003_600),
            Err(KeyUnusable::OutsideValidity { .. })
        ));
        assert_eq!(
            keys.get(&KeyId([5; 16]), 1_800_000_100).map(|k| k.key_id),
            Err(KeyUnusable::Missing)
        );
    }

    #[test]
    fn another_subscribers_license_does_not_open() {
        let theirs = LicenseKey::from_ks(&SecretArray::new([1; 32]));
        let license = License {
            account: "Bob".into(),
            issued_at: 0,
            entries: vec![theirs.wrap(1, 0, (0, 10), &key(1), [0; 16])],
        };
        let ours = LicenseKey::from_ks(&SecretArray::new([2; 32]));
        assert!(ChannelKeys::unwrap(&license, &ours).is_err());
    }
}
