//! The packager: a channel's segment `sequence`, encrypted under the key of the epoch it starts
//! in. Deterministic, so every server instance (and an offline export for a CDN or nginx)
//! produces the same bytes, and each segment is encrypted once for all subscribers: the
//! server asks [`Packager::segment`], which keeps what it encrypted in memory; an export calls
//! [`encrypt_segment`] directly.

use crate::catalogue::Channel;
use crate::config::Config;
use crate::keys::OperatorKeys;
use axum::body::Bytes;
use stb_protocol::SegmentCipher;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// How many segments behind the newest one asked for a channel keeps in memory. The server
/// serves no older segment either: past this it would encrypt again for a late viewer.
pub const KEPT_BEHIND: u64 = 120;

/// `header || AES-128-CTR(payload)` of segment `sequence` of `channel`.
pub fn encrypt_segment(
    config: &Config,
    keys: &OperatorKeys,
    channel: &Channel,
    sequence: u64,
) -> stb_protocol::Result<Vec<u8>> {
    let pos = channel.position(sequence);
    let epoch = config.epoch_of(pos.start_ms);
    let cipher = SegmentCipher::new(&keys.channel_key(channel.number, epoch))?;
    let plain = channel.segments[pos.index].data.clone();
    cipher.encrypt_segment(channel.number, epoch, sequence, plain)
}

/// Encrypt-once for a running server: a segment is encrypted the first time anyone asks for
/// it and then served to every viewer from memory, for the last [`KEPT_BEHIND`] segments of
/// each channel.
#[derive(Debug, Default)]
pub struct Packager {
    encrypted: Mutex<HashMap<(u16, u64), Bytes>>,
}

impl Packager {
    /// Segment `sequence` of `channel`, as [`encrypt_segment`] makes it.
    pub fn segment(
        &self,
        config: &Config,
        keys: &OperatorKeys,
        channel: &Channel,
        sequence: u64,
    ) -> stb_protocol::Result<Bytes> {
        let id = (channel.number, sequence);
        if let Some(bytes) = self.lock().get(&id) {
            return Ok(bytes.clone());
        }
        // Encrypted outside the lock: viewers of other segments do not wait for it. Two
        // viewers arriving together may both encrypt; the bytes are the same.
        let bytes = Bytes::from(encrypt_segment(config, keys, channel, sequence)?);
        let mut cache = self.lock();
        cache.retain(|&(c, s), _| c != channel.number || s + KEPT_BEHIND >= sequence);
        cache.insert(id, bytes.clone());
        Ok(bytes)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(u16, u64), Bytes>> {
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
        let packager = Packager::default();
        let first = packager
            .segment(&config, &keys, channel, 1000)
            .expect("segment");
        let again = packager
            .segment(&config, &keys, channel, 1000)
            .expect("segment");
        assert_eq!(
            first.as_ref(),
            encrypt_segment(&config, &keys, channel, 1000).expect("export")
        );
        // The same allocation: the second viewer got the cached bytes, not a new encryption.
        assert_eq!(first.as_ptr(), again.as_ptr());
    }

    #[test]
    fn segments_older_than_the_window_are_dropped() {
        let (config, keys, catalogue) = fixtures();
        let mut channels = catalogue.channels.values();
        let (one, two) = (channels.next().expect("one"), channels.next().expect("two"));
        let packager = Packager::default();
        for (channel, sequence) in [(one, 10), (two, 10), (one, 10 + KEPT_BEHIND)] {
            packager
                .segment(&config, &keys, channel, sequence)
                .expect("segment");
        }
        assert!(packager.lock().contains_key(&(one.number, 10)));
        packager
            .segment(&config, &keys, one, 11 + KEPT_BEHIND)
            .expect("segment");
        let cache = packager.lock();
        assert!(!cache.contains_key(&(one.number, 10)));
        // Another channel's segments follow that channel's own newest.
        assert!(cache.contains_key(&(two.number, 10)));
        assert_eq!(cache.len(), 3);
    }
}
