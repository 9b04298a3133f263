//! PwA and PwB of recently answered records, kept in memory so that a box's next login does
//! not pay for two hash-to-curve evaluations again (about a tenth of a recovery's CPU).
//!
//! Entries are found by the identifier's row key (the keyed hash that names its rows in the
//! database) and hold SHA-256 of the VP they were derived from, so a new registration's VP
//! is never answered with the old elements. Unknown identifiers' fake records go through the
//! cache exactly as real ones do: whether a recovery hits depends only on whether someone asked
//! for the same identifier since it was last evicted, never on whether it has a record.
//!
//! The elements and the VP hash test passwords as VP does. They live only in this process's
//! memory (which holds the KEK anyway), each entry in a box of its own that is zeroized when
//! it is evicted, replaced or dropped; the map itself holds row keys and pointers, and is
//! allocated once at its full size so that it never moves entries around.

use sha2::{Digest, Sha256};
use stb_protocol::Verifier;
use stb_protocol::eke::PasswordElements;
use std::collections::HashMap;
use std::sync::Mutex;
use zeroize::Zeroize;

/// Entries kept: a few hundred bytes each, so the default costs a few megabytes.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// One record's elements and the VP they belong to.
struct Entry {
    verifier_hash: [u8; 32],
    elements: PasswordElements,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // `elements` zeroizes itself.
        self.verifier_hash.zeroize();
    }
}

/// A bounded map from row key to password elements.
pub struct ElementCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Box<Entry>>>,
}

impl std::fmt::Debug for ElementCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElementCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ElementCache {
    /// An empty cache holding at most `capacity` records' elements (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::with_capacity(capacity)),
        }
    }

    /// The elements of `verifier`, the VP answered from for the identifier whose row key is
    /// `row_key`; derived (and kept) on a miss. When full, an arbitrary entry makes room: a
    /// flood of made-up identifiers only brings recoveries back to their uncached cost.
    pub fn get(
        &self,
        row_key: &str,
        verifier: &Verifier,
    ) -> stb_protocol::Result<PasswordElements> {
        let mut verifier_hash: [u8; 32] = Sha256::digest(verifier.expose()).into();
        let found = self
            .lock()
            .get(row_key)
            .filter(|entry| entry.verifier_hash == verifier_hash)
            .map(|entry| entry.elements.clone());
        if let Some(found) = found {
            verifier_hash.zeroize();
            return Ok(found);
        }
        // Derived outside the lock: the other recoveries do not wait for it.
        let elements = PasswordElements::of(verifier)?;
        if self.capacity > 0 {
            let entry = Box::new(Entry {
                verifier_hash,
                elements: elements.clone(),
            });
            let mut entries = self.lock();
            if entries.len() >= self.capacity && !entries.contains_key(row_key) {
                let victim = entries.keys().next().cloned();
                if let Some(victim) = victim {
                    entries.remove(&victim);
                }
            }
            entries.insert(row_key.to_owned(), entry);
        }
        verifier_hash.zeroize();
        Ok(elements)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Box<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(n: u8) -> Verifier {
        Verifier::from_bytes([n; 32])
    }

    #[test]
    fn hits_match_a_derivation_a_new_vp_is_derived_again_and_capacity_bounds_the_map() {
        let cache = ElementCache::new(2);
        let fresh = |n| PasswordElements::of(&verifier(n)).expect("derive");
        let first = cache.get("h:a", &verifier(1)).expect("derive");
        let again = cache.get("h:a", &verifier(1)).expect("hit");
        assert!(first == fresh(1) && again == fresh(1));
        // The same identifier registered again: its new VP is not answered from the cache.
        assert!(cache.get("h:a", &verifier(2)).expect("derive") == fresh(2));
        assert_eq!(cache.len(), 1);
        for n in 3..10 {
            cache.get(&format!("h:{n}"), &verifier(n)).expect("derive");
            assert!(cache.len() <= 2);
        }
        let disabled = ElementCache::new(0);
        disabled.get("h:a", &verifier(1)).expect("derive");
        assert!(disabled.is_empty());
    }
}
