//! The packager: a channel's segment `sequence`, encrypted under the key of the epoch it starts
//! in. Deterministic, so every server instance (and an offline export for a CDN or nginx)
//! produces the same bytes, and each segment is encrypted once for all subscribers.

use crate::catalogue::Channel;
use crate::config::Config;
use crate::keys::OperatorKeys;
use anyhow::Result;
use stb_protocol::SegmentCipher;

/// `header || AES-128-CTR(payload)` of segment `sequence` of `channel`.
pub fn encrypt_segment(
    config: &Config,
    keys: &OperatorKeys,
    channel: &Channel,
    sequence: u64,
) -> Result<Vec<u8>> {
    let pos = channel.position(sequence);
    let epoch = config.epoch_of(pos.start_ms);
    let cipher = SegmentCipher::new(&keys.channel_key(channel.number, epoch))?;
    let plain = channel.segments[pos.index].data.clone();
    Ok(cipher.encrypt_segment(channel.number, epoch, sequence, plain)?)
}
