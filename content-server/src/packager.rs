//! The packager: a channel's segment `sequence`, encrypted under the key of the epoch it starts
//! in. Deterministic, so every server instance (and an offline export for a CDN or nginx)
//! produces the same bytes, and each segment is encrypted once for all subscribers: the
//! server asks [`Packager::segment`], which keeps what it encrypted in memory; an export calls
//! [`encrypt_segment`] directly.

use crate::catalogue::Looped;
use crate::config::Config;
use crate::keys::OperatorKeys;
use axum::body::Bytes;
use stb_protocol::SegmentCipher;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// How many segments behind the live one the server serves (a box that fell behind, an edge
/// filling its cache).
pub const KEPT_BEHIND: u64 = 120;
/// How many segments behind the newest one asked for a channel keeps in memory: viewers ask
/// for the live segment and the one or two before it, so more would only cost memory (about
/// 75 KB a segment with the test channels, for every channel watched). Older ones, within
/// [`KEPT_BEHIND`], are encrypted again when asked for (the same bytes).
pub const CACHED_BEHIND: u64 = 8;

/// `header || AES-128-CTR(payload)` of segment `sequence` of channel `number`, which loops
/// `looped`.
pub fn encrypt_segment(
    config: &Config,
    keys: &OperatorKeys,
    number: u16,
    looped: &Looped,
    sequence: u64,
) -> stb_protocol::Result<Vec<u8>> {
    let pos = looped.position(sequence);
    let epoch = config.epoch_of(pos.start_ms);
    let cipher = SegmentCipher::new(&keys.channel_key(number, epoch))?;
    let plain = looped.broadcast(sequence);
    cipher.encrypt_segment(number, epoch, sequence, plain)
}

/// Encrypt-once for a running server: a segment is encrypted the first time anyone asks for
/// it and then served to every viewer from memory, for the last [`CACHED_BEHIND`] segments of
/// each channel.
#[derive(Debug, Default)]
pub struct Packager {
    encrypted: Mutex<HashMap<u16, BTreeMap<u64, Bytes>>>,
}

impl Packager {
    /// Segment `sequence` of channel `number`, as [`encrypt_segment`] makes it.
    pub fn segment(
        &self,
        config: &Config,
        keys: &OperatorKeys,
        number: u16,
        looped: &Looped,
        sequence: u64,
    ) -> stb_protocol::Result<Bytes> {
        if let Some(bytes) = self.lock().get(&number).and_then(|c| c.get(&sequence)) {
            return Ok(bytes.clone());
        }
        // Encrypted outside the lock: viewers of other segments do not wait for it. Two
        // viewers arriving together may both encrypt; the bytes are the same.
        let bytes = Bytes::from(encrypt_segment(config, keys, number, looped, sequence)?);
        let mut cache = self.lock();
        let kept = cache.entry(number).or_default();
        let newest = kept
            .last_key_value()
            .map_or(sequence, |(&s, _)| s.max(sequence));
        if sequence + CACHED_BEHIND >= newest {
            kept.insert(sequence, bytes.clone());
            // Only this channel's map is pruned: the cost does not grow with the channels.
            *kept = kept.split_off(&newest.saturating_sub(CACHED_BEHIND));
        }
        Ok(bytes)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u16, BTreeMap<u64, Bytes>>> {
        // A panic elsewhere cannot leave the map half-written: serve on.
        self.encrypted.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    fn fixtures() -> (Config, OperatorKeys, Catalogue) {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../media-fixtures/channels.toml");
        let catalogue = Catalogue::load(&manifest).expect("catalogue");
        (
            Config::default(),
            OperatorKeys::from_master([7; 32]),
            catalogue,
        )
    }

    #[test]
    fn served_bytes_are_the_exported_bytes_encrypted_once() {
        let (config, keys, catalogue) = fixtures();
        let channel = catalogue.channels.values().next().expect("a channel");
        let (number, channel) = (channel.number, channel.looped().expect("looped"));
        let packager = Packager::default();
        let first = packager
            .segment(&config, &keys, number, channel, 1000)
            .expect("segment");
        let again = packager
            .segment(&config, &keys, number, channel, 1000)
            .expect("segment");
        assert_eq!(
            first.as_ref(),
            encrypt_segment(&config, &keys, number, channel, 1000).expect("export")
        );
        // The same allocation: the second viewer got the cached bytes, not a new encryption.
        assert_eq!(first.as_ptr(), again.as_ptr());
    }

    fn looped(c: &crate::catalogue::Channel) -> &Looped {
        c.looped().expect("looped")
    }

    #[test]
    fn segments_older_than_the_window_are_dropped() {
        let (config, keys, catalogue) = fixtures();
        let mut channels = catalogue.channels.values();
        let (one, two) = (channels.next().expect("one"), channels.next().expect("two"));
        let packager = Packager::default();
        for (channel, sequence) in [(one, 10), (two, 10), (one, 10 + CACHED_BEHIND)] {
            packager
                .segment(&config, &keys, channel.number, looped(channel), sequence)
                .expect("segment");
        }
        let cached =
            |p: &Packager, c: u16, s: u64| p.lock().get(&c).is_some_and(|m| m.contains_key(&s));
        assert!(cached(&packager, one.number, 10));
        packager
            .segment(&config, &keys, one.number, looped(one), 11 + CACHED_BEHIND)
            .expect("segment");
        assert!(!cached(&packager, one.number, 10));
        // Another channel's segments follow that channel's own newest.
        assert!(cached(&packager, two.number, 10));
        // An old segment is still served, the same bytes, without taking a place.
        let old = packager
            .segment(&config, &keys, one.number, looped(one), 5)
            .expect("segment");
        assert_eq!(
            old.as_ref(),
            encrypt_segment(&config, &keys, one.number, looped(one), 5).expect("export")
        );
        assert!(!cached(&packager, one.number, 5));
        let total: usize = packager.lock().values().map(BTreeMap::len).sum();
        assert_eq!(total, 3);
    }
}
