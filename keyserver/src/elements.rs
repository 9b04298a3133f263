//! PwA and PwB of recently answered records, kept in memory so that a box's next login does
//! not pay for two hash-to-curve evaluations again (about a tenth of a recovery's CPU).
//!
//! The cache is keyed by VP, so the fake records of unknown identifiers go through it exactly
//! as real ones do: whether a recovery hits depends only on whether someone asked for the same
//! identifier since it was last evicted, never on whether the identifier has a record. The
//! entries test passwords as VP does; they live only in this process's memory (which holds the
//! KEK anyway) and are zeroized when evicted or dropped.

use sha2::{Digest, Sha256};
use stb_protocol::Verifier;
use stb_protocol::eke::PasswordElements;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroize;

/// Entries kept: about 200 bytes each, so the default costs a few megabytes.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// A bounded map from VP to its password elements.
#[derive(Debug)]
pub struct ElementCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], PasswordElements>>,
}

impl ElementCache {
    /// An empty cache holding at most `capacity` records' elements (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
        }
    }

    /// The elements of `verifier`, derived (and kept) on a miss. When full, an arbitrary
    /// entry makes room: a flood of fake identifiers only brings recoveries back to the cost
    /// they have without the cache.
    pub fn get(&self, verifier: &Verifier) -> stb_protocol::Result<PasswordElements> {
        // The key is a hash, so the map holds no copy of VP itself.
        let key: [u8; 32] = Sha256::digest(verifier.expose()).into();
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        // Derived outside the lock: the other recoveries do not wait for it.
        let derived = PasswordElements::of(verifier)?;
        if self.capacity > 0 {
            let mut entries = self.lock();
            if entries.len() >= self.capacity {
                let victim = entries.keys().next().copied();
                if let Some(mut victim) = victim {
                    entries.remove(&victim);
                    victim.zeroize();
                }
            }
            entries.insert(key, derived.clone());
        }
        Ok(derived)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], PasswordElements>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ElementCache {
    fn drop(&mut self) {
        // The values zeroize themselves; the keys are plain arrays.
        for (mut key, _) in self.lock().drain() {
            key.zeroize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(n: u8) -> Verifier {
        Verifier::from_bytes([n; 32])
    }

    #[test]
    fn hits_return_what_a_derivation_gives_and_capacity_bounds_the_map() {
        let cache = ElementCache::new(2);
        let first = cache.get(&verifier(1)).expect("derive");
        let again = cache.get(&verifier(1)).expect("hit");
        let fresh = PasswordElements::of(&verifier(1)).expect("derive");
        assert!(first == fresh && again == fresh);
        assert!(cache.get(&verifier(2)).expect("derive") != fresh);
        for n in 3..10 {
            cache.get(&verifier(n)).expect("derive");
            assert!(cache.len() <= 2);
        }
        let disabled = ElementCache::new(0);
        disabled.get(&verifier(1)).expect("derive");
        assert!(disabled.is_empty());
    }
}
