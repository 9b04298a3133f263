//! Channel segment encryption: AES-128-CTR, CENC-style (`cenc` scheme, no subsample map).
//!
//! Each channel is encrypted once per key epoch, not per subscriber, so any HTTP cache can
//! carry the segments. A segment is `header || ciphertext`; the header names the key (16-byte
//! key id and epoch) and carries the segment's IV. The IV is 8 bytes derived from the key id,
//! epoch and sequence number followed by an 8-byte block counter starting at zero; the
//! counter block is incremented as one 128-bit big-endian integer, as in SP 800-38A and CENC.
//!
//! AES-CTR here comes from aws-lc-rs, which the TLS stack links anyway: it reaches ~0.9x of
//! OpenSSL where the RustCrypto `aes`+`ctr` pair reaches ~0.7x (see BENCHMARKS.md).

use crate::codec::{Reader, Writer, msg};
use crate::error::{DecodeError, Error, Result};
use crate::secret::SecretArray;
use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use sha2::{Digest, Sha256};

/// Length of an encoded [`SegmentHeader`].
pub const HEADER_LEN: usize = 2 + 2 + 16 + 4 + 8 + 16 + 4;
/// Largest segment payload accepted (a 1 s GOP at 40 Mbit/s fits many times over).
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// A 16-byte key identifier, public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    /// Lowercase hex, as in URLs and logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A channel content key for one epoch.
#[derive(Clone, Debug)]
pub struct ChannelKey {
    /// Its public identifier.
    pub key_id: KeyId,
    /// The AES-128 key.
    pub key: SecretArray<16>,
}

/// The clear header in front of each encrypted segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Channel number.
    pub channel: u16,
    /// Key that encrypts the payload.
    pub key_id: KeyId,
    /// Key epoch.
    pub epoch: u32,
    /// Segment sequence number, increasing along the channel's timeline.
    pub sequence: u64,
    /// Initial counter block.
    pub iv: [u8; 16],
    /// Payload length in bytes.
    pub payload_len: u32,
}

impl SegmentHeader {
    /// Wire form, [`HEADER_LEN`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(msg::SEGMENT);
        w.u16(self.channel);
        w.bytes(&self.key_id.0);
        w.u32(self.epoch);
        w.u64(self.sequence);
        w.bytes(&self.iv);
        w.u32(self.payload_len);
        w.buf
    }

    /// Parses the header at the start of `bytes`; the payload follows it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let head = bytes.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        let mut r = Reader::header(head, msg::SEGMENT)?;
        let header = Self {
            channel: r.u16()?,
            key_id: KeyId(r.array()?),
            epoch: r.u32()?,
            sequence: r.u64()?,
            iv: r.array()?,
            payload_len: r.u32()?,
        };
        if header.payload_len > MAX_PAYLOAD {
            return Err(DecodeError::InvalidLength("segment payload"));
        }
        r.finish()?;
        Ok(header)
    }
}

/// Splits the live stream (segments back to back, docs/protocol.md 12a) into whole segments,
/// whatever the sizes of the chunks the network delivers.
#[derive(Debug, Default)]
pub struct SegmentSplitter {
    buf: Vec<u8>,
}

impl SegmentSplitter {
    /// Appends bytes as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole segment (header and still-encrypted payload), `None` until one has
    /// arrived, or an error for a header that cannot be right (the stream is then unusable).
    pub fn next_segment(&mut self) -> Result<Option<(SegmentHeader, Vec<u8>)>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = SegmentHeader::decode(&self.buf)?;
        let total = HEADER_LEN + header.payload_len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..total].to_vec();
        self.buf.drain(..total);
        Ok(Some((header, payload)))
    }
}

/// The IV of a segment: SHA-256("stb/v1/segment-iv" || key id || epoch || sequence)[..8]
/// followed by eight zero bytes (the block counter).
pub fn segment_iv(key_id: &KeyId, epoch: u32, sequence: u64) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"stb/v1/segment-iv")
        .chain_update(key_id.0)
        .chain_update(epoch.to_be_bytes())
        .chain_update(sequence.to_be_bytes())
        .finalize();
    let mut iv = [0u8; 16];
    iv[..8].copy_from_slice(&digest[..8]);
    iv
}

/// AES-128-CTR with one channel key; cheap to reuse across segments.
pub struct SegmentCipher {
    key_id: KeyId,
    key: DecryptingKey,
}

impl core::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SegmentCipher({})", self.key_id.to_hex())
    }
}

impl SegmentCipher {
    /// Expands the key schedule.
    pub fn new(key: &ChannelKey) -> Result<Self> {
        let unbound =
            UnboundCipherKey::new(&AES_128, key.key.expose()).map_err(|_| Error::Cipher)?;
        let key_id = key.key_id;
        Ok(Self {
            key_id,
            key: DecryptingKey::ctr(unbound).map_err(|_| Error::Cipher)?,
        })
    }

    /// The key id this cipher holds.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// XORs the key stream into `buf`, where `buf` starts `offset` bytes into the segment
    /// payload that begins at counter block `iv`. Encryption and decryption are the same
    /// operation; any byte range can be processed on its own (a player can join mid-segment).
    pub fn apply_keystream_at(&self, iv: &[u8; 16], offset: u64, buf: &mut [u8]) -> Result<()> {
        let mut counter = u128::from_be_bytes(*iv).wrapping_add(u128::from(offset / 16));
        let skip = (offset % 16) as usize;
        let mut rest = buf;
        if skip != 0 && !rest.is_empty() {
            // Partial first block: run a whole block and keep the bytes that overlap.
            let n = rest.len().min(16 - skip);
            let mut block = [0u8; 16];
            block[skip..skip + n].copy_from_slice(&rest[..n]);
            self.ctr(counter, &mut block)?;
            rest[..n].copy_from_slice(&block[skip..skip + n]);
            rest = &mut rest[n..];
            counter = counter.wrapping_add(1);
        }
        if !rest.is_empty() {
            self.ctr(counter, rest)?;
        }
        Ok(())
    }

    fn ctr(&self, counter: u128, buf: &mut [u8]) -> Result<()> {
        let context = DecryptionContext::Iv128(FixedLength::from(counter.to_be_bytes()));
        self.key.decrypt(buf, context).map_err(|_| Error::Cipher)?;
        Ok(())
    }

    /// Encrypts a whole segment payload and returns `header || ciphertext`.
    pub fn encrypt_segment(
        &self,
        channel: u16,
        epoch: u32,
        sequence: u64,
        mut payload: Vec<u8>,
    ) -> Result<Vec<u8>> {
        let payload_len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n <= MAX_PAYLOAD)
            .ok_or(Error::TooLarge("segment payload"))?;
        let iv = segment_iv(&self.key_id, epoch, sequence);
        self.apply_keystream_at(&iv, 0, &mut payload)?;
        let header = SegmentHeader {
            channel,
            key_id: self.key_id,
            epoch,
            sequence,
            iv,
            payload_len,
        };
        let mut out = header.encode();
        out.append(&mut payload);
        Ok(out)
    }

    /// Decrypts the payload of a segment in place, after checking that `header` names this
    /// key and carries the IV its key id, epoch and sequence derive: a segment whose IV was
    /// altered would otherwise decrypt with a keystream reused from another segment.
    pub fn decrypt_segment(&self, header: &SegmentHeader, payload: &mut [u8]) -> Result<()> {
        if header.key_id != self.key_id {
            return Err(Error::SegmentMismatch("key id"));
        }
        if header.iv != segment_iv(&self.key_id, header.epoch, header.sequence) {
            return Err(Error::SegmentMismatch("iv"));
        }
        if usize::try_from(header.payload_len).ok() != Some(payload.len()) {
            return Err(Error::SegmentMismatch("payload length"));
        }
        self.apply_keystream_at(&header.iv, 0, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypt_segment_refuses_a_header_that_does_not_derive_its_iv() {
        let key = ChannelKey {
            key_id: KeyId([7; 16]),
            key: SecretArray::new([9; 16]),
        };
        let cipher = SegmentCipher::new(&key).expect("cipher");
        let plain: Vec<u8> = (0..200u8).collect();
        let segment = cipher.encrypt_segment(1, 2, 3, plain.clone()).expect("enc");
        let header = SegmentHeader::decode(&segment).expect("header");
        let mut payload = segment[HEADER_LEN..].to_vec();
        cipher.decrypt_segment(&header, &mut payload).expect("dec");
        assert_eq!(payload, plain);
        for tamper in [
            |h: &mut SegmentHeader| h.iv[15] ^= 1,
            |h: &mut SegmentHeader| h.sequence += 1,
            |h: &mut SegmentHeader| h.key_id.0[0] ^= 1,
            |h: &mut SegmentHeader| h.payload_len -= 1,
        ] {
            let mut bad = header.clone();
            tamper(&mut bad);
            let mut payload = segment[HEADER_LEN..].to_vec();
            assert!(matches!(
                cipher.decrypt_segment(&bad, &mut payload),
                Err(Error::SegmentMismatch(_))
            ));
        }
    }

    fn cipher() -> SegmentCipher {
        let key = ChannelKey {
            key_id: KeyId([9; 16]),
            key: SecretArray::new([3; 16]),
        };
        SegmentCipher::new(&key).expect("key")
    }

    #[test]
    fn any_offset_matches_whole_pass() {
        let c = cipher();
        let iv = [0xab; 16];
        let mut whole = (0..1000u32).map(|i| i as u8).collect::<Vec<_>>();
        let plain = whole.clone();
        c.apply_keystream_at(&iv, 0, &mut whole).expect("ctr");
        for start in [0usize, 1, 15, 16, 17, 31, 500, 999] {
            for len in [0usize, 1, 5, 16, 33, 1000 - start] {
                let end = (start + len).min(1000);
                let mut part = plain[start..end].to_vec();
                c.apply_keystream_at(&iv, start as u64, &mut part)
                    .expect("ctr");
                assert_eq!(part, whole[start..end], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn counter_carries_across_64_bits_like_rustcrypto() {
        use ctr::cipher::{KeyIvInit, StreamCipher};
        let iv = [
            0x11, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
        ];
        let mut ours = vec![0u8; 80];
        cipher().apply_keystream_at(&iv, 0, &mut ours).expect("ctr");
        let mut theirs = vec![0u8; 80];
        let mut rc = ctr::Ctr128BE::<aes::Aes128>::new(&[3u8; 16].into(), &iv.into());
        rc.apply_keystream(&mut theirs);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn splitter_reassembles_any_chunking() {
        let c = cipher();
        let stream = [
            c.encrypt_segment(1, 0, 5, vec![7; 300]).expect("seg"),
            c.encrypt_segment(1, 0, 6, vec![8; 10]).expect("seg"),
        ]
        .concat();
        for chunk in [1, 7, 52, 53, 1000] {
            let mut split = SegmentSplitter::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(chunk) {
                split.push(piece);
                while let Some((h, payload)) = split.next_segment().expect("valid") {
                    seen.push((h.sequence, payload.len()));
                }
            }
            assert_eq!(seen, vec![(5, 300), (6, 10)], "chunks of {chunk}");
        }
        let mut bad = SegmentSplitter::default();
        bad.push(&[0u8; HEADER_LEN]);
        assert!(bad.next_segment().is_err());
    }

    #[test]
    fn header_round_trip_and_bounds() {
        let seg = cipher()
            .encrypt_segment(7, 2, 40, vec![1, 2, 3])
            .expect("encrypt");
        let h = SegmentHeader::decode(&seg).expect("header");
        assert_eq!(
            (h.channel, h.epoch, h.sequence, h.payload_len),
            (7, 2, 40, 3)
        );
        assert_eq!(seg.len(), HEADER_LEN + 3);
        assert_eq!(
            SegmentHeader::decode(&seg[..HEADER_LEN - 1]),
            Err(DecodeError::Truncated)
        );
    }
}
