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
    let b = &payload[9..14];
    Some(
        (u64::from(b[0] & 0x0e) << 29)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] & 0xfe) << 14)
            | (u64::from(b[3]) << 7)
            | (u64::from(b[4]) >> 1),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../media-fixtures/ch1.ts");
        std::fs::read(path).expect("fixture ch1.ts")
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
}
