//! The programme guide: an XMLTV file imported whole, re-read while serving when it changes,
//! and asked for now/next or a time range per channel.

pub mod test_listing;
pub mod xmltv;

use sha2::Digest;
use stb_protocol::content_api::Programme;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Each channel's programmes, sorted by start, none overlapping.
pub type Listings = BTreeMap<u16, Vec<Programme>>;

/// One imported guide.
#[derive(Debug, Default)]
pub struct Guide {
    listings: Listings,
    version: String,
}

impl Guide {
    /// A guide of these listings; `version` names the file it came from.
    pub fn new(listings: Listings, version: String) -> Self {
        Self { listings, version }
    }

    /// Names this guide (a digest of its file): the same on every instance serving the same
    /// file, so it is an ETag a cache in front of several instances can use.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Programmes counted over every channel.
    pub fn len(&self) -> usize {
        self.listings.values().map(Vec::len).sum()
    }

    /// Whether the guide has no programme.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The programmes of `number` overlapping `[from_ms, to_ms)`.
    pub fn range(&self, number: u16, from_ms: i64, to_ms: i64) -> &[Programme] {
        let Some(list) = self.listings.get(&number) else {
            return &[];
        };
        let first = list.partition_point(|p| p.end_ms <= from_ms);
        let end = list.partition_point(|p| p.start_ms < to_ms).max(first);
        &list[first..end]
    }

    /// The programme on air at `now_ms` (if any) and the one after.
    pub fn now_next(&self, number: u16, now_ms: i64) -> (Option<&Programme>, Option<&Programme>) {
        let Some(list) = self.listings.get(&number) else {
            return (None, None);
        };
        let i = list.partition_point(|p| p.end_ms <= now_ms);
        match list.get(i) {
            Some(p) if p.start_ms <= now_ms => (Some(p), list.get(i + 1)),
            upcoming => (None, upcoming),
        }
    }

    /// The first instant after `now_ms` at which some channel's now/next changes.
    pub fn next_change(&self, now_ms: i64) -> Option<i64> {
        self.listings
            .keys()
            .filter_map(|&n| match self.now_next(n, now_ms) {
                (Some(now), _) => Some(now.end_ms),
                (None, next) => next.map(|p| p.start_ms),
            })
            .min()
    }
}

/// Why the guide file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum GuideError {
    /// Missing or unreadable.
    #[error("cannot read the guide {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Read, and refused.
    #[error("guide {path} refused, the previous guide stays in force: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: xmltv::XmltvError,
    },
}

/// What a look at the file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Same file as at the last look (taken or refused then): nothing done.
    Unchanged,
    /// A new guide is in force.
    Loaded {
        /// Channels with programmes.
        channels: usize,
        /// Programmes.
        programmes: usize,
    },
}

/// Inode, size, modification and change times: how a changed file is noticed without reading
/// it (a file renamed over it, a `chmod` that makes it readable, a copy keeping its mtime).
type Stamp = Option<(u64, u64, Option<SystemTime>, i64, i64)>;

/// The guide in force and the file it is re-read from.
#[derive(Debug)]
pub struct GuideFeed {
    path: PathBuf,
    ids: HashMap<String, u16>,
    current: RwLock<Arc<Guide>>,
    /// The stamp of the file at the last look, whatever came of it; `None` before the first.
    seen: Mutex<Option<Stamp>>,
}

impl GuideFeed {
    /// A feed of `path`, empty until the first [`GuideFeed::refresh`]; `ids` maps XMLTV
    /// channel ids to channel numbers.
    pub fn new(path: &Path, ids: HashMap<String, u16>) -> Self {
        Self {
            path: path.to_owned(),
            ids,
            current: RwLock::default(),
            seen: Mutex::default(),
        }
    }

    /// The guide in force.
    pub fn guide(&self) -> Arc<Guide> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the file again if its size or time changed since the last look. A file that is
    /// missing or refused leaves the guide in force, and is reported once, not at every look.
    /// Blocking: run it off the async workers.
    pub fn refresh(&self) -> Result<Refresh, GuideError> {
        let read_error = |source| GuideError::Read {
            path: self.path.clone(),
            source,
        };
        use std::os::unix::fs::MetadataExt;
        let stamp: Stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((
                m.ino(),
                m.len(),
                m.modified().ok(),
                m.ctime(),
                m.ctime_nsec(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(read_error(e)),
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.as_ref() == Some(&stamp) {
            return Ok(Refresh::Unchanged);
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // A missing file is reported once; an unreadable one at every look, until a
                // chmod or a new file (a new stamp) lets it be read.
                if stamp.is_none() {
                    *seen = Some(stamp);
                }
                return Err(read_error(e));
            }
        };
        // Taken or refused, this file is not read again until it changes.
        *seen = Some(stamp);
        drop(seen);
        let text = String::from_utf8_lossy(&bytes);
        let listings = xmltv::parse(&text, &self.ids).map_err(|source| GuideError::Refused {
            path: self.path.clone(),
            source,
        })?;
        let version = hex::encode(&sha2::Sha256::digest(&bytes)[..12]);
        let guide = Guide::new(listings, version);
        let loaded = Refresh::Loaded {
            channels: guide.listings.values().filter(|l| !l.is_empty()).count(),
            programmes: guide.len(),
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(guide);
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guide() -> Guide {
        let p = |t: &str, s, e| Programme::titled(t, s, e);
        let listings = [
            (1, vec![p("A", 0, 100), p("B", 100, 250), p("C", 300, 400)]),
            (2, vec![p("X", 50, 500)]),
        ]
        .into();
        Guide::new(listings, "v".into())
    }

    #[test]
    fn now_next_and_ranges() {
        let g = guide();
        let titles = |ps: &[Programme]| ps.iter().map(|p| p.title.clone()).collect::<Vec<_>>();
        assert_eq!(titles(g.range(1, 99, 301)), ["A", "B", "C"]);
        assert_eq!(
            titles(g.range(1, 100, 300)),
            ["B"],
            "ends and starts are exclusive"
        );
        assert!(g.range(1, 500, 900).is_empty());
        assert!(g.range(9, 0, 900).is_empty());
        let (now, next) = g.now_next(1, 120);
        assert_eq!(
            (now.map(|p| &*p.title), next.map(|p| &*p.title)),
            (Some("B"), Some("C"))
        );
        let (now, next) = g.now_next(1, 260);
        assert_eq!((now, next.map(|p| &*p.title)), (None, Some("C")), "a gap");
        assert_eq!(g.now_next(1, 400), (None, None));
        assert_eq!(g.next_change(120), Some(250));
        assert_eq!(g.next_change(260), Some(300));
        assert_eq!(g.next_change(450), Some(500));
        assert_eq!(g.len(), 4);
    }

    #[test]
    fn a_refused_file_keeps_the_guide_and_is_reported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("guide.xml");
        let feed = GuideFeed::new(&path, [("one".to_owned(), 1)].into());
        assert!(
            matches!(feed.refresh(), Err(GuideError::Read { .. })),
            "missing"
        );
        assert_eq!(feed.refresh().expect("same"), Refresh::Unchanged);
        std::fs::write(
            &path,
            r#"<tv><programme start="20261129000000" stop="20261129010000" channel="one"><title>T</title></programme></tv>"#,
        )
        .expect("write");
        assert_eq!(
            feed.refresh().expect("loaded"),
            Refresh::Loaded {
                channels: 1,
                programmes: 1
            }
        );
        let version = feed.guide().version().to_owned();
        assert_eq!(feed.refresh().expect("same"), Refresh::Unchanged);
        std::fs::write(&path, "<tv><programme channel=\"one\" start=\"x\">").expect("write");
        let e = feed.refresh().expect_err("refused");
        assert!(e.to_string().contains("previous guide stays"), "{e}");
        assert_eq!(feed.refresh().expect("reported once"), Refresh::Unchanged);
        assert_eq!(feed.guide().version(), version);
        assert_eq!(feed.guide().len(), 1);
    }
}
