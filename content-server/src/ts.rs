//! Splits an MPEG transport stream into GOP-aligned segments.
//!
//! A segment starts at a video packet that begins a PES (payload_unit_start) and carries the
//! random_access_indicator (set by muxers on IDR frames), and runs to the next one. The
//! stream's PAT and PMT are put in front of every segment so that a player can start decoding
//! any segment on its own: that is what makes a zap fast.

use thiserror::Error;

const PACKET: usize = 188;
const SYNC: u8 = 0x47;

/// Why a file could not be segmented.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TsError {
    /// Not a whole number of 188-byte packets, or a lost sync byte.
    #[error("not an aligned MPEG-TS stream (bad sync at packet {0})")]
    BadSync(usize),
    /// No PAT or PMT, or no H.264 stream in the PMT.
    #[error("no program with an H.264 stream")]
    NoVideo,
    /// No random-access point found.
    #[error("no keyframe flagged as a random access point")]
    NoKeyframe,
}

/// One GOP-aligned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// PAT + PMT + the GOP's packets.
    pub data: Vec<u8>,
    /// Presentation duration in milliseconds.
    pub duration_ms: u64,
}

fn pid(p: &[u8]) -> u16 {
    (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])
}

fn pusi(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

/// The payload of a packet (after the adaptation field), if any.
fn payload(p: &[u8]) -> Option<&[u8]> {
    let afc = (p[3] >> 4) & 3;
    match afc {
        1 => Some(&p[4..]),
        3 => {
            let len = usize::from(p[4]);
            p.get(5 + len..)
        }
        _ => None,
    }
}

fn random_access(p: &[u8]) -> bool {
    let afc = (p[3] >> 4) & 3;
    (afc == 2 || afc == 3) && p[4] > 0 && p[5] & 0x40 != 0
}

/// PTS (90 kHz) of the PES that starts in this payload.
fn pes_pts(payload: &[u8]) -> Option<u64> {
    if payload.len() < 14 || payload[..3] != [0, 0, 1] || payload[7] & 0x80 == 0 {
        return None;
    }
    Some(read_timestamp(&payload[9..14]))
}

/// MPEG timestamps are 33-bit counts of 90 kHz ticks, wrapping.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// A PES header's 5-byte PTS or DTS field.
fn read_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] & 0x0e) << 29)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] & 0xfe) << 14)
        | (u64::from(b[3]) << 7)
        | (u64::from(b[4]) >> 1)
}

/// Writes `t` into a PTS or DTS field, keeping its prefix and marker bits.
fn write_timestamp(b: &mut [u8], t: u64) {
    b[0] = (b[0] & 0xf1) | ((t >> 29) as u8 & 0x0e);
    b[1] = (t >> 22) as u8;
    b[2] = (b[2] & 0x01) | ((t >> 14) as u8 & 0xfe);
    b[3] = (t >> 7) as u8;
    b[4] = (b[4] & 0x01) | ((t << 1) as u8 & 0xfe);
}

/// The 33-bit, 90 kHz base of the packet's PCR, if it carries one (then 6 reserved bits and
/// a 9-bit extension, left as they are).
fn pcr_base(p: &[u8]) -> Option<u64> {
    let afc = (p[3] >> 4) & 3;
    if afc & 2 == 0 || p[4] < 7 || p[5] & 0x10 == 0 {
        return None;
    }
    let b = &p[6..11];
    Some(
        (u64::from(b[0]) << 25)
            | (u64::from(b[1]) << 17)
            | (u64::from(b[2]) << 9)
            | (u64::from(b[3]) << 1)
            | (u64::from(b[4]) >> 7),
    )
}

/// Moves every timestamp of `ts` (PCR, PTS, DTS) `ticks` of 90 kHz later, modulo 2^33: a file
/// looped for the `n`th time is moved by `n` times its length, so that a viewer's stream
/// goes on without jumping back at each loop (a head-end's output never does; a decoder that
/// meets one may take it for the 26.5-hour wrap and wait that long). Packets that are cut
/// short are left as they are.
pub fn shift_timestamps(ts: &mut [u8], ticks: u64) {
    let ticks = ticks & TIMESTAMP_MASK;
    if ticks == 0 {
        return;
    }
    for p in ts.chunks_exact_mut(PACKET) {
        if p[0] != SYNC {
            continue;
        }
        if let Some(base) = pcr_base(p) {
            let base = (base + ticks) & TIMESTAMP_MASK;
            let b = &mut p[6..11];
            b[0] = (base >> 25) as u8;
            b[1] = (base >> 17) as u8;
            b[2] = (base >> 9) as u8;
            b[3] = (base >> 1) as u8;
            b[4] = (b[4] & 0x7f) | ((base as u8 & 1) << 7);
        }
        let Some(start) = payload(p).filter(|_| pusi(p)).map(|pl| PACKET - pl.len()) else {
            continue;
        };
        let pes = &mut p[start..];
        // Stream ids with the optional PES header that carries PTS/DTS (not padding,
        // private stream 2, ECM/EMM, DSM-CC and the like).
        if pes.len() < 9
            || pes[..3] != [0, 0, 1]
            || matches!(pes[3], 0xbc | 0xbe..=0xbf | 0xf0..=0xf2 | 0xf8 | 0xff)
        {
            continue;
        }
        let flags = pes[7] >> 6;
        for (present, at) in [(flags & 2 != 0, 9), (flags == 3, 14)] {
            if present && let Some(field) = pes.get_mut(at..at + 5) {
                let t = (read_timestamp(field) + ticks) & TIMESTAMP_MASK;
                write_timestamp(field, t);
            }
        }
    }
}

/// Section body of a PSI packet (pointer field skipped).
fn section(p: &[u8]) -> Option<&[u8]> {
    let pl = payload(p)?;
    let pointer = usize::from(*pl.first()?);
    pl.get(1 + pointer..)
}

fn pmt_pid(pat: &[u8]) -> Option<u16> {
    let s = section(pat)?;
    let len = (usize::from(s.get(1)? & 0x0f) << 8) | usize::from(*s.get(2)?);
    let programs = s.get(8..3 + len.checked_sub(4)?)?;
    programs.chunks_exact(4).find_map(|e| {
        let number = u16::from_be_bytes([e[0], e[1]]);
        (number != 0).then(|| (u16::from(e[2] & 0x1f) << 8) | u16::from(e[3]))
    })
}

fn h264_pid(pmt: &[u8]) -> Option<u16> {
    let s = section(pmt)?;
    let len = (usize::from(s.get(1)? & 0x0f) << 8) | usize::from(*s.get(2)?);
    let info_len = (usize::from(s.get(10)? & 0x0f) << 8) | usize::from(*s.get(11)?);
    let mut es = s.get(12 + info_len..3 + len.checked_sub(4)?)?;
    while es.len() >= 5 {
        let stream_type = es[0];
        let pid = (u16::from(es[1] & 0x1f) << 8) | u16::from(es[2]);
        let es_info = (usize::from(es[3] & 0x0f) << 8) | usize::from(es[4]);
        if stream_type == 0x1b {
            return Some(pid);
        }
        es = es.get(5 + es_info..)?;
    }
    None
}

/// Splits `ts` at every video random-access point.
pub fn segment(ts: &[u8]) -> Result<Vec<Segment>, TsError> {
    if !ts.len().is_multiple_of(PACKET) {
        return Err(TsError::BadSync(ts.len() / PACKET));
    }
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    if let Some(i) = packets.iter().position(|p| p[0] != SYNC) {
        return Err(TsError::BadSync(i));
    }
    let pat = *packets
        .iter()
        .find(|p| pid(p) == 0 && pusi(p))
        .ok_or(TsError::NoVideo)?;
    let pmt_pid = pmt_pid(pat).ok_or(TsError::NoVideo)?;
    let pmt = *packets
        .iter()
        .find(|p| pid(p) == pmt_pid && pusi(p))
        .ok_or(TsError::NoVideo)?;
    let video = h264_pid(pmt).ok_or(TsError::NoVideo)?;

    // (packet index, PTS) of every random-access point, and the last video PTS.
    let mut starts: Vec<(usize, Option<u64>)> = Vec::new();
    let mut last_pts = None;
    for (i, p) in packets.iter().enumerate() {
        if pid(p) != video || !pusi(p) {
            continue;
        }
        let pts = payload(p).and_then(pes_pts);
        if pts.is_some() {
            last_pts = pts;
        }
        if random_access(p) {
            starts.push((i, pts));
        }
    }
    if starts.is_empty() {
        return Err(TsError::NoKeyframe);
    }
    let ms = |ticks: u64| ticks / 90;
    let mut segments = Vec::with_capacity(starts.len());
    for (n, &(start, pts)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(packets.len(), |&(i, _)| i);
        let duration_ms = match (pts, starts.get(n + 1).and_then(|&(_, p)| p), last_pts) {
            (Some(a), Some(b), _) if b > a => ms(b - a),
            // Last GOP: up to the last frame, plus one frame (assume 25 fps if unknown).
            (Some(a), None, Some(last)) if last >= a => ms(last - a) + 40,
            _ => 1000,
        };
        let mut data = Vec::with_capacity((end - start + 2) * PACKET);
        data.extend_from_slice(pat);
        data.extend_from_slice(pmt);
        for p in &packets[start..end] {
            data.extend_from_slice(p);
        }
        segments.push(Segment { data, duration_ms });
    }
    Ok(segments)
}

/// Why a live input gives no segment (reported to the operator, never fatal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputStatus {
    /// Nothing received yet.
    Waiting,
    /// Bytes arrive but are not 188-byte MPEG-TS packets.
    NoSync,
    /// Packets arrive but no PAT/PMT naming a program.
    NoProgram,
    /// The program has no H.264 video stream.
    NoVideo,
    /// H.264 arrives but no random access point (no IDR flagged) yet.
    NoKeyframe,
    /// A group of pictures grew past the size cap without a random access point (a flood,
    /// or an encoder with an absurd GOP): dropped.
    GopTooLarge,
    /// Segments are coming out.
    Ok,
}

impl InputStatus {
    /// What the operator is told.
    pub fn describe(self) -> &'static str {
        match self {
            InputStatus::Waiting => "no data received",
            InputStatus::NoSync => "data is not an MPEG transport stream (no 0x47 sync)",
            InputStatus::NoProgram => "no PAT/PMT in the transport stream",
            InputStatus::NoVideo => "the program has no H.264 video stream",
            InputStatus::NoKeyframe => "no keyframe (IDR flagged as a random access point)",
            InputStatus::GopTooLarge => "a GOP exceeded the size cap and was dropped",
            InputStatus::Ok => "ok",
        }
    }
}

/// A GOP being received.
#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    first_pts: Option<u64>,
    last_pts: Option<u64>,
}

/// Splits a live transport stream, fed in chunks of any size, into segments as [`segment`]
/// does for a file: each starts with the stream's latest PAT and PMT and a random access point,
/// and ends at the next random access point at least `min_ms` later (short GOPs are merged).
/// A segment's duration comes from the timestamps; across a jump (backwards, or more than
/// `max_gop_ms`: an encoder restart, a looped source) it is the previous one's. Only a
/// single-packet PMT is read, and the first program of the PAT. Sans-IO: the caller reads
/// the input and publishes what comes out.
#[derive(Debug)]
pub struct Splitter {
    carry: Vec<u8>,
    pat: Option<Vec<u8>>,
    pmt_pid: Option<u16>,
    pmt: Option<Vec<u8>>,
    video: Option<u16>,
    current: Option<Pending>,
    /// A segment came out since the last reset.
    emitted: bool,
    /// What went wrong since the last segment came out.
    problem: Option<InputStatus>,
    seen: bool,
    min_ms: u64,
    max_gop_ms: u64,
    max_bytes: usize,
    /// The last duration taken from timestamps: what a segment across a timestamp jump gets.
    last_duration_ms: u64,
}

/// 90 kHz ticks between two PTS, across the 33-bit wrap.
fn pts_delta(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & ((1 << 33) - 1)
}

impl Splitter {
    /// A splitter merging GOPs shorter than `min_ms`, taking `max_gop_ms` and more for a
    /// timestamp jump, and dropping GOPs larger than `max_bytes`.
    pub fn new(min_ms: u64, max_gop_ms: u64, max_bytes: usize) -> Self {
        Self {
            carry: Vec::new(),
            pat: None,
            pmt_pid: None,
            pmt: None,
            video: None,
            current: None,
            emitted: false,
            problem: None,
            seen: false,
            min_ms,
            max_gop_ms,
            max_bytes,
            last_duration_ms: 1000,
        }
    }

    /// Where the input stands.
    pub fn status(&self) -> InputStatus {
        if let Some(problem) = self.problem {
            problem
        } else if self.emitted {
            InputStatus::Ok
        } else if !self.seen {
            InputStatus::Waiting
        } else if self.video.is_none() {
            InputStatus::NoProgram
        } else {
            // The first GOP may be under way: the caller reports this only if it lasts.
            InputStatus::NoKeyframe
        }
    }

    /// Forgets the stream (the input was lost; what comes back may be another stream).
    pub fn reset(&mut self) {
        *self = Self::new(self.min_ms, self.max_gop_ms, self.max_bytes);
    }

    /// Takes `bytes` and returns the segments they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Segment> {
        let mut out = Vec::new();
        self.seen |= !bytes.is_empty();
        self.carry.extend_from_slice(bytes);
        let mut at = 0;
        while self.carry.len() - at >= PACKET {
            // In sync: a sync byte here and, when it has arrived, one packet further.
            let synced =
                self.carry[at] == SYNC && self.carry.get(at + PACKET).is_none_or(|&b| b == SYNC);
            if !synced {
                // Lost sync: skip to the next sync byte (a datagram lost mid-packet, garbage).
                self.problem = Some(InputStatus::NoSync);
                at += self.carry[at + 1..]
                    .iter()
                    .position(|&b| b == SYNC)
                    .map_or(self.carry.len() - at, |i| i + 1);
                continue;
            }
            let mut packet = [0u8; PACKET];
            packet.copy_from_slice(&self.carry[at..at + PACKET]);
            at += PACKET;
            if let Some(segment) = self.packet(&packet) {
                out.push(segment);
            }
        }
        self.carry.drain(..at);
        out
    }

    /// The GOP received so far, as a segment (the input stopped: no next keyframe will end it).
    pub fn flush(&mut self) -> Option<Segment> {
        let p = self.current.take()?;
        let duration_ms = match (p.first_pts, p.last_pts) {
            (Some(a), Some(b)) => self.duration(a, b) + 40,
            _ => self.last_duration_ms,
        };
        Some(Segment {
            data: p.data,
            duration_ms,
        })
    }

    /// Milliseconds from PTS `a` to PTS `b`, or the last good duration across a jump.
    fn duration(&mut self, a: u64, b: u64) -> u64 {
        let ms = pts_delta(a, b) / 90;
        if (1..=self.max_gop_ms).contains(&ms) {
            self.last_duration_ms = ms;
            ms
        } else {
            self.last_duration_ms
        }
    }

    fn packet(&mut self, p: &[u8; PACKET]) -> Option<Segment> {
        let id = pid(p);
        if id == 0 && pusi(p) {
            match pmt_pid(p) {
                Some(pmt) => {
                    if self.pmt_pid != Some(pmt) {
                        // Another program: the GOP under way cannot continue in it.
                        (self.pmt, self.video, self.current) = (None, None, None);
                    }
                    self.pmt_pid = Some(pmt);
                    self.pat = Some(p.to_vec());
                }
                None => self.problem = Some(InputStatus::NoProgram),
            }
        } else if Some(id) == self.pmt_pid && pusi(p) {
            match h264_pid(p) {
                Some(video) => {
                    if self.video != Some(video) {
                        self.current = None;
                    }
                    (self.video, self.pmt) = (Some(video), Some(p.to_vec()));
                }
                None => {
                    (self.video, self.pmt, self.current) = (None, None, None);
                    self.problem = Some(InputStatus::NoVideo);
                }
            }
        }
        let video = self.video?;
        let mut done = None;
        if id == video && pusi(p) {
            let pts = payload(p).and_then(pes_pts);
            if random_access(p) {
                // Without timestamps GOPs are not merged (nothing says how long they are).
                let long_enough = match (&self.current, pts) {
                    (Some(c), Some(now)) => c.first_pts.is_none_or(|first| {
                        let ticks = pts_delta(first, now);
                        ticks >= self.min_ms * 90 || ticks > self.max_gop_ms * 90
                    }),
                    _ => true,
                };
                if long_enough {
                    done = self.current.take().map(|c| {
                        let duration_ms = match (c.first_pts, pts) {
                            (Some(a), Some(b)) => self.duration(a, b),
                            _ => self.last_duration_ms,
                        };
                        Segment {
                            data: c.data,
                            duration_ms,
                        }
                    });
                    let mut data = Vec::with_capacity(64 * PACKET);
                    data.extend_from_slice(self.pat.as_deref().unwrap_or_default());
                    data.extend_from_slice(self.pmt.as_deref().unwrap_or_default());
                    self.current = Some(Pending {
                        data,
                        first_pts: pts,
                        last_pts: pts,
                    });
                }
            }
            if let (Some(c), Some(pts)) = (&mut self.current, pts) {
                c.last_pts = Some(pts);
            }
        }
        if let Some(c) = &mut self.current {
            c.data.extend_from_slice(p);
            if c.data.len() > self.max_bytes {
                self.current = None;
                self.problem = Some(InputStatus::GopTooLarge);
            }
        }
        if done.is_some() {
            (self.emitted, self.problem) = (true, None);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../media-fixtures/ch1.ts");
        std::fs::read(path).expect("fixture ch1.ts")
    }

    /// Every PCR, PTS and DTS of `ts`, in order.
    fn timestamps(ts: &[u8]) -> Vec<u64> {
        let mut all = Vec::new();
        for p in ts.chunks_exact(PACKET) {
            all.extend(pcr_base(p));
            if let (true, Some(pes)) = (pusi(p), payload(p))
                && let Some(pts) = pes_pts(pes)
            {
                all.push(pts);
                if pes[7] >> 6 == 3 {
                    all.push(read_timestamp(&pes[14..19]));
                }
            }
        }
        all
    }

    #[test]
    fn shifted_timestamps_move_on_and_wrap_and_nothing_else_changes() {
        let ts = fixture();
        let before = timestamps(&ts);
        assert!(before.len() > 1000, "PCRs, PTSs and DTSs found");
        for ticks in [24_000 * 90, TIMESTAMP_MASK - 45_000] {
            let mut moved = ts.clone();
            shift_timestamps(&mut moved, ticks);
            let after = timestamps(&moved);
            let expected: Vec<u64> = before
                .iter()
                .map(|t| (t + ticks) & TIMESTAMP_MASK)
                .collect();
            assert_eq!(after, expected);
            // Only timestamp bits changed: shifting back restores the file byte for byte.
            shift_timestamps(&mut moved, (1 << 33) - ticks);
            assert!(moved == ts, "shift by {ticks} and back");
        }
    }

    #[test]
    fn one_second_gops() {
        let segments = segment(&fixture()).expect("segments");
        assert_eq!(segments.len(), 24);
        let total: u64 = segments.iter().map(|s| s.duration_ms).sum();
        assert!((23_900..=24_100).contains(&total), "{total}");
        for s in &segments {
            assert!((900..=1100).contains(&s.duration_ms), "{}", s.duration_ms);
            assert_eq!(s.data.len() % PACKET, 0);
            assert_eq!(pid(&s.data[..PACKET]), 0);
            assert!(random_access(&s.data[2 * PACKET..3 * PACKET]));
        }
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(segment(&[0u8; 188 * 3]), Err(TsError::BadSync(0)));
        assert_eq!(segment(&[0x47u8; 100]), Err(TsError::BadSync(0)));
        let mut no_pat = vec![0u8; 188];
        no_pat[0] = SYNC;
        no_pat[1] = 0x1f;
        no_pat[2] = 0xff;
        assert_eq!(segment(&no_pat), Err(TsError::NoVideo));
    }

    /// The fixture fed in chunks of awkward sizes, as datagrams and HTTP reads would come.
    fn split_live(ts: &[u8], splitter: &mut Splitter) -> Vec<Segment> {
        let mut out = Vec::new();
        let sizes = [1, 7, 1316, 4000, 188, 9999];
        let (mut at, mut i) = (0, 0);
        while at < ts.len() {
            let n = sizes[i % sizes.len()].min(ts.len() - at);
            out.extend(splitter.push(&ts[at..at + n]));
            (at, i) = (at + n, i + 1);
        }
        out
    }

    #[test]
    fn a_live_stream_splits_as_the_file_does() {
        let ts = fixture();
        let file = segment(&ts).expect("segments");
        let mut splitter = Splitter::new(500, 10_000, 8 << 20);
        assert_eq!(splitter.status(), InputStatus::Waiting);
        let mut live = split_live(&ts, &mut splitter);
        assert_eq!(splitter.status(), InputStatus::Ok);
        // The last GOP ends when the input stops.
        live.push(splitter.flush().expect("last GOP"));
        assert_eq!(live.len(), file.len());
        for (l, f) in live.iter().zip(&file) {
            // The PAT/PMT in front are the latest ones (their continuity counters differ).
            assert_eq!(l.data[2 * PACKET..], f.data[2 * PACKET..]);
            assert_eq!(
                (pid(&l.data), pid(&l.data[PACKET..])),
                (0, pid(&f.data[PACKET..]))
            );
            assert_eq!(l.duration_ms, f.duration_ms);
        }
    }

    #[test]
    fn short_gops_are_merged() {
        let mut splitter = Splitter::new(1500, 10_000, 8 << 20);
        let live = split_live(&fixture(), &mut splitter);
        assert_eq!(live.len(), 11);
        assert!(live.iter().all(|s| (1900..=2100).contains(&s.duration_ms)));
    }

    #[test]
    fn a_timestamp_jump_keeps_durations_sane() {
        // The fixture twice: its timestamps go back 24 s where the second copy starts.
        let ts = fixture();
        let mut twice = ts.clone();
        twice.extend_from_slice(&ts);
        let mut splitter = Splitter::new(500, 10_000, 8 << 20);
        let live = split_live(&twice, &mut splitter);
        assert_eq!(live.len(), 47);
        assert!(
            live.iter().all(|s| (900..=1100).contains(&s.duration_ms)),
            "{:?}",
            live.iter().map(|s| s.duration_ms).collect::<Vec<_>>()
        );
    }

    #[test]
    fn garbage_is_skipped_and_reported() {
        let ts = fixture();
        let mut splitter = Splitter::new(500, 10_000, 8 << 20);
        let mut noisy = vec![0x11u8; 1000];
        noisy.extend_from_slice(&ts[..188 * 5000]);
        // A datagram lost in the middle of a packet.
        noisy.extend_from_slice(&ts[188 * 5000 + 100..]);
        assert!(splitter.push(&noisy[..1000 + 188]).is_empty());
        assert_eq!(splitter.status(), InputStatus::NoSync);
        let out = splitter.push(&noisy[1000 + 188..]);
        assert!(out.len() >= 21, "{}", out.len());
        assert_eq!(splitter.status(), InputStatus::Ok);
        splitter.reset();
        assert_eq!(splitter.status(), InputStatus::Waiting);
        assert!(splitter.push(&[0x47; 188 * 3]).is_empty());
        assert_eq!(splitter.status(), InputStatus::NoProgram);
    }

    #[test]
    fn broken_inputs_are_named() {
        let ts = fixture();
        let packets = || ts.chunks_exact(PACKET).map(<[u8]>::to_vec);
        let video = {
            let pmt_pid = pmt_pid(&ts[..PACKET]).expect("pat");
            let pmt = packets().find(|p| pid(p) == pmt_pid).expect("pmt");
            h264_pid(&pmt).expect("h264")
        };
        // No random access point flagged anywhere.
        let mut no_idr: Vec<u8> = Vec::new();
        for mut p in packets() {
            if pid(&p) == video && random_access(&p) {
                p[5] &= !0x40;
            }
            no_idr.extend_from_slice(&p);
        }
        let mut splitter = Splitter::new(500, 10_000, 8 << 20);
        assert!(splitter.push(&no_idr).is_empty());
        assert_eq!(splitter.status(), InputStatus::NoKeyframe);
        assert!(splitter.flush().is_none());
        // The PMT names no H.264 stream (MPEG-2 video instead).
        let mut no_h264: Vec<u8> = Vec::new();
        let pmt_pid = pmt_pid(&ts[..PACKET]).expect("pat");
        for mut p in packets() {
            if pid(&p) == pmt_pid {
                let at = p
                    .windows(3)
                    .position(|w| w[0] == 0x1b && pid(&[0, w[1], w[2]]) == video);
                p[at.expect("stream entry")] = 0x02;
            }
            no_h264.extend_from_slice(&p);
        }
        let mut splitter = Splitter::new(500, 10_000, 8 << 20);
        assert!(splitter.push(&no_h264).is_empty());
        assert_eq!(splitter.status(), InputStatus::NoVideo);
        // A GOP larger than the cap is dropped, not buffered without end.
        let mut splitter = Splitter::new(500, 10_000, 20_000);
        assert!(splitter.push(&ts).is_empty());
        assert_eq!(splitter.status(), InputStatus::GopTooLarge);
    }
}
