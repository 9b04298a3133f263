//! The channel's sound tracks: AUDIO (or MENU > Sound track) plays the next one and says
//! which it is.

use super::{Effect, Model};

/// The track playing after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundTrack {
    /// ISO 639 code from the channel, if it names one.
    pub language: Option<String>,
    /// Its place among the channel's tracks, from 1.
    pub number: usize,
    /// How many the channel has.
    pub of: usize,
}

impl Model {
    pub(super) fn next_sound_track(&mut self, fx: &mut Vec<Effect>) {
        if self.current.is_some() {
            fx.push(Effect::NextSoundTrack);
        }
    }

    /// The player's answer to [`Effect::NextSoundTrack`]; None: the channel has no sound.
    pub fn sound_track_done(&mut self, track: Option<SoundTrack>) -> Vec<Effect> {
        let mut fx = Vec::new();
        let text = match track {
            None => "No sound on this channel".to_owned(),
            Some(t) if t.of == 1 => format!(
                "Sound: {} (the only track on this channel)",
                language_name(t.language.as_deref())
            ),
            Some(t) => format!(
                "Sound: {} ({} of {})",
                language_name(t.language.as_deref()),
                t.number,
                t.of
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
            fx.iter().any(|e| matches!(e, Effect::NextSoundTrack)),
            "{fx:?}"
        );
        m.sound_track_done(Some(SoundTrack {
            language: Some("fr".into()),
            number: 2,
            of: 2,
        }));
        assert_eq!(m.notice(), Some("Sound: French (2 of 2)"));
        m.sound_track_done(None);
        assert_eq!(m.notice(), Some("No sound on this channel"));
        assert_eq!(language_name(Some("qaa")), "Original language");
        assert_eq!(language_name(Some("fin")), "FIN");
    }
}
