//! The sound and subtitle tracks of the channel playing. A channel may carry several of
//! each (one per language); tsdemux makes a pad for each, one sound pad feeds the sound
//! branch and at most one subtitle pad feeds the subtitle overlay. The viewer's choice of
//! language holds across zaps until logout: a channel that carries it plays it; otherwise
//! the channel's first sound track plays and subtitles stay off.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

/// One sound or subtitle track of the channel playing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Track {
    /// ISO 639 code from the channel's PMT ("en", "fra"), if it names one.
    pub language: Option<String>,
    /// The one playing (for subtitles: shown).
    pub selected: bool,
}

/// What [`Tracks::next`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The channel has no track of this kind.
    NoTracks,
    /// Subtitles off; the channel has `of` subtitle tracks.
    Off {
        /// How many the channel has.
        of: usize,
    },
    /// Track `number` (from 1) of `of` plays.
    Playing {
        /// ISO 639 code from the channel, if it names one.
        language: Option<String>,
        /// Its place among the channel's tracks, from 1.
        number: usize,
        /// How many the channel has.
        of: usize,
    },
}

/// Sound or subtitles: which pads they are and whether "none" is a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// AAC or MPEG audio; one track always plays.
    Sound,
    /// DVB subtitles; off until the viewer turns them on.
    Subtitles,
}

impl Kind {
    /// Whether the demuxer's `pad` carries this kind.
    pub(crate) fn carried_by(self, pad: &gst::Pad) -> bool {
        let media = match self {
            Self::Sound => "audio/mpeg",
            Self::Subtitles => "subpicture/x-dvb",
        };
        pad.current_caps()
            .and_then(|caps| caps.structure(0).map(|s| s.name() == media))
            .unwrap_or(false)
    }
}

/// Which of the demuxer's pads of one kind feeds its branch. The demuxer's pads are the
/// list and the branch's peer is the choice (nothing kept here can drift from them); only
/// the viewer's language is remembered.
#[derive(Debug)]
pub(crate) struct Tracks {
    kind: Kind,
    demux: gst::Element,
    /// The branch's input (the sound queue's sink, the overlay's subtitle sink).
    target: gst::Pad,
    /// The viewer's language; for subtitles None is "off".
    preferred: Mutex<Option<String>>,
    /// Choices and links in order (one thread's choice linked after another's would leave
    /// a track playing that nobody chose). Never taken by `removed`, which GStreamer calls
    /// from the zapping thread.
    linking: Mutex<()>,
    /// The pipeline is being reset (zap, stop): every pad goes, none is to be relinked.
    resetting: AtomicBool,
}

impl Tracks {
    pub(crate) fn new(kind: Kind, demux: gst::Element, target: gst::Pad) -> Self {
        Self {
            kind,
            demux,
            target,
            preferred: Mutex::new(None),
            linking: Mutex::new(()),
            resetting: AtomicBool::new(false),
        }
    }

    /// The demuxer's pads of this kind, in its order, with their languages.
    fn pads(&self) -> Vec<(gst::Pad, Option<String>)> {
        self.demux
            .src_pads()
            .into_iter()
            .filter(|pad| self.kind.carried_by(pad))
            .map(|pad| {
                let language = language_of(&pad);
                (pad, language)
            })
            .collect()
    }

    fn prefers(&self, language: &Option<String>) -> bool {
        language.is_some() && *language == *lock(&self.preferred)
    }

    /// A new pad: linked if it speaks the viewer's language and the one playing does not,
    /// or (sound) if nothing plays yet.
    pub(crate) fn added(&self, pad: &gst::Pad) {
        let _in_order = lock(&self.linking);
        let take = match self.target.peer() {
            None => self.kind == Kind::Sound || self.prefers(&language_of(pad)),
            Some(playing) => {
                self.prefers(&language_of(pad)) && !self.prefers(&language_of(&playing))
            }
        };
        if take {
            self.link(pad);
        }
    }

    /// A pad gone (zap, program change). On a program change tsdemux adds the new
    /// program's pads before it removes the old ones: when the track playing goes and
    /// others remain, one of them plays (the preferred language, else the first sound).
    pub(crate) fn removed(&self) {
        if self.target.peer().is_some() || self.resetting.load(Ordering::SeqCst) {
            return;
        }
        let pads = self.pads();
        let first = pads.first().filter(|_| self.kind == Kind::Sound);
        let next = pads
            .iter()
            .find(|(_, l)| self.prefers(l))
            .or(first)
            .map(|(pad, _)| pad);
        if let Some(pad) = next {
            self.link(pad);
        }
    }

    /// Feeds the branch from `pad`. Subtitles start clean: the overlay drops what it holds
    /// of the track before (its page, regions and colours are not the new track's).
    fn link(&self, pad: &gst::Pad) {
        if self.kind == Kind::Subtitles && self.target.peer().as_ref() != Some(pad) {
            detach(&self.target);
        }
        relink(pad, &self.target);
    }

    /// Forgets the viewer's choice (logout: the next subscriber starts with the channels'
    /// own tracks); subtitles go off.
    pub(crate) fn forget(&self) {
        let _in_order = lock(&self.linking);
        self.prefer_none();
    }

    /// No language preferred; subtitles off. The caller holds `linking`.
    fn prefer_none(&self) {
        *lock(&self.preferred) = None;
        if self.kind == Kind::Subtitles {
            detach(&self.target);
        }
    }

    /// Around a reset of the pipeline (its pads all go): no relinking meanwhile.
    pub(crate) fn resetting(&self, on: bool) {
        self.resetting.store(on, Ordering::SeqCst);
    }

    /// The tracks of the channel playing, in the channel's order.
    pub(crate) fn list(&self) -> Vec<Track> {
        let playing = self.target.peer();
        self.pads()
            .into_iter()
            .map(|(pad, language)| Track {
                language,
                selected: Some(&pad) == playing.as_ref(),
            })
            .collect()
    }

    /// Plays the next track and prefers its language from now on. After the last one,
    /// sound starts again at the first; subtitles go off.
    pub(crate) fn next(&self) -> Next {
        let _in_order = lock(&self.linking);
        let pads = self.pads();
        let of = pads.len();
        let playing = self.target.peer();
        let index = match pads
            .iter()
            .position(|(pad, _)| Some(pad) == playing.as_ref())
        {
            _ if of == 0 => return Next::NoTracks,
            None => 0,
            Some(i) if i + 1 < of => i + 1,
            Some(_) if self.kind == Kind::Sound => 0,
            Some(_) => {
                self.prefer_none();
                return Next::Off { of };
            }
        };
        let (pad, language) = pads.into_iter().nth(index).expect("index within the pads");
        self.link(&pad);
        if language.is_some() {
            *lock(&self.preferred) = language.clone();
        }
        Next::Playing {
            language,
            number: index + 1,
            of,
        }
    }
}

/// The language the demuxer read from the PMT for this pad's stream.
fn language_of(pad: &gst::Pad) -> Option<String> {
    let tags = pad.stream()?.tags()?;
    let code = tags.get::<gst::tags::LanguageCode>()?;
    Some(code.get().to_owned()).filter(|c| !c.is_empty())
}

/// A flush through `target`: it takes data again after an end of stream, and drops what
/// it held (a subtitle on screen goes).
fn flush(target: &gst::Pad) {
    target.send_event(gst::event::FlushStart::new());
    target.send_event(gst::event::FlushStop::new(false));
}

/// Unlinks whatever fed `target` and clears what it held.
fn detach(target: &gst::Pad) {
    unlink_peer(target);
    flush(target);
}

fn unlink_peer(target: &gst::Pad) {
    if let Some(old) = target.peer() {
        let _ = old.unlink(target);
    }
}

/// Links `pad` to `target` in place of whatever fed it.
pub(crate) fn relink(pad: &gst::Pad, target: &gst::Pad) {
    if target.peer().as_ref() == Some(pad) {
        return;
    }
    unlink_peer(target);
    // A program change (a live channel going to the server's slate and back, a stream
    // without sound) may have ended this branch with EOS when its old pad went away: a
    // flush makes it take data again.
    if target.pad_flags().contains(gst::PadFlags::EOS) {
        flush(target);
    }
    if let Err(e) = pad.link(target) {
        tracing::warn!(error = ?e, pad = %pad.name(), "could not link demuxer pad");
    }
}
