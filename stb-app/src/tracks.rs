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

/// The demuxer's sound pads and which one is linked.
#[derive(Debug)]
pub(crate) struct Tracks {
    /// The sound branch's first element.
    target: gst::Pad,
    state: Mutex<State>,
    /// Choices and links in the same order (a choice made on one thread and linked after
    /// another thread's would leave a track playing that `state` does not name). Taken
    /// before `state`, and never by `removed`, which GStreamer calls from the zapping thread.
    linking: Mutex<()>,
    /// The pipeline is being reset (zap, stop): every pad goes, none is to be relinked.
    resetting: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    pads: Vec<(gst::Pad, Option<String>)>,
    linked: Option<usize>,
    preferred: Option<String>,
}

impl Tracks {
    pub(crate) fn new(target: gst::Pad) -> Self {
        Self {
            target,
            state: Mutex::new(State::default()),
            linking: Mutex::new(()),
            resetting: AtomicBool::new(false),
        }
    }

    /// A new sound pad: linked if nothing plays yet or if it speaks the viewer's language
    /// and the one playing does not.
    pub(crate) fn added(&self, pad: &gst::Pad) {
        let language = language_of(pad);
        let _in_order = lock(&self.linking);
        let take = {
            let mut state = lock(&self.state);
            state.pads.push((pad.clone(), language.clone()));
            let index = state.pads.len() - 1;
            let wanted = |l: &Option<String>| l.is_some() && *l == state.preferred;
            let take = match state.linked {
                None => true,
                Some(i) => wanted(&language) && !wanted(&state.pads[i].1),
            };
            if take {
                state.linked = Some(index);
            }
            take
        };
        // Linking calls into GStreamer (which may wait for its own locks, and emits
        // pad-removed from other threads): never under this lock.
        if take {
            relink(pad, &self.target);
        }
    }

    /// A pad gone (zap, program change). On a program change tsdemux adds the new
    /// program's pads before it removes the old ones: when the track playing goes and
    /// others remain, one of them (the preferred language, else the first) plays.
    pub(crate) fn removed(&self, pad: &gst::Pad) {
        let next = {
            let mut state = lock(&self.state);
            let Some(index) = state.pads.iter().position(|(p, _)| p == pad) else {
                return;
            };
            state.pads.remove(index);
            state.linked = match state.linked {
                Some(i) if i == index => None,
                Some(i) if i > index => Some(i - 1),
                other => other,
            };
            if state.linked.is_some()
                || state.pads.is_empty()
                || self.resetting.load(Ordering::SeqCst)
            {
                None
            } else {
                let i = state
                    .pads
                    .iter()
                    .position(|(_, l)| l.is_some() && *l == state.preferred)
                    .unwrap_or(0);
                state.linked = Some(i);
                Some(state.pads[i].0.clone())
            }
        };
        if let Some(pad) = next {
            relink(&pad, &self.target);
        }
    }

    /// Around a reset of the pipeline (its pads all go): no relinking meanwhile.
    pub(crate) fn resetting(&self, on: bool) {
        self.resetting.store(on, Ordering::SeqCst);
    }

    /// The tracks of the channel playing, in the channel's order.
    pub(crate) fn list(&self) -> Vec<AudioTrack> {
        let state = lock(&self.state);
        state
            .pads
            .iter()
            .enumerate()
            .map(|(i, (_, language))| AudioTrack {
                language: language.clone(),
                selected: state.linked == Some(i),
            })
            .collect()
    }

    /// Plays the next track (after the last, the first again) and prefers its language from
    /// now on. None: the channel has no sound.
    pub(crate) fn next(&self) -> Option<AudioTrack> {
        let _in_order = lock(&self.linking);
        let (pad, language) = {
            let mut state = lock(&self.state);
            if state.pads.is_empty() {
                return None;
            }
            let index = state.linked.map_or(0, |i| (i + 1) % state.pads.len());
            let change = state.linked != Some(index);
            state.linked = Some(index);
            let (pad, language) = state.pads[index].clone();
            if language.is_some() {
                state.preferred = language.clone();
            }
            (change.then_some(pad), language)
        };
        if let Some(pad) = pad {
            relink(&pad, &self.target);
        }
        Some(AudioTrack {
            language,
            selected: true,
        })
    }
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
