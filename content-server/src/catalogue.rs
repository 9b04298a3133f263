//! The channel catalogue: the manifest, and each channel's source: a file looped on the wall
//! clock (anchored at the Unix epoch: the test channels), or a live MPEG-TS input (`crate::live`).
//! What is on air comes from the programme guide (`crate::guide`), by each channel's XMLTV id.

use crate::guide::test_listing::{GENRES, TestChannel};
use crate::live::{self, LiveFeed};
use crate::ts::{self, Segment};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// What live channels show while their input is lost (default `slate.ts` beside the
    /// manifest).
    #[serde(default)]
    slate: Option<PathBuf>,
    channel: Vec<ChannelSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelSpec {
    number: u16,
    name: String,
    /// A file looped on the wall clock...
    #[serde(default)]
    file: Option<PathBuf>,
    /// ... or a live input (`udp://`, `rtp://`, `srt://`, `http(s)://`).
    #[serde(default)]
    input: Option<String>,
    packages: Vec<String>,
    /// The channel's id in the XMLTV guide.
    #[serde(default)]
    xmltv_id: Option<String>,
    /// A test channel's genre: the server writes a guide for it (`guide::test_listing`).
    #[serde(default)]
    genre: Option<String>,
}

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
    /// Its id in the XMLTV guide.
    pub xmltv_id: Option<String>,
    /// A test channel's genre.
    pub genre: Option<String>,
    /// Where its segments come from.
    pub source: Source,
}

/// Where a channel's segments come from.
#[derive(Debug)]
pub enum Source {
    /// A file looped on the wall clock.
    Looped(Looped),
    /// A live input.
    Live(Arc<LiveFeed>),
}

impl Channel {
    fn new(number: u16, name: String, packages: Vec<String>, source: Source) -> Self {
        Self {
            number,
            name,
            packages,
            xmltv_id: None,
            genre: None,
            source,
        }
    }

    /// Whether subscribers of `package` may watch it.
    pub fn in_package(&self, package: &str) -> bool {
        self.packages.iter().any(|p| p == package)
    }

    /// Its looped file, unless it is live.
    pub fn looped(&self) -> Option<&Looped> {
        match &self.source {
            Source::Looped(l) => Some(l),
            Source::Live(_) => None,
        }
    }
}

/// A file looped forever on the wall clock: every instance computes the same timeline.
#[derive(Debug)]
pub struct Looped {
    /// Plain GOP segments of the file (shared by the channels that loop the same file).
    pub segments: Arc<[Segment]>,
    starts_ms: Vec<u64>,
    loop_ms: u64,
}

impl Looped {
    fn new(number: u16, segments: Arc<[Segment]>) -> Result<Self> {
        if segments.is_empty() {
            bail!("channel {number} has no segment");
        }
        let mut starts_ms = Vec::with_capacity(segments.len());
        let mut t = 0;
        for s in segments.iter() {
            starts_ms.push(t);
            t += s.duration_ms.max(1);
        }
        Ok(Self {
            segments,
            starts_ms,
            loop_ms: t,
        })
    }

    /// The segment being broadcast at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> Position {
        let now = now_ms.max(0) as u64;
        let (round, offset) = (now / self.loop_ms, now % self.loop_ms);
        let index = self.starts_ms.partition_point(|&s| s <= offset) - 1;
        self.position(round * self.segments.len() as u64 + index as u64)
    }

    /// Segment `sequence` as broadcast: the file's segment with its timestamps moved on by
    /// the loops before it, so the channel's timeline never goes back.
    pub fn broadcast(&self, sequence: u64) -> Vec<u8> {
        let n = self.segments.len() as u64;
        let mut data = self.segments[(sequence % n) as usize].data.clone();
        let loops = sequence / n;
        crate::ts::shift_timestamps(&mut data, loops.wrapping_mul(self.loop_ms * 90));
        data
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
        // A file looped by several channels (a generated catalogue) is read and split once.
        let mut files: HashMap<PathBuf, Arc<[Segment]>> = HashMap::new();
        let mut read_segments = |path: PathBuf| -> Result<Arc<[Segment]>> {
            if let Some(s) = files.get(&path) {
                return Ok(s.clone());
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let segments: Arc<[Segment]> = ts::segment(&bytes)
                .with_context(|| format!("segmenting {}", path.display()))?
                .into();
            files.insert(path, segments.clone());
            Ok(segments)
        };
        let slate_path = dir.join(parsed.slate.as_deref().unwrap_or(Path::new("slate.ts")));
        for spec in parsed.channel {
            if let Some(genre) = spec.genre.as_deref()
                && !GENRES.contains(&genre)
            {
                bail!(
                    "channel {}: genre {genre:?} is not one of {}",
                    spec.number,
                    GENRES.join(", ")
                );
            }
            let source = match (spec.file, spec.input) {
                (Some(file), None) => {
                    Source::Looped(Looped::new(spec.number, read_segments(dir.join(file))?)?)
                }
                (None, Some(input)) => {
                    let input = live::Input::parse(&input)
                        .with_context(|| format!("channel {}", spec.number))?;
                    let slate =
                        read_segments(slate_path.clone()).context("the live channels' slate")?;
                    if let Some(s) = slate.iter().find(|s| {
                        !(live::MIN_SEGMENT_MS..=live::MAX_GOP_MS).contains(&s.duration_ms)
                    }) {
                        bail!(
                            "the slate {} has a {} ms GOP: its GOPs must last {}-{} ms",
                            slate_path.display(),
                            s.duration_ms,
                            live::MIN_SEGMENT_MS,
                            live::MAX_GOP_MS
                        );
                    }
                    Source::Live(Arc::new(LiveFeed::new(input, slate)))
                }
                (Some(_), Some(_)) => {
                    bail!("channel {}: a file or an input, not both", spec.number)
                }
                (None, None) => bail!("channel {} needs a file or an input", spec.number),
            };
            let mut channel = Channel::new(spec.number, spec.name, spec.packages, source);
            channel.xmltv_id = spec.xmltv_id;
            channel.genre = spec.genre;
            if channels.insert(spec.number, channel).is_some() {
                bail!("channel number {} appears twice", spec.number);
            }
        }
        Ok(Self { channels })
    }

    /// XMLTV ids to channel numbers.
    pub fn xmltv_ids(&self) -> Result<HashMap<String, u16>> {
        let mut ids = HashMap::new();
        for c in self.channels.values() {
            if let Some(id) = &c.xmltv_id
                && let Some(other) = ids.insert(id.clone(), c.number)
            {
                bail!(
                    "channels {other} and {} have the same XMLTV id {id:?}",
                    c.number
                );
            }
        }
        Ok(ids)
    }

    /// The channels the server writes a test guide for: those with a genre and an XMLTV id.
    pub fn test_channels(&self) -> Vec<TestChannel> {
        self.channels
            .values()
            .filter_map(|c| {
                Some(TestChannel {
                    id: c.xmltv_id.clone()?,
                    name: c.name.clone(),
                    genre: c.genre.clone()?,
                })
            })
            .collect()
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

/// A manifest of `count` channels looping the test fixtures (`ch1.ts`..`ch4.ts` in
/// `fixtures`, named by absolute path so the manifest can live anywhere), for load tests: their
/// genres give a test guide, and the packages split them as an operator's would (premium: all;
/// basic: two in three; kids: the children's channels).
pub fn generate_manifest(count: u16, fixtures: &Path) -> Result<String> {
    use std::fmt::Write as _;
    let fixtures = std::fs::canonicalize(fixtures)
        .with_context(|| format!("fixture directory {}", fixtures.display()))?;
    let kinds = [
        ("ch1.ts", "News", "news"),
        ("ch2.ts", "Sport", "sport"),
        ("ch3.ts", "Cinema", "cinema"),
        ("ch4.ts", "Kids", "kids"),
    ];
    let mut out = format!("# {count} channels generated by `content-server channel generate`.\n");
    for number in 1..=count {
        let (file, name, genre) = kinds[usize::from(number - 1) % kinds.len()];
        let path = fixtures.join(file);
        if !path.exists() {
            bail!("{} is missing", path.display());
        }
        let mut packages = vec!["premium"];
        if number % 3 != 0 {
            packages.push("basic");
        }
        if genre == "kids" {
            packages.push("kids");
        }
        let _ = write!(
            out,
            "\n[[channel]]\nnumber = {number}\nname = \"{name} {number}\"\nfile = {path:?}\n\
             xmltv_id = \"ch{number}.stb.test\"\ngenre = \"{genre}\"\npackages = {packages:?}\n",
            path = path.display().to_string(),
        );
    }
    Ok(out)
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

    fn channel() -> Looped {
        Looped::new(1, vec![seg(1000), seg(500), seg(1500)].into()).expect("channel")
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
    fn a_generated_catalogue_shares_the_fixtures() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-fixtures");
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = dir.path().join("c.toml");
        let text = generate_manifest(12, &fixtures).expect("generated");
        std::fs::write(&manifest, text).expect("write");
        let cat = Catalogue::load(&manifest).expect("loads");
        assert_eq!(cat.channels.len(), 12);
        let segments = |n| &cat.channels[&n].looped().expect("looped").segments;
        assert!(Arc::ptr_eq(segments(1), segments(5)));
        assert_eq!(cat.packages(), ["basic", "kids", "premium"]);
        assert!(!cat.channels[&3].in_package("basic") && cat.channels[&4].in_package("kids"));
        assert_eq!(cat.test_channels().len(), 12);
        assert!(
            generate_manifest(1, dir.path()).is_err(),
            "no fixtures there"
        );
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
        assert_eq!(cat.xmltv_ids().expect("ids").len(), 4);
        assert_eq!(cat.test_channels().len(), 4);
    }
}
