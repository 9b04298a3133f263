//! The channel's sound and subtitle tracks: AUDIO (or MENU > Sound track) plays the next
//! sound track, SUBTITLE (or MENU > Subtitles) shows the next subtitles or turns them off,
//! and the box says which.

use super::{Effect, Model};
pub use crate::tracks::Next;

/// Sound or subtitles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// The sound tracks (languages).
    Sound,
    /// The subtitle tracks.
    Subtitles,
}

impl Model {
    pub(super) fn next_track(&mut self, kind: TrackKind, fx: &mut Vec<Effect>) {
        if self.current.is_some() {
            fx.push(Effect::NextTrack(kind));
        }
    }

    /// The player's answer to [`Effect::NextTrack`].
    pub fn track_done(&mut self, kind: TrackKind, next: Next) -> Vec<Effect> {
        let mut fx = Vec::new();
        let (what, none) = match kind {
            TrackKind::Sound => ("Sound", "No sound on this channel"),
            TrackKind::Subtitles => ("Subtitles", "No subtitles on this channel"),
        };
        let text = match next {
            Next::NoTracks => none.to_owned(),
            Next::Off { .. } => "Subtitles off".to_owned(),
            Next::Playing {
                language, of: 1, ..
            } => format!(
                "{what}: {} (the only track on this channel)",
                language_name(language.as_deref())
            ),
            Next::Playing {
                language,
                number,
                of,
            } => format!(
                "{what}: {} ({number} of {of})",
                language_name(language.as_deref())
            ),
        };
        self.show_notice(text, &mut fx);
        fx
    }
}

/// A track's language as a viewer reads it: the usual broadcast languages by name, any
/// other code as it is, "Unnamed" when the channel gives none.
pub fn language_name(code: Option<&str>) -> String {
    let Some(code) = code else {
        return "Unnamed".to_owned();
    };
    let name = match code.to_ascii_lowercase().as_str() {
        "en" | "eng" => "English",
        "fr" | "fra" | "fre" => "French",
        "de" | "deu" | "ger" => "German",
        "es" | "spa" => "Spanish",
        "it" | "ita" => "Italian",
        "nl" | "nld" | "dut" => "Dutch",
        "pt" | "por" => "Portuguese",
        "ar" | "ara" => "Arabic",
        "qaa" => "Original language",
        "mis" | "und" => "Undetermined",
        _ => return code.to_uppercase(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::super::testing::logged_in;
    use super::*;
    use crate::remote::Action;

    #[test]
    fn audio_asks_for_the_next_track_and_tells_which_plays() {
        let (mut m, _) = logged_in();
        let fx = m.action(Action::Audio);
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::NextTrack(TrackKind::Sound))),
            "{fx:?}"
        );
        let french = Next::Playing {
            language: Some("fr".into()),
            number: 2,
            of: 2,
        };
        m.track_done(TrackKind::Sound, french);
        assert_eq!(m.notice(), Some("Sound: French (2 of 2)"));
        m.track_done(TrackKind::Sound, Next::NoTracks);
        assert_eq!(m.notice(), Some("No sound on this channel"));
        assert_eq!(language_name(Some("qaa")), "Original language");
        assert_eq!(language_name(Some("fin")), "FIN");
    }

    #[test]
    fn subtitle_key_turns_them_on_and_off() {
        let (mut m, _) = logged_in();
        let fx = m.action(Action::Subtitles);
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::NextTrack(TrackKind::Subtitles))),
            "{fx:?}"
        );
        let english = Next::Playing {
            language: Some("en".into()),
            number: 1,
            of: 2,
        };
        m.track_done(TrackKind::Subtitles, english);
        assert_eq!(m.notice(), Some("Subtitles: English (1 of 2)"));
        m.track_done(TrackKind::Subtitles, Next::Off { of: 2 });
        assert_eq!(m.notice(), Some("Subtitles off"));
        m.track_done(TrackKind::Subtitles, Next::NoTracks);
        assert_eq!(m.notice(), Some("No subtitles on this channel"));
    }
}
