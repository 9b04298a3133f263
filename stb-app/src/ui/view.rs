//! Model to Slint properties, and window keys to actions. The password fields reach the
//! screen as dots, unless the viewer asked to see them (INFO); the fields are emptied when
//! no form is on screen, so a shown password does not stay in the window's properties.

use super::model::{Alert, GUIDE_SPAN_MS, GuideView, MENU, Model, RecordingItem, Screen};
use super::{
    AppWindow, BannerInfo, ChannelRow, DrawnScreen, FieldItem, GuideCell, GuideRow, Hint, KeyCap,
    PlaybackInfo, RecordingRow,
};
use crate::remote::Action;
use chrono::{Local, TimeZone};
use slint::platform::Key;
use slint::{ModelRc, SharedString, VecModel};
use stb_protocol::content_api::Programme;
use std::borrow::Cow;

/// What a key from the window means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKey {
    /// A remote action.
    Action(Action),
    /// A character for a text field.
    Char(char),
    /// Enter in a form: the keyboard's Done key, wherever the highlight is.
    Done,
}

/// Maps Slint's key text. In a form, printable characters are typed; elsewhere the desktop
/// keyboard stands in for the remote: digits, PageUp/PageDown for CH+/CH-, `+`/`-` volume,
/// `m` mute, `i` or F1 info, F2 menu, F3 last channel, `g` or F4 guide, `f` favourite,
/// F12 power.
pub fn window_key(text: &str, wants_text: bool) -> Option<WindowKey> {
    let mut chars = text.chars();
    let c = chars.next()?;
    if chars.next().is_some() {
        return None;
    }
    let special = |k: Key| char::from(k) == c;
    let action = if special(Key::UpArrow) {
        Action::Up
    } else if special(Key::DownArrow) {
        Action::Down
    } else if special(Key::LeftArrow) {
        Action::Left
    } else if special(Key::RightArrow) {
        Action::Right
    } else if special(Key::Return) {
        if wants_text {
            return Some(WindowKey::Done);
        }
        Action::Ok
    } else if special(Key::Escape) {
        Action::Back
    } else if special(Key::Backspace) || special(Key::Delete) {
        Action::Delete
    } else if special(Key::PageUp) {
        Action::ChannelUp
    } else if special(Key::PageDown) {
        Action::ChannelDown
    } else if special(Key::F1) {
        Action::Info
    } else if special(Key::F2) {
        Action::Menu
    } else if special(Key::F3) {
        Action::LastChannel
    } else if special(Key::F4) {
        Action::Guide
    } else if special(Key::F12) {
        Action::Power
    } else if wants_text {
        return (!c.is_control()).then_some(WindowKey::Char(c));
    } else {
        match c {
            '0'..='9' => Action::Digit(c as u8 - b'0'),
            '+' => Action::VolumeUp,
            '-' => Action::VolumeDown,
            'm' => Action::Mute,
            'i' => Action::Info,
            'g' => Action::Guide,
            'f' => Action::Favourite,
            'r' => Action::Record,
            'a' => Action::Audio,
            't' => Action::Subtitles,
            'p' | ' ' => Action::PlayPause,
            's' => Action::Stop,
            '.' | '>' => Action::FastForward,
            ',' | '<' => Action::Rewind,
            _ => return None,
        }
    };
    Some(WindowKey::Action(action))
}

fn list<T: Clone + 'static>(items: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(items))
}

/// Puts `items` into the window's `current` list in place, row by row, so the rows stay
/// the same elements (their highlight animates as it moves); a new list only when the
/// window had none.
fn update<T: Clone + PartialEq + 'static>(
    current: ModelRc<T>,
    items: Vec<T>,
    set: impl FnOnce(ModelRc<T>),
) {
    use slint::Model as _;
    let Some(rows) = current.as_any().downcast_ref::<VecModel<T>>() else {
        return set(list(items));
    };
    if rows.row_count() != items.len() {
        return rows.set_vec(items);
    }
    for (i, item) in items.into_iter().enumerate() {
        if rows.row_data(i).as_ref() != Some(&item) {
            rows.set_row_data(i, item);
        }
    }
}

fn hh_mm(ms: i64) -> String {
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// A programme as the viewer may see it: one that parental control locks shows its rating
/// only, not its title or synopsis.
fn shown<'a>(model: &Model, p: Option<&'a Programme>) -> Option<Cow<'a, Programme>> {
    let p = p?;
    if !model.rating_locked(p.rating.as_deref()) {
        return Some(Cow::Borrowed(p));
    }
    let mut masked = Programme::titled(
        format!(
            "Locked programme (rated {})",
            p.rating.as_deref().unwrap_or_default()
        ),
        p.start_ms,
        p.end_ms,
    );
    masked.rating = p.rating.clone();
    Some(Cow::Owned(masked))
}

/// A recording's title in the list: hidden above the parental limit, like the guide's.
fn recording_title(model: &Model, item: &RecordingItem) -> String {
    let rating = item
        .entry
        .recording
        .as_ref()
        .and_then(|r| r.rating.as_deref());
    if model.rating_locked(rating) {
        format!("Locked recording (rated {})", rating.unwrap_or_default())
    } else {
        item.title().to_owned()
    }
}

/// A programme as a line of the channel list; empty when the guide has none.
fn programme(p: Option<&Programme>) -> String {
    match p {
        Some(p) if !p.title.is_empty() => format!("{}  {}", hh_mm(p.start_ms), p.title),
        _ => String::new(),
    }
}

/// "20:13 - 21:13": when a programme airs, as the banner shows it; empty without one.
fn times(p: Option<&Programme>) -> String {
    p.filter(|p| !p.title.is_empty())
        .map(|p| format!("{} - {}", hh_mm(p.start_ms), hh_mm(p.end_ms)))
        .unwrap_or_default()
}

/// The line under the title: the episode's title, else the start of its description.
fn synopsis(p: &Programme) -> String {
    p.subtitle
        .clone()
        .or_else(|| p.description.clone())
        .unwrap_or_default()
}

/// Rows of the channel list on screen at once (they fit the title-safe area at any size).
pub const LIST_ROWS: usize = 7;

/// The rows on screen: the highlight stays in the middle, except near either end of the list.
pub fn list_window(selected: usize, len: usize) -> std::ops::Range<usize> {
    let top = selected
        .saturating_sub(LIST_ROWS / 2)
        .min(len.saturating_sub(LIST_ROWS));
    top..(top + LIST_ROWS).min(len)
}

/// How far `p` has run at `now_ms`, 0-1; -1 when there is none or its times are unknown.
fn progress(p: Option<&Programme>, now_ms: i64) -> f32 {
    let Some(p) = p.filter(|p| p.end_ms > p.start_ms) else {
        return -1.0;
    };
    ((now_ms - p.start_ms) as f64 / (p.end_ms - p.start_ms) as f64).clamp(0.0, 1.0) as f32
}

/// The wall clock as the banner shows it.
pub fn clock() -> String {
    Local::now().format("%H:%M").to_string()
}

/// Copies everything the model shows into the window's properties.
pub fn render(model: &Model, ui: &AppWindow) {
    ui.set_screen(match model.screen() {
        Screen::Login | Screen::Register(_) => DrawnScreen::Form,
        Screen::Channels => DrawnScreen::Channels,
        Screen::Player => DrawnScreen::Player,
        Screen::Guide => DrawnScreen::Guide,
        Screen::Recordings => DrawnScreen::Recordings,
        Screen::Playback => DrawnScreen::Playback,
        Screen::Picture => DrawnScreen::Picture,
    });
    render_recordings(model, ui);
    if let Some(guide) = model.guide_view() {
        render_guide(model, &guide, ui);
    } else {
        // Nothing of the grid is kept in the window while it is closed.
        ui.set_guide_rows(ModelRc::default());
    }
    if let Some(form) = model.form() {
        ui.set_form_title(form.title.into());
        ui.set_form_subtitle(form.subtitle.into());
        ui.set_fields(model_of_fields(form.fields));
        ui.set_strength(form.strength.map_or(-1, i32::from));
        ui.set_form_message(form.message.into());
        ui.set_hint(list(
            form.hint
                .into_iter()
                .map(|(key, action)| Hint {
                    key: key.into(),
                    action: action.into(),
                })
                .collect(),
        ));
        update(
            ui.get_caps(),
            model
                .keyboard()
                .caps(&form.done_label)
                .into_iter()
                .map(|c| KeyCap {
                    label: c.label.into(),
                    x: c.x,
                    y: c.y,
                    w: c.width,
                    selected: c.selected,
                })
                .collect(),
            |l| ui.set_caps(l),
        );
    } else {
        ui.set_fields(ModelRc::default());
    }
    let playing = model.current().map(|c| c.number);
    let channels = model.listed();
    let favourites = model.favourites();
    let rows = list_window(model.selected(), channels.len());
    let now_ms = chrono::Utc::now().timestamp_millis();
    update(
        ui.get_channels(),
        channels[rows.clone()]
            .iter()
            .zip(rows.clone())
            .map(|(c, i)| ChannelRow {
                number: c.number.to_string().into(),
                name: c.name.clone().into(),
                now: programme(shown(model, c.now.as_ref()).as_deref()).into(),
                locked: !c.entitled,
                favourite: favourites.contains(&c.number),
                selected: i == model.selected(),
                playing: playing == Some(c.number),
                progress: progress(c.now.as_ref(), now_ms),
            })
            .collect(),
        |l| ui.set_channels(l),
    );
    ui.set_more_above(rows.start > 0);
    ui.set_more_below(rows.end < channels.len());
    ui.set_favourites_only(model.favourites_only());
    ui.set_list_position(if channels.is_empty() {
        SharedString::new()
    } else {
        format!("{} / {}", model.selected() + 1, channels.len()).into()
    });
    if let Some(account) = model.account() {
        ui.set_account(account.account.clone().into());
        ui.set_package(account.package.clone().into());
    }
    ui.set_clock(clock().into());
    ui.set_banner_visible(model.banner() && model.current().is_some());
    if let Some(c) = model.current() {
        let (now, next) = (shown(model, c.now.as_ref()), shown(model, c.next.as_ref()));
        let (now, next) = (now.as_deref(), next.as_deref());
        ui.set_banner(BannerInfo {
            number: c.number.to_string().into(),
            name: c.name.clone().into(),
            favourite: favourites.contains(&c.number),
            clock: clock().into(),
            now_times: times(now).into(),
            now: now.map(|p| p.title.clone()).unwrap_or_default().into(),
            synopsis: now.map(synopsis).unwrap_or_default().into(),
            progress: progress(now, now_ms),
            next_times: times(next).into(),
            next: next.map(|p| p.title.clone()).unwrap_or_default().into(),
        });
    }
    ui.set_entry(model.entry().into());
    let (volume, muted, bar) = model.volume();
    ui.set_volume(i32::from(volume));
    ui.set_muted(muted);
    ui.set_volume_visible(bar);
    ui.set_status(model.status().unwrap_or_default().into());
    update(
        ui.get_menu_items(),
        MENU.iter().map(|m| SharedString::from(m.label())).collect(),
        |l| ui.set_menu_items(l),
    );
    ui.set_menu_index(model.menu().map_or(-1, |i| i as i32));
    let alert = model.alert();
    ui.set_alert_title(alert.map(|a| a.title.clone()).unwrap_or_default().into());
    ui.set_alert_detail(alert.map(|a| a.detail.clone()).unwrap_or_default().into());
    let (ok, cancel) = alert.map_or(("OK", ""), Alert::buttons);
    ui.set_alert_ok(ok.into());
    ui.set_alert_cancel(cancel.into());
    ui.set_busy(model.busy().unwrap_or_default().into());
    ui.set_standby(model.standby());
    ui.set_no_signal(model.no_signal());
    ui.set_tuned(model.tuning());
}

/// "1:02:03" or "2:03".
fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s / 3600 {
        0 => format!("{}:{:02}", s / 60, s % 60),
        h => format!("{h}:{:02}:{:02}", s / 60 % 60, s % 60),
    }
}

/// "Channel 1  ·  Sat 28 Nov 20:15" (a picture: its folder and date).
fn recording_about(item: &RecordingItem) -> String {
    let when = Local
        .timestamp_millis_opt(item.start_ms())
        .single()
        .map(|t| t.format("%a %-d %b %H:%M").to_string())
        .unwrap_or_default();
    let place = if item.is_picture() {
        item.entry
            .name
            .rsplit_once('/')
            .map_or("", |(folder, _)| folder)
    } else {
        item.channel()
    };
    format!("{place}  \u{00b7}  {when}")
}

/// The recordings list, the playback bar, and what the box does with time (recording, live
/// TV paused).
fn render_recordings(model: &Model, ui: &AppWindow) {
    let list = model.recordings();
    let rows = list_window(list.selected, list.items.len());
    update(
        ui.get_recording_rows(),
        list.items[rows.clone()]
            .iter()
            .zip(rows.clone())
            .map(|(item, i)| RecordingRow {
                title: recording_title(model, item).into(),
                about: recording_about(item).into(),
                length: if item.is_picture() {
                    format!("{} KB", item.entry.size.div_ceil(1000))
                } else {
                    format!("{} min", item.duration_ms().div_ceil(60_000))
                }
                .into(),
                selected: i == list.selected,
            })
            .collect(),
        |l| ui.set_recording_rows(l),
    );
    ui.set_recordings_position(if list.items.is_empty() {
        SharedString::new()
    } else {
        format!("{} / {}", list.selected + 1, list.items.len()).into()
    });
    ui.set_recordings_note(list.loading.clone().unwrap_or_default().into());
    ui.set_locker_pictures(list.pictures);
    ui.set_picture_title(
        model
            .picture()
            .map(|p| p.title().to_owned())
            .unwrap_or_default()
            .into(),
    );
    if let Some(p) = model.playback() {
        let at = &p.position;
        ui.set_playback(PlaybackInfo {
            title: p.item.title().into(),
            about: recording_about(&p.item).into(),
            position: duration(at.ms).into(),
            total: duration(at.total_ms).into(),
            progress: if at.total_ms == 0 {
                0.0
            } else {
                (at.ms as f32 / at.total_ms as f32).clamp(0.0, 1.0)
            },
            paused: at.paused,
        });
        ui.set_playback_bar(model.banner() || at.paused);
    } else {
        ui.set_playback_bar(false);
    }
    ui.set_recording(
        model
            .recording()
            .map(|r| format!("REC  {}", r.title))
            .unwrap_or_default()
            .into(),
    );
    let behind = model.behind_live_ms();
    ui.set_time_shift(
        if model.live_pause().since_ms.is_some() {
            format!("PAUSED  -{}", duration(behind as u64))
        } else if behind > 0 {
            format!("-{}  (FF: live)", duration(behind as u64))
        } else {
            String::new()
        }
        .into(),
    );
    ui.set_notice(model.notice().unwrap_or_default().into());
}

/// The guide's properties: cells placed as shares of the two hours shown.
fn render_guide(model: &Model, guide: &GuideView, ui: &AppWindow) {
    let (from, to) = (guide.window_ms, guide.window_ms + GUIDE_SPAN_MS);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let share = |ms: i64| (ms.clamp(from, to) - from) as f32 / GUIDE_SPAN_MS as f32;
    ui.set_guide_rows(list(
        guide
            .rows
            .iter()
            .map(|r| GuideRow {
                number: r.number.to_string().into(),
                name: r.name.clone().into(),
                locked: r.locked,
                playing: r.playing,
                selected: r.highlighted,
                cells: list(
                    r.programmes
                        .iter()
                        .map(|(p, selected)| GuideCell {
                            title: shown(model, Some(p))
                                .map(|p| p.title.clone())
                                .unwrap_or_default()
                                .into(),
                            x: share(p.start_ms),
                            w: share(p.end_ms) - share(p.start_ms),
                            selected: *selected,
                            live: p.airs_at(now_ms),
                            continued: p.start_ms < from,
                        })
                        .collect(),
                ),
            })
            .collect(),
    ));
    ui.set_guide_day(
        Local
            .timestamp_millis_opt(from)
            .single()
            .map(|t| t.format("%a %-d %b").to_string())
            .unwrap_or_default()
            .into(),
    );
    ui.set_guide_times(list(
        (0..4)
            .map(|i| hh_mm(from + i * GUIDE_SPAN_MS / 4).into())
            .collect(),
    ));
    ui.set_guide_now_x(if (from..to).contains(&now_ms) {
        share(now_ms)
    } else {
        -1.0
    });
    ui.set_guide_more_above(guide.more.0);
    ui.set_guide_more_below(guide.more.1);
    ui.set_guide_note(guide.note.into());
    let selected = shown(model, guide.selected.as_ref());
    let p = selected.as_deref();
    ui.set_guide_title(p.map(|p| p.title.as_str()).unwrap_or_default().into());
    ui.set_guide_when(
        p.map(|p| {
            let mut when = format!("{} - {}", hh_mm(p.start_ms), hh_mm(p.end_ms));
            if let Some(sub) = &p.subtitle {
                when = format!("{when}  \u{00b7}  {sub}");
            }
            when
        })
        .unwrap_or_default()
        .into(),
    );
    ui.set_guide_about(
        p.map(|p| {
            let mut about = p.categories.join(", ");
            if let Some(r) = &p.rating {
                if !about.is_empty() {
                    about.push_str("  \u{00b7}  ");
                }
                about.push_str(&format!("rated {r}"));
            }
            about
        })
        .unwrap_or_default()
        .into(),
    );
    ui.set_guide_description(
        p.and_then(|p| p.description.clone())
            .unwrap_or_default()
            .into(),
    );
}

fn model_of_fields(fields: Vec<super::model::FieldView>) -> ModelRc<FieldItem> {
    list(
        fields
            .into_iter()
            .map(|f| FieldItem {
                label: f.label.into(),
                text: f.text.into(),
                active: f.active,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: Key) -> String {
        char::from(k).to_string()
    }

    #[test]
    fn the_list_window_follows_the_highlight_through_any_length() {
        assert_eq!(list_window(0, 0), 0..0);
        assert_eq!(list_window(2, 4), 0..4);
        assert_eq!(list_window(0, 200), 0..LIST_ROWS);
        assert_eq!(list_window(100, 200), 97..104);
        assert_eq!(list_window(199, 200), 193..200);
        for selected in 0..200 {
            let rows = list_window(selected, 200);
            assert!(rows.contains(&selected) && rows.len() == LIST_ROWS);
        }
    }

    #[test]
    fn programme_progress() {
        let p = |start_ms, end_ms| Programme::titled("t", start_ms, end_ms);
        assert_eq!(progress(Some(&p(0, 100)), 25), 0.25);
        assert_eq!(progress(Some(&p(0, 100)), 500), 1.0);
        assert_eq!(progress(Some(&p(50, 100)), 0), 0.0);
        assert_eq!(progress(Some(&p(0, 0)), 0), -1.0);
        assert_eq!(progress(None, 0), -1.0);
        assert_eq!(programme(None), "");
        let mut on_air = Programme::titled("Match of the Day", 0, 5_400_000);
        assert_eq!(times(None), "");
        assert_eq!(times(Some(&on_air)).len(), "00:00 - 01:30".len());
        assert_eq!(synopsis(&on_air), "");
        on_air.description = Some("Highlights of the day".into());
        assert_eq!(synopsis(&on_air), "Highlights of the day");
        on_air.subtitle = Some("Round 12".into());
        assert_eq!(synopsis(&on_air), "Round 12");
    }

    #[test]
    fn window_keys_stand_in_for_the_remote() {
        let a = |t: &str, text| window_key(t, text);
        assert_eq!(
            a(&key(Key::UpArrow), true),
            Some(WindowKey::Action(Action::Up))
        );
        assert_eq!(
            a(&key(Key::Return), false),
            Some(WindowKey::Action(Action::Ok))
        );
        assert_eq!(a(&key(Key::Return), true), Some(WindowKey::Done));
        assert_eq!(
            a(&key(Key::Escape), false),
            Some(WindowKey::Action(Action::Back))
        );
        assert_eq!(
            a(&key(Key::PageUp), false),
            Some(WindowKey::Action(Action::ChannelUp))
        );
        assert_eq!(a("7", false), Some(WindowKey::Action(Action::Digit(7))));
        assert_eq!(a("7", true), Some(WindowKey::Char('7')));
        assert_eq!(a("m", false), Some(WindowKey::Action(Action::Mute)));
        assert_eq!(a("m", true), Some(WindowKey::Char('m')));
        assert_eq!(a("#", true), Some(WindowKey::Char('#')));
        assert_eq!(a("x", false), None);
        assert_eq!(a("", false), None);
    }
}
