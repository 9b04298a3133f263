//! The subscriber's locker (`docs/protocol.md`, section 12b): objects and their index,
//! encrypted on the box under keys derived from KL, which only the subscriber has. The
//! content server stores opaque bytes: object ids, sizes and times are all it sees.
//!
//! An object is a sequence of chunks, each sealed with F under a key of its own object, its
//! place and whether it is the last one bound in: the server cannot reorder, swap, truncate
//! or extend chunks, nor move one object's bytes under another id, without the box noticing.
//! Fixed-size chunks let the box read any range of a recording (seek) with an HTTP range.

use crate::error::{DecodeError, Error, Result};
use crate::seal::{SEAL_OVERHEAD, SealingKey};
use crate::secret::{SecretArray, SecretVec};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Plaintext bytes per chunk (the last may hold fewer, down to none).
pub const CHUNK_LEN: usize = 65536;
/// Stored bytes of a full chunk.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + SEAL_OVERHEAD;

const INDEX_INFO: &[u8] = b"stb-locker/v1/index";
const OBJECT_INFO: &[u8] = b"stb-locker/v1/object";
const INDEX_CONTEXT: &[u8] = b"stb-locker/v1/index";
const CHUNK_CONTEXT: &[u8] = b"stb-locker/v1/chunk";

/// An object's id: 16 random bytes chosen by the box, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 16]);

impl ObjectId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(crate::random_array())
    }

    /// From its bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses 32 lowercase hex digits (nothing else is an id).
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let bad = DecodeError::InvalidField("object id");
        // hex accepts upper case too: an id has one spelling.
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad);
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).map_err(|_| bad)?;
        Ok(Self(out))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl core::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl core::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// KL, the locker key, and what is derived from it.
#[derive(Clone, Debug)]
pub struct LockerKey(SecretArray<32>);

impl LockerKey {
    /// From KL as carried in the personal data.
    pub fn new(kl: &SecretArray<32>) -> Self {
        Self(kl.clone())
    }

    fn index_key(&self) -> SealingKey {
        SealingKey::derive(self.0.expose(), &[INDEX_INFO])
    }

    /// The index key's bytes, for the test-vector file.
    #[cfg(test)]
    pub(crate) fn index_key_bytes(&self) -> Vec<u8> {
        self.index_key().key_bytes()
    }

    /// The key of one object (a new id for every object written: keys are never reused).
    pub fn object_key(&self, id: ObjectId) -> ObjectKey {
        ObjectKey {
            key: SealingKey::derive(self.0.expose(), &[OBJECT_INFO, id.as_bytes()]),
            id,
        }
    }

    /// Seals an index that will be stored as `version` (the version it replaces plus one).
    pub fn seal_index(&self, version: u64, iv: [u8; 16], plaintext: &[u8]) -> Vec<u8> {
        self.index_key()
            .seal(INDEX_CONTEXT, &version.to_be_bytes(), iv, plaintext)
    }

    /// Opens the index the server says is `version`. Another key, a changed byte, or an index
    /// stored under another version (a replayed old one) gives
    /// [`Error::AuthenticationFailed`].
    pub fn open_index(&self, version: u64, sealed: &[u8]) -> Result<SecretVec> {
        self.index_key()
            .open(INDEX_CONTEXT, &version.to_be_bytes(), sealed)
    }
}

/// The key of one object.
#[derive(Clone, Debug)]
pub struct ObjectKey {
    key: SealingKey,
    id: ObjectId,
}

impl ObjectKey {
    /// The key's bytes, for the test-vector file.
    #[cfg(test)]
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        self.key.key_bytes()
    }

    fn aad(&self, index: u64, last: bool) -> [u8; 25] {
        let mut aad = [0u8; 25];
        aad[..16].copy_from_slice(self.id.as_bytes());
        aad[16..24].copy_from_slice(&index.to_be_bytes());
        aad[24] = u8::from(last);
        aad
    }

    /// Seals chunk `index` (every chunk but the last holds exactly [`CHUNK_LEN`] bytes).
    pub fn seal_chunk(&self, index: u64, last: bool, iv: [u8; 16], plaintext: &[u8]) -> Vec<u8> {
        debug_assert!(plaintext.len() == CHUNK_LEN || (last && plaintext.len() < CHUNK_LEN));
        self.key
            .seal(CHUNK_CONTEXT, &self.aad(index, last), iv, plaintext)
    }

    /// Opens chunk `index` of an object of `chunks` chunks.
    pub fn open_chunk(&self, index: u64, chunks: u64, sealed: &[u8]) -> Result<SecretVec> {
        let last = index + 1 == chunks;
        let full = sealed.len() == SEALED_CHUNK_LEN;
        if index >= chunks || (!last && !full) || sealed.len() > SEALED_CHUNK_LEN {
            return Err(Error::AuthenticationFailed);
        }
        self.key.open(CHUNK_CONTEXT, &self.aad(index, last), sealed)
    }
}

/// The layout of a stored object, from its stored size alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Stored (sealed) size in bytes.
    pub sealed_len: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Plaintext size in bytes.
    pub plain_len: u64,
}

impl Layout {
    /// The layout of an object of `sealed_len` stored bytes; an impossible size (no chunk, or
    /// a last chunk shorter than its overhead) is an error.
    pub fn of_sealed(sealed_len: u64) -> Result<Self> {
        let full = SEALED_CHUNK_LEN as u64;
        let chunks = sealed_len.div_ceil(full);
        let tail = sealed_len - chunks.saturating_sub(1) * full;
        if chunks == 0 || tail < SEAL_OVERHEAD as u64 {
            return Err(Error::AuthenticationFailed);
        }
        Ok(Self {
            sealed_len,
            chunks,
            plain_len: sealed_len - chunks * SEAL_OVERHEAD as u64,
        })
    }

    /// The layout of an object that holds `plain_len` bytes.
    pub fn of_plain(plain_len: u64) -> Self {
        let chunks = (plain_len / CHUNK_LEN as u64) + 1
            - u64::from(plain_len > 0 && plain_len.is_multiple_of(CHUNK_LEN as u64));
        Self {
            sealed_len: plain_len + chunks * SEAL_OVERHEAD as u64,
            chunks,
            plain_len,
        }
    }

    /// What to fetch for the plaintext bytes `wanted` (clamped to the object): the stored
    /// byte range, the index of its first chunk, and where `wanted` starts in that chunk.
    pub fn sealed_range(&self, wanted: Range<u64>) -> (Range<u64>, u64, usize) {
        let end = wanted.end.min(self.plain_len);
        let start = wanted.start.min(end);
        let chunk = CHUNK_LEN as u64;
        let first = (start / chunk).min(self.chunks - 1);
        let last = if end > start {
            (end - 1) / chunk
        } else {
            first
        };
        let full = SEALED_CHUNK_LEN as u64;
        let range = first * full..((last + 1) * full).min(self.sealed_len);
        (range, first, (start - first * chunk) as usize)
    }
}

/// Seals an object as its bytes arrive, in any pieces (sans-IO: chunks come out, the caller
/// uploads them). A full chunk is held back until the next byte shows it is not the last.
pub struct ObjectSealer {
    key: ObjectKey,
    next: u64,
    pending: zeroize::Zeroizing<Vec<u8>>,
}

impl ObjectSealer {
    /// A sealer for a new object.
    pub fn new(key: ObjectKey) -> Self {
        Self {
            key,
            next: 0,
            pending: zeroize::Zeroizing::new(Vec::with_capacity(CHUNK_LEN)),
        }
    }

    /// Adds plaintext; returns the sealed bytes now ready (whole chunks, possibly none).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if self.pending.len() == CHUNK_LEN {
                out.extend(self.seal(false));
            }
            let take = (CHUNK_LEN - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        out
    }

    /// Seals what is left as the last chunk (an empty object is one empty chunk).
    pub fn finish(mut self) -> Vec<u8> {
        self.seal(true)
    }

    fn seal(&mut self, last: bool) -> Vec<u8> {
        let sealed = self
            .key
            .seal_chunk(self.next, last, crate::random_array(), &self.pending);
        zeroize::Zeroize::zeroize(&mut *self.pending);
        self.pending.clear();
        self.next += 1;
        sealed
    }
}

/// Opens an object's stored bytes as they arrive, from chunk `first` on (a range read), for an
/// object of the given layout. Sans-IO: bytes in, checked plaintext out.
pub struct ObjectOpener {
    key: ObjectKey,
    layout: Layout,
    next: u64,
    pending: Vec<u8>,
}

impl ObjectOpener {
    /// An opener starting at chunk `first`.
    pub fn new(key: ObjectKey, layout: Layout, first: u64) -> Self {
        Self {
            key,
            layout,
            next: first,
            pending: Vec::with_capacity(SEALED_CHUNK_LEN),
        }
    }

    /// Adds stored bytes; returns the plaintext of every chunk now complete. A chunk that
    /// does not open is an error, and nothing of it is returned.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<SecretVec>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let want = self.chunk_len()?;
            let take = (want - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == want {
                out.push(self.open()?);
            }
        }
        Ok(out)
    }

    /// Checks that the range ended on a chunk boundary (a short read is an error, not a
    /// shorter object); `whole` also requires it to have reached the object's end.
    pub fn finish(self, whole: bool) -> Result<()> {
        if !self.pending.is_empty() || (whole && self.next != self.layout.chunks) {
            return Err(Error::AuthenticationFailed);
        }
        Ok(())
    }

    fn chunk_len(&self) -> Result<usize> {
        if self.next >= self.layout.chunks {
            return Err(Error::AuthenticationFailed);
        }
        let full = SEALED_CHUNK_LEN as u64;
        Ok((self.layout.sealed_len - self.next * full).min(full) as usize)
    }

    fn open(&mut self) -> Result<SecretVec> {
        let plain = self
            .key
            .open_chunk(self.next, self.layout.chunks, &self.pending)?;
        self.pending.clear();
        self.next += 1;
        Ok(plain)
    }
}

/// The locker's index: every object's name and what the box shows about it. Stored sealed
/// under KL (so the server never sees a name), as the JSON below.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The entries, in no particular order.
    pub entries: Vec<Entry>,
}

/// One object in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The object holding the bytes.
    pub object: ObjectId,
    /// Its name: a path of folders and a file name, separated by `/`.
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// When it was written (Unix ms).
    pub modified_ms: i64,
    /// What it is.
    pub kind: Kind,
    /// For a recording, what was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
}

/// What an object is, for the box to choose how to show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Anything.
    File,
    /// A picture (JPEG, PNG).
    Picture,
    /// A recording of a channel: MPEG-TS.
    Recording,
}

/// What a recording holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The channel's number.
    pub channel: u16,
    /// The channel's name.
    pub channel_name: String,
    /// The programme's title.
    pub title: String,
    /// When the recording started (Unix ms).
    pub start_ms: i64,
    /// Its length in ms.
    pub duration_ms: u64,
    /// The programme's age rating from the guide, if it had one (parental control asks for
    /// the PIN before playing one above the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
    /// Where to seek: `[ms, offset]` pairs, ms into the recording and the plaintext offset
    /// of a GOP that starts then (a segment boundary), in increasing order. Empty: seek by
    /// the mean rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<[u64; 2]>,
}

impl Recording {
    /// The offset of the last mark at or before `ms` (a clean place to start decoding), if
    /// there are marks.
    pub fn offset_at(&self, ms: u64) -> Option<u64> {
        let i = self.marks.partition_point(|m| m[0] <= ms);
        self.marks.get(i.checked_sub(1)?).map(|m| m[1])
    }

    /// How far into the recording plaintext offset `offset` is, ms, between the marks
    /// around it, if there are marks.
    pub fn time_at(&self, offset: u64) -> Option<u64> {
        let i = self.marks.partition_point(|m| m[1] <= offset);
        let before = self.marks.get(i.checked_sub(1)?)?;
        let Some(after) = self.marks.get(i) else {
            return Some(before[0]);
        };
        let span = (after[1] - before[1]).max(1);
        Some(before[0] + (after[0] - before[0]) * (offset - before[1]) / span)
    }
}

impl Index {
    /// The JSON the index is stored as (before sealing).
    pub fn encode(&self) -> SecretVec {
        SecretVec::new(serde_json::to_vec(self).unwrap_or_else(|_| unreachable!()))
    }

    /// From the JSON opened with [`LockerKey::open_index`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|_| DecodeError::InvalidField("locker index"))
    }

    /// The entry named `name`.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LockerKey {
        LockerKey::new(&SecretArray::new([9; 32]))
    }

    fn seal_all(id: ObjectId, data: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = ObjectSealer::new(key().object_key(id));
        let mut out = Vec::new();
        for part in data.chunks(piece.max(1)) {
            out.extend(sealer.push(part));
        }
        out.extend(sealer.finish());
        out
    }

    fn open_all(id: ObjectId, sealed: &[u8], piece: usize) -> Result<Vec<u8>> {
        let layout = Layout::of_sealed(sealed.len() as u64)?;
        let mut opener = ObjectOpener::new(key().object_key(id), layout, 0);
        let mut out = Vec::new();
        for part in sealed.chunks(piece.max(1)) {
            for plain in opener.push(part)? {
                out.extend_from_slice(plain.expose());
            }
        }
        opener.finish(true)?;
        Ok(out)
    }

    #[test]
    fn objects_round_trip_at_every_size_boundary() {
        let id = ObjectId::from_bytes([3; 16]);
        for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = seal_all(id, &data, 10_000);
            let layout = Layout::of_plain(len as u64);
            assert_eq!(sealed.len() as u64, layout.sealed_len, "len {len}");
            assert_eq!(
                Layout::of_sealed(layout.sealed_len).expect("layout"),
                layout
            );
            assert_eq!(open_all(id, &sealed, 7_777).expect("opens"), data);
        }
    }

    #[test]
    fn truncation_reordering_and_another_id_are_refused() {
        let id = ObjectId::from_bytes([3; 16]);
        let data = vec![5u8; 2 * CHUNK_LEN + 10];
        let sealed = seal_all(id, &data, CHUNK_LEN);
        // Dropping the last chunk leaves a full chunk that was not sealed as the last.
        assert!(open_all(id, &sealed[..2 * SEALED_CHUNK_LEN], 4096).is_err());
        // Swapping the two full chunks.
        let mut swapped = sealed[SEALED_CHUNK_LEN..2 * SEALED_CHUNK_LEN].to_vec();
        swapped.extend_from_slice(&sealed[..SEALED_CHUNK_LEN]);
        swapped.extend_from_slice(&sealed[2 * SEALED_CHUNK_LEN..]);
        assert!(open_all(id, &swapped, 4096).is_err());
        // The same bytes under another id.
        assert!(open_all(ObjectId::from_bytes([4; 16]), &sealed, 4096).is_err());
        // One flipped bit anywhere.
        let mut flipped = sealed.clone();
        flipped[SEALED_CHUNK_LEN + 100] ^= 1;
        assert!(open_all(id, &flipped, 4096).is_err());
        // A stored size no object can have.
        assert!(Layout::of_sealed(SEALED_CHUNK_LEN as u64 + 47).is_err());
        assert!(Layout::of_sealed(0).is_err());
    }

    #[test]
    fn a_range_read_opens_only_the_chunks_it_needs() {
        let id = ObjectId::from_bytes([8; 16]);
        let data: Vec<u8> = (0..3 * CHUNK_LEN + 500).map(|i| (i / 3) as u8).collect();
        let sealed = seal_all(id, &data, 65_000);
        let layout = Layout::of_sealed(sealed.len() as u64).expect("layout");
        let wanted = CHUNK_LEN as u64 + 10..2 * CHUNK_LEN as u64 + 20;
        let (range, first, skip) = layout.sealed_range(wanted.clone());
        assert_eq!(first, 1);
        assert_eq!(range, SEALED_CHUNK_LEN as u64..3 * SEALED_CHUNK_LEN as u64);
        let mut opener = ObjectOpener::new(key().object_key(id), layout, first);
        let plain: Vec<u8> = opener
            .push(&sealed[range.start as usize..range.end as usize])
            .expect("opens")
            .iter()
            .flat_map(|p| p.expose().to_vec())
            .collect();
        opener.finish(false).expect("ends on a chunk");
        let len = (wanted.end - wanted.start) as usize;
        assert_eq!(
            &plain[skip..skip + len],
            &data[wanted.start as usize..wanted.end as usize]
        );
        // The tail: the last (short) chunk.
        let (range, first, _) = layout.sealed_range(3 * CHUNK_LEN as u64..u64::MAX);
        assert_eq!((range.end, first), (layout.sealed_len, 3));
    }

    #[test]
    fn the_index_is_bound_to_its_version() {
        let index = Index {
            entries: vec![Entry {
                object: ObjectId::from_bytes([1; 16]),
                name: "Pictures/beach.jpg".into(),
                size: 10,
                modified_ms: 1,
                kind: Kind::Picture,
                recording: None,
            }],
        };
        let sealed = key().seal_index(4, [2; 16], index.encode().expose());
        let opened = key().open_index(4, &sealed).expect("opens");
        assert_eq!(Index::decode(opened.expose()).expect("json"), index);
        assert_eq!(
            key().open_index(3, &sealed),
            Err(Error::AuthenticationFailed)
        );
        let other = LockerKey::new(&SecretArray::new([8; 32]));
        assert_eq!(
            other.open_index(4, &sealed),
            Err(Error::AuthenticationFailed)
        );
    }

    #[test]
    fn marks_map_time_and_offsets_both_ways() {
        let rec = Recording {
            channel: 1,
            channel_name: "One".into(),
            title: "t".into(),
            start_ms: 0,
            duration_ms: 30_000,
            rating: None,
            marks: vec![[0, 0], [10_000, 1_000], [20_000, 3_000]],
        };
        assert_eq!(rec.offset_at(0), Some(0));
        assert_eq!(rec.offset_at(15_000), Some(1_000));
        assert_eq!(rec.offset_at(99_000), Some(3_000));
        assert_eq!(rec.time_at(2_000), Some(15_000));
        assert_eq!(rec.time_at(5_000), Some(20_000));
        let none = Recording {
            marks: vec![],
            ..rec
        };
        assert_eq!((none.offset_at(5), none.time_at(5)), (None, None));
    }

    #[test]
    fn object_ids_parse_strictly() {
        let id = ObjectId::random();
        assert_eq!(ObjectId::parse(&id.to_string()), Ok(id));
        for bad in [
            "",
            "../../etc/passwd",
            &"A".repeat(32),
            &"0".repeat(31),
            &"g".repeat(32),
        ] {
            assert!(ObjectId::parse(bad).is_err(), "{bad}");
        }
    }
}
