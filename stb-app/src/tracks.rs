//! The sound tracks of the channel playing. A channel may carry several (one per language);
//! tsdemux makes a pad for each and one of them feeds the sound branch. The viewer's choice
//! of language holds across zaps for the session: a channel that carries it plays it, one
//! that does not plays its first track.

use gstreamer as gst;
use gstreamer::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

/// One sound track of the channel playing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AudioTrack {
    /// ISO 639 code from the channel's PMT ("en", "fra"), if it names one.
    pub language: Option<String>,
    /// The one playing.
    pub selected: bool,
}

/// Which of the demuxer's sound pads feeds the sound branch. The demuxer's pads are the
/// list and the branch's peer is the choice (nothing kept here can drift from them); only
/// the viewer's language is remembered.
#[derive(Debug)]
pub(crate) struct Tracks {
    demux: gst::Element,
    /// The sound branch's first element.
    target: gst::Pad,
    preferred: Mutex<Option<String>>,
    /// Choices and links in order (one thread's choice linked after another's would leave
    /// a track playing that nobody chose). Never taken by `removed`, which GStreamer calls
    /// from the zapping thread.
    linking: Mutex<()>,
    /// The pipeline is being reset (zap, stop): every pad goes, none is to be relinked.
    resetting: AtomicBool,
}

impl Tracks {
    pub(crate) fn new(demux: gst::Element, target: gst::Pad) -> Self {
        Self {
            demux,
            target,
            preferred: Mutex::new(None),
            linking: Mutex::new(()),
            resetting: AtomicBool::new(false),
        }
    }

    /// The demuxer's sound pads, in its order, with their languages.
    fn pads(&self) -> Vec<(gst::Pad, Option<String>)> {
        self.demux
            .src_pads()
            .into_iter()
            .filter(is_sound)
            .map(|pad| {
                let language = language_of(&pad);
                (pad, language)
            })
            .collect()
    }

    fn prefers(&self, language: &Option<String>) -> bool {
        language.is_some() && *language == *lock(&self.preferred)
    }

    /// A new sound pad: linked if nothing plays yet or if it speaks the viewer's language
    /// and the one playing does not.
    pub(crate) fn added(&self, pad: &gst::Pad) {
        let _in_order = lock(&self.linking);
        let take = match self.target.peer() {
            None => true,
            Some(playing) => {
                self.prefers(&language_of(pad)) && !self.prefers(&language_of(&playing))
            }
        };
        if take {
            relink(pad, &self.target);
        }
    }

    /// A pad gone (zap, program change). On a program change tsdemux adds the new
    /// program's pads before it removes the old ones: when the track playing goes and
    /// others remain, one of them (the preferred language, else the first) plays.
    pub(crate) fn removed(&self) {
        if self.target.peer().is_some() || self.resetting.load(Ordering::SeqCst) {
            return;
        }
        let pads = self.pads();
        let next = pads
            .iter()
            .find(|(_, l)| self.prefers(l))
            .or(pads.first())
            .map(|(pad, _)| pad);
        if let Some(pad) = next {
            relink(pad, &self.target);
        }
    }

    /// Around a reset of the pipeline (its pads all go): no relinking meanwhile.
    pub(crate) fn resetting(&self, on: bool) {
        self.resetting.store(on, Ordering::SeqCst);
    }

    /// The tracks of the channel playing, in the channel's order.
    pub(crate) fn list(&self) -> Vec<AudioTrack> {
        let playing = self.target.peer();
        self.pads()
            .into_iter()
            .map(|(pad, language)| AudioTrack {
                language,
                selected: Some(&pad) == playing.as_ref(),
            })
            .collect()
    }

    /// Plays the next track (after the last, the first again) and prefers its language from
    /// now on. None: the channel has no sound.
    pub(crate) fn next(&self) -> Option<AudioTrack> {
        let _in_order = lock(&self.linking);
        let pads = self.pads();
        let playing = self.target.peer();
        let index = pads
            .iter()
            .position(|(pad, _)| Some(pad) == playing.as_ref())
            .map_or(0, |i| (i + 1) % pads.len().max(1));
        let (pad, language) = pads.into_iter().nth(index)?;
        relink(&pad, &self.target);
        if language.is_some() {
            *lock(&self.preferred) = language.clone();
        }
        Some(AudioTrack {
            language,
            selected: true,
        })
    }
}

/// A demuxer pad carrying sound (AAC or MPEG audio).
pub(crate) fn is_sound(pad: &gst::Pad) -> bool {
    pad.current_caps()
        .and_then(|caps| {
            caps.structure(0)
                .map(|s| s.name().starts_with("audio/mpeg"))
        })
        .unwrap_or(false)
}

/// The language the demuxer read from the PMT for this pad's stream.
fn language_of(pad: &gst::Pad) -> Option<String> {
    let tags = pad.stream()?.tags()?;
    let code = tags.get::<gst::tags::LanguageCode>()?;
    Some(code.get().to_owned()).filter(|c| !c.is_empty())
}

/// Links `pad` to `target` in place of whatever fed it.
pub(crate) fn relink(pad: &gst::Pad, target: &gst::Pad) {
    if let Some(old) = target.peer() {
        if old == *pad {
            return;
        }
        let _ = old.unlink(target);
    }
    // A program change (a live channel going to the server's slate and back, a stream
    // without sound) may have ended this branch with EOS when its old pad went away: a
    // flush makes it take data again.
    if target.pad_flags().contains(gst::PadFlags::EOS) {
        target.send_event(gst::event::FlushStart::new());
        target.send_event(gst::event::FlushStop::new(false));
    }
    if let Err(e) = pad.link(target) {
        tracing::warn!(error = ?e, pad = %pad.name(), "could not link demuxer pad");
    }
}
