//! The channel catalogue: the fixture manifest, each channel's GOP segments, its place on the
//! wall clock (channels loop their fixture forever, anchored at the Unix epoch), and a small
//! looping programme guide for now/next.

use crate::ts::{self, Segment};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    channel: Vec<ChannelSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelSpec {
    number: u16,
    name: String,
    file: PathBuf,
    packages: Vec<String>,
    schedule: Vec<Slot>,
}

/// One programme of a looping schedule.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Slot {
    /// Title.
    pub title: String,
    /// Length in minutes.
    pub minutes: u32,
}

pub use stb_protocol::content_api::Programme;

/// Where a channel's timeline is at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Global sequence number (increases forever).
    pub sequence: u64,
    /// Index of the segment in the fixture.
    pub index: usize,
    /// Wall-clock start of that segment, Unix ms.
    pub start_ms: i64,
    /// Its duration, ms.
    pub duration_ms: u64,
}

/// A channel ready to serve.
#[derive(Debug)]
pub struct Channel {
    /// Channel number.
    pub number: u16,
    /// Name.
    pub name: String,
    /// Packages that include it.
    pub packages: Vec<String>,
    schedule: Vec<Slot>,
    /// Plain GOP segments of the fixture.
    pub segments: Vec<Segment>,
    starts_ms: Vec<u64>,
    loop_ms: u64,
}

impl Channel {
    fn new(
        number: u16,
        name: String,
        packages: Vec<String>,
        schedule: Vec<Slot>,
        segments: Vec<Segment>,
    ) -> Result<Self> {
        if segments.is_empty() {
            bail!("channel {number} has no segment");
        }
        let mut starts_ms = Vec::with_capacity(segments.len());
        let mut t = 0;
        for s in &segments {
            starts_ms.push(t);
            t += s.duration_ms.max(1);
        }
        Ok(Self {
            number,
            name,
            packages,
            schedule,
            segments,
            starts_ms,
            loop_ms: t,
        })
    }

    /// Whether subscribers of `package` may watch it.
    pub fn in_package(&self, package: &str) -> bool {
        self.packages.iter().any(|p| p == package)
    }

    /// The segment being broadcast at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> Position {
        let now = now_ms.max(0) as u64;
        let (round, offset) = (now / self.loop_ms, now % self.loop_ms);
        let index = self.starts_ms.partition_point(|&s| s <= offset) - 1;
        self.position(round * self.segments.len() as u64 + index as u64)
    }

    /// The segment with global sequence number `sequence`.
    pub fn position(&self, sequence: u64) -> Position {
        let n = self.segments.len() as u64;
        let index = (sequence % n) as usize;
        Position {
            sequence,
            index,
            start_ms: ((sequence / n) * self.loop_ms + self.starts_ms[index]) as i64,
            duration_ms: self.segments[index].duration_ms,
        }
    }

    /// The programme on air at `now_ms` and the one after it.
    pub fn now_next(&self, now_ms: i64) -> (Programme, Programme) {
        let loop_ms: i64 = self
            .schedule
            .iter()
            .map(|s| i64::from(s.minutes) * 60_000)
            .sum();
        let loop_ms = loop_ms.max(1);
        let base = now_ms.div_euclid(loop_ms) * loop_ms;
        let mut start = base;
        let mut slots = self.schedule.iter().cycle();
        loop {
            let slot = slots
                .next()
                .unwrap_or_else(|| unreachable!("schedule is not empty"));
            let end = start + i64::from(slot.minutes) * 60_000;
            if end > now_ms {
                let next = slots
                    .next()
                    .unwrap_or_else(|| unreachable!("schedule is not empty"));
                let current = Programme {
                    title: slot.title.clone(),
                    start_ms: start,
                    end_ms: end,
                };
                let following = Programme {
                    title: next.title.clone(),
                    start_ms: end,
                    end_ms: end + i64::from(next.minutes) * 60_000,
                };
                return (current, following);
            }
            start = end;
        }
    }
}

/// All channels, by number.
#[derive(Debug)]
pub struct Catalogue {
    /// Channels by number.
    pub channels: BTreeMap<u16, Channel>,
}

impl Catalogue {
    /// Reads the manifest and segments every fixture (files are relative to the manifest).
    pub fn load(manifest: &Path) -> Result<Self> {
        let parsed = read_manifest(manifest)?;
        let dir = manifest.parent().unwrap_or(Path::new("."));
        let mut channels = BTreeMap::new();
        for spec in parsed.channel {
            if spec.schedule.is_empty() || spec.schedule.iter().any(|s| s.minutes == 0) {
                bail!(
                    "channel {}: the schedule needs programmes of at least a minute",
                    spec.number
                );
            }
            let path = dir.join(&spec.file);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let segments =
                ts::segment(&bytes).with_context(|| format!("segmenting {}", path.display()))?;
            let channel = Channel::new(
                spec.number,
                spec.name,
                spec.packages,
                spec.schedule,
                segments,
            )?;
            if channels.insert(spec.number, channel).is_some() {
                bail!("channel number {} appears twice", spec.number);
            }
        }
        Ok(Self { channels })
    }

    /// Every package some channel belongs to.
    pub fn packages(&self) -> Vec<String> {
        sorted_packages(self.channels.values().flat_map(|c| c.packages.iter()))
    }
}

fn read_manifest(manifest: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading channel manifest {}", manifest.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("parsing channel manifest {}", manifest.display()))
}

fn sorted_packages<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut all: Vec<String> = names.cloned().collect();
    all.sort();
    all.dedup();
    all
}

/// The packages of a manifest, without reading and segmenting the channel files (for
/// operator commands that only need the names).
pub fn manifest_packages(manifest: &Path) -> Result<Vec<String>> {
    Ok(sorted_packages(
        read_manifest(manifest)?
            .channel
            .iter()
            .flat_map(|c| c.packages.iter()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(ms: u64) -> Segment {
        Segment {
            data: vec![],
            duration_ms: ms,
        }
    }

    fn channel() -> Channel {
        let schedule = vec![
            Slot {
                title: "A".into(),
                minutes: 30,
            },
            Slot {
                title: "B".into(),
                minutes: 90,
            },
        ];
        Channel::new(
            1,
            "One".into(),
            vec!["basic".into()],
            schedule,
            vec![seg(1000), seg(500), seg(1500)],
        )
        .expect("channel")
    }

    #[test]
    fn live_position_loops_on_the_wall_clock() {
        let c = channel();
        assert_eq!(
            c.live_at(0),
            Position {
                sequence: 0,
                index: 0,
                start_ms: 0,
                duration_ms: 1000
            }
        );
        assert_eq!(c.live_at(1200).index, 1);
        let p = c.live_at(3000 * 5 + 1600);
        assert_eq!((p.sequence, p.index, p.start_ms), (17, 2, 16_500));
        assert_eq!(c.position(p.sequence + 1).start_ms, 18_000);
    }

    #[test]
    fn now_and_next() {
        let c = channel();
        let (now, next) = c.now_next(31 * 60_000);
        assert_eq!((now.title.as_str(), next.title.as_str()), ("B", "A"));
        assert_eq!((now.start_ms, now.end_ms), (30 * 60_000, 120 * 60_000));
        let (now, _) = c.now_next(120 * 60_000 + 1);
        assert_eq!(now.title, "A");
    }

    #[test]
    fn loads_the_fixtures() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../media-fixtures/channels.toml"
        );
        let cat = Catalogue::load(Path::new(path)).expect("catalogue");
        assert_eq!(cat.channels.len(), 4);
        assert_eq!(cat.packages(), vec!["basic", "kids", "premium"]);
        assert_eq!(
            manifest_packages(Path::new(path)).expect("manifest"),
            cat.packages()
        );
        assert!(!cat.channels[&3].in_package("basic"));
    }
}
