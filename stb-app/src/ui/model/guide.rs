//! The programme guide: a grid of channels (rows) against time (two hours across), with the
//! highlight on one programme. Up/Down change channel, Left/Right go programme by programme
//! (back to the current half hour, ahead up to a week), CH+/CH- turn a page of rows, OK
//! watches the highlighted channel, BACK or GUIDE close it. Programmes are fetched for the
//! rows on screen in blocks of three hours (the same URLs for every box, so an HTTP cache in
//! front of the server shares them) as the viewer moves, and kept for the session.

use super::{Effect, Model, Screen, Timer};
use crate::remote::Action;
use stb_protocol::content_api::{Guide, Programme};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Channel rows on screen at once.
pub const GUIDE_ROWS: usize = 6;
/// The time shown across the grid.
pub const GUIDE_SPAN_MS: i64 = 2 * HOUR_MS;
/// The grid's time steps: it starts on a half hour.
const STEP_MS: i64 = 30 * 60_000;
const HOUR_MS: i64 = 3_600_000;
/// How far ahead the guide goes (the operator's guide holds a week).
const AHEAD_MS: i64 = 7 * 24 * HOUR_MS;
/// Programmes are fetched in blocks of this much, aligned on midnight UTC.
const BLOCK_MS: i64 = 3 * HOUR_MS;
/// Programmes fetched longer ago than this are fetched again when the guide opens: the
/// operator's guide changes (late changes, a new file), and old blocks would pile up.
const KEPT_MS: i64 = HOUR_MS / 2;

/// What the guide holds between openings (programmes already fetched stay for the session).
#[derive(Debug, Default)]
pub(super) struct GuideGrid {
    /// Index (in the channel list) of the highlighted row.
    row: usize,
    /// The instant the highlight is on: the programme covering it on the highlighted row.
    focus_ms: i64,
    /// Start of the time shown (a half hour).
    window_ms: i64,
    /// Programmes by channel, by start.
    programmes: HashMap<u16, BTreeMap<i64, Programme>>,
    /// Blocks (`ms / BLOCK_MS`) fetched or being fetched, per channel.
    covered: HashSet<(u16, i64)>,
    /// Requests in flight.
    loading: usize,
    /// The last request failed (said on screen; moving asks again).
    failed: bool,
    /// When the programmes held were first fetched.
    fetched_ms: i64,
}

/// One row of the grid as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideRowView {
    /// Channel number.
    pub number: u16,
    /// Channel name.
    pub name: String,
    /// Outside the package.
    pub locked: bool,
    /// The channel playing.
    pub playing: bool,
    /// The highlighted row.
    pub highlighted: bool,
    /// Programmes in the window: (programme, highlighted), clipped by the view.
    pub programmes: Vec<(Programme, bool)>,
}

/// The guide as drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct GuideView {
    /// Start of the time shown.
    pub window_ms: i64,
    /// Rows on screen.
    pub rows: Vec<GuideRowView>,
    /// The highlighted programme, if the highlighted row has one at the focus.
    pub selected: Option<Programme>,
    /// Whether rows above and below are off screen.
    pub more: (bool, bool),
    /// A note instead of programmes (loading, failed), or empty.
    pub note: &'static str,
}

fn floor_step(ms: i64) -> i64 {
    ms.div_euclid(STEP_MS) * STEP_MS
}

impl GuideGrid {
    fn programme_at(&self, number: u16, at_ms: i64) -> Option<&Programme> {
        self.programmes
            .get(&number)?
            .range(..=at_ms)
            .next_back()
            .map(|(_, p)| p)
            .filter(|p| p.end_ms > at_ms)
    }

    /// The first programme of `number` starting after `at_ms`.
    fn programme_after(&self, number: u16, at_ms: i64) -> Option<&Programme> {
        self.programmes
            .get(&number)?
            .range(at_ms + 1..)
            .next()
            .map(|(_, p)| p)
    }

    /// Moves the window so the focus shows, not before the current half hour.
    fn follow_focus(&mut self, now_ms: i64) {
        let earliest = floor_step(now_ms);
        self.focus_ms = self.focus_ms.clamp(now_ms, now_ms + AHEAD_MS);
        if self.focus_ms < self.window_ms {
            self.window_ms = floor_step(self.focus_ms);
        } else if self.focus_ms >= self.window_ms + GUIDE_SPAN_MS {
            self.window_ms = floor_step(self.focus_ms) - GUIDE_SPAN_MS + STEP_MS;
        }
        self.window_ms = self.window_ms.max(earliest);
    }
}

impl Model {
    /// Opens the guide on the channel playing (or highlighted in the list), at the time now.
    pub(super) fn open_guide(&mut self, fx: &mut Vec<Effect>) {
        if self.channels().is_empty() {
            return;
        }
        if !self.entry.is_empty() {
            self.entry.clear();
            fx.push(Effect::Cancel(Timer::NumberEntry));
        }
        // The guide has every channel: its row is found by number (the list may show the
        // favourites only).
        let on = match self.screen {
            Screen::Channels => self.listed().get(self.selected).map(|c| c.number),
            _ => self.current,
        };
        let row = on
            .and_then(|n| self.channels().iter().position(|c| c.number == n))
            .unwrap_or(0);
        self.guide_return = self.screen;
        self.screen = Screen::Guide;
        self.banner = false;
        let now = self.now_ms;
        let g = &mut self.guide;
        if now - g.fetched_ms > KEPT_MS {
            *g = GuideGrid {
                fetched_ms: now,
                ..GuideGrid::default()
            };
        }
        g.row = row;
        g.focus_ms = now;
        g.window_ms = floor_step(now);
        g.failed = false;
        self.fetch_guide(fx);
    }

    pub(super) fn guide_action(&mut self, action: Action, fx: &mut Vec<Effect>) {
        let n = self.channels().len();
        if n == 0 {
            return;
        }
        let now = self.now_ms;
        let number = self.channels()[self.guide.row.min(n - 1)].number;
        match action {
            Action::Up => self.guide.row = (self.guide.row + n - 1) % n,
            Action::Down => self.guide.row = (self.guide.row + 1) % n,
            Action::ChannelUp => self.guide.row = self.guide.row.saturating_sub(GUIDE_ROWS),
            Action::ChannelDown => self.guide.row = (self.guide.row + GUIDE_ROWS).min(n - 1),
            Action::Right => {
                let g = &mut self.guide;
                // The next programme, or half an hour on where the guide knows nothing.
                g.focus_ms = match g.programme_at(number, g.focus_ms) {
                    Some(p) => p.end_ms,
                    None => g
                        .programme_after(number, g.focus_ms)
                        .map_or(g.focus_ms + STEP_MS, |p| {
                            p.start_ms.min(g.focus_ms + STEP_MS)
                        }),
                };
                g.follow_focus(now);
            }
            Action::Left => {
                let g = &mut self.guide;
                let before = g
                    .programme_at(number, g.focus_ms)
                    .map_or(g.focus_ms, |p| p.start_ms)
                    - 1;
                g.focus_ms = g
                    .programme_at(number, before)
                    .map_or(before + 1 - STEP_MS, |p| p.start_ms);
                g.follow_focus(now);
            }
            Action::Ok => {
                self.tune(number, fx);
                return;
            }
            Action::Back | Action::Guide => {
                self.screen = self.guide_return;
                return;
            }
            Action::Digit(d) => {
                self.type_digit(d, fx);
                return;
            }
            Action::Menu => {
                self.screen = self.guide_return;
                self.open_menu(fx);
                return;
            }
            Action::VolumeUp | Action::VolumeDown | Action::Mute => {
                self.volume_action(action, fx);
                return;
            }
            _ => return,
        }
        self.fetch_guide(fx);
    }

    /// Digits typed on the guide moved the highlight to that channel (as on the list).
    pub(super) fn guide_jump_to_entry(&mut self) {
        let entry = std::mem::take(&mut self.entry);
        if let Some(row) = entry.parse().ok().and_then(|n| self.row_of_number(n)) {
            self.guide.row = row;
        }
    }

    /// Asks for the blocks the rows on screen lack over the time shown.
    fn fetch_guide(&mut self, fx: &mut Vec<Effect>) {
        let top = self.guide_top();
        let window = self.guide.window_ms;
        let blocks =
            window.div_euclid(BLOCK_MS)..=(window + GUIDE_SPAN_MS - 1).div_euclid(BLOCK_MS);
        let rows = &self.channels()[top..(top + GUIDE_ROWS).min(self.channels().len())];
        let mut missing_blocks = blocks.filter(|&b| {
            rows.iter()
                .any(|c| !self.guide.covered.contains(&(c.number, b)))
        });
        let Some(first) = missing_blocks.next() else {
            return;
        };
        let last = missing_blocks.next_back().unwrap_or(first);
        let channels: Vec<u16> = rows.iter().map(|c| c.number).collect();
        for &n in &channels {
            self.guide.covered.extend((first..=last).map(|b| (n, b)));
        }
        self.guide.loading += 1;
        fx.push(Effect::FetchGuide {
            channels,
            from_ms: first * BLOCK_MS,
            to_ms: (last + 1) * BLOCK_MS,
        });
    }

    /// The answer to an [`Effect::FetchGuide`]. On failure the hours asked for are asked
    /// again at the next move.
    pub fn guide_done(
        &mut self,
        channels: &[u16],
        (from_ms, to_ms): (i64, i64),
        result: Result<Guide, String>,
    ) -> Vec<Effect> {
        if self.account.is_none() {
            // Asked before a logout: nothing of that session stays.
            return vec![];
        }
        let g = &mut self.guide;
        g.loading = g.loading.saturating_sub(1);
        match result {
            Ok(guide) => {
                g.failed = false;
                for c in guide.channels {
                    let list = g.programmes.entry(c.number).or_default();
                    for p in c.programmes {
                        list.insert(p.start_ms, p);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "guide not fetched");
                g.failed = true;
                for &n in channels {
                    for b in from_ms.div_euclid(BLOCK_MS)..to_ms.div_euclid(BLOCK_MS) {
                        g.covered.remove(&(n, b));
                    }
                }
            }
        }
        vec![]
    }

    /// The first row on screen: pages of [`GUIDE_ROWS`].
    fn guide_top(&self) -> usize {
        self.guide.row - self.guide.row % GUIDE_ROWS
    }

    /// The guide as drawn, when it is on screen.
    pub fn guide_view(&self) -> Option<GuideView> {
        if self.screen != Screen::Guide {
            return None;
        }
        let g = &self.guide;
        let channels = self.channels();
        let top = self.guide_top();
        let end = (top + GUIDE_ROWS).min(channels.len());
        let (from, to) = (g.window_ms, g.window_ms + GUIDE_SPAN_MS);
        let rows: Vec<GuideRowView> = channels[top..end]
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let highlighted = top + i == g.row;
                let focus = highlighted
                    .then(|| g.programme_at(c.number, g.focus_ms))
                    .flatten()
                    .map(|p| p.start_ms);
                let programmes = g
                    .programmes
                    .get(&c.number)
                    .map(|list| {
                        list.values()
                            .filter(|p| p.end_ms > from && p.start_ms < to)
                            .map(|p| (p.clone(), Some(p.start_ms) == focus))
                            .collect()
                    })
                    .unwrap_or_default();
                GuideRowView {
                    number: c.number,
                    name: c.name.clone(),
                    locked: !c.entitled,
                    playing: self.current == Some(c.number),
                    highlighted,
                    programmes,
                }
            })
            .collect();
        let selected = channels
            .get(g.row)
            .and_then(|c| g.programme_at(c.number, g.focus_ms))
            .cloned();
        let empty = rows.iter().all(|r| r.programmes.is_empty());
        let note = if g.failed {
            "The guide could not be loaded. Move to try again."
        } else if g.loading > 0 && empty {
            "Loading the guide\u{2026}"
        } else if empty {
            "No programme information for these channels."
        } else {
            ""
        };
        Some(GuideView {
            window_ms: from,
            rows,
            selected,
            more: (top > 0, end < channels.len()),
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::*;
    use stb_protocol::content_api::ChannelGuide;

    const NOW: i64 = 1_795_910_400_000 + 20 * HOUR_MS + 10 * 60_000; // 20:10 UTC

    fn fetches(fx: &[Effect]) -> Vec<(Vec<u16>, i64, i64)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::FetchGuide {
                    channels,
                    from_ms,
                    to_ms,
                } => Some((channels.clone(), *from_ms, *to_ms)),
                _ => None,
            })
            .collect()
    }

    /// Hour-long programmes on every channel, from 18:00 to 23:00.
    fn answer(channels: &[u16]) -> Guide {
        let start = NOW - NOW.rem_euclid(HOUR_MS) - 2 * HOUR_MS;
        Guide {
            channels: channels
                .iter()
                .map(|&number| ChannelGuide {
                    number,
                    programmes: (0..5)
                        .map(|i| {
                            Programme::titled(
                                format!("{number}-{i}"),
                                start + i * HOUR_MS,
                                start + (i + 1) * HOUR_MS,
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn open() -> Model {
        let (mut m, _) = logged_in();
        m.set_now(NOW);
        let fx = m.action(Action::Guide);
        assert_eq!(m.screen(), Screen::Guide);
        let asked = fetches(&fx);
        let midnight = NOW - NOW.rem_euclid(24 * HOUR_MS);
        assert_eq!(
            asked,
            [(
                vec![1, 2, 3, 4],
                midnight + 18 * HOUR_MS,
                midnight + 24 * HOUR_MS
            )],
            "the rows on screen, in the two blocks the time shown (20:00-22:00) touches"
        );
        assert_eq!(
            m.guide_view().expect("view").note,
            "Loading the guide\u{2026}"
        );
        let (channels, from, to) = asked[0].clone();
        m.guide_done(&channels, (from, to), Ok(answer(&channels)));
        m
    }

    fn highlighted(m: &Model) -> String {
        m.guide_view()
            .and_then(|v| v.selected)
            .map(|p| p.title)
            .unwrap_or_default()
    }

    #[test]
    fn the_grid_moves_by_programme_and_by_channel() {
        let mut m = open();
        let view = m.guide_view().expect("view");
        assert_eq!(view.rows.len(), 4);
        assert!(view.rows[0].playing && view.rows[2].locked);
        assert_eq!(
            highlighted(&m),
            "1-2",
            "the programme on air on the channel playing"
        );
        assert!(
            fetches(&m.action(Action::Right)).is_empty(),
            "already fetched"
        );
        assert_eq!(highlighted(&m), "1-3");
        m.action(Action::Down);
        assert_eq!(highlighted(&m), "2-3", "same time on the next channel");
        m.action(Action::Left);
        m.action(Action::Left);
        assert_eq!(highlighted(&m), "2-2", "not before the programme on air");
        m.action(Action::Up);
        m.action(Action::Up);
        assert_eq!(highlighted(&m), "4-2", "wraps to the last channel");
        let fx = m.action(Action::Ok);
        assert_eq!(plays(&fx), vec![4]);
        assert_eq!(m.screen(), Screen::Player);
    }

    #[test]
    fn moving_past_what_was_fetched_asks_for_more_and_a_failure_is_said() {
        let mut m = open();
        let mut rights = 0;
        let asked = loop {
            rights += 1;
            let asked = fetches(&m.action(Action::Right));
            if !asked.is_empty() || rights == 10 {
                break asked;
            }
        };
        // 21:00, 22:00, 23:00 (the end of what the guide has), 23:30, then midnight.
        assert_eq!(rights, 5);
        let view = m.guide_view().expect("view");
        assert!(view.window_ms > NOW, "the window followed the highlight");
        let midnight = NOW - NOW.rem_euclid(24 * HOUR_MS) + 24 * HOUR_MS;
        assert_eq!(asked, [(vec![1, 2, 3, 4], midnight, midnight + BLOCK_MS)]);
        let (channels, from, to) = asked[0].clone();
        m.guide_done(
            &channels,
            (from, to),
            Err("content server unreachable".into()),
        );
        assert!(
            m.guide_view()
                .expect("view")
                .note
                .contains("could not be loaded")
        );
        let again = fetches(&m.action(Action::Left));
        assert!(!again.is_empty(), "the failed hours are asked again");
    }

    #[test]
    fn programmes_older_than_half_an_hour_are_fetched_again_at_the_next_opening() {
        let mut m = open();
        m.action(Action::Back);
        assert!(fetches(&m.action(Action::Guide)).is_empty(), "kept");
        m.action(Action::Back);
        m.set_now(NOW + KEPT_MS + 1);
        assert_eq!(fetches(&m.action(Action::Guide)).len(), 1, "asked again");
    }

    #[test]
    fn back_or_guide_closes_where_it_was_opened_and_digits_jump() {
        let mut m = open();
        m.action(Action::Back);
        assert_eq!(m.screen(), Screen::Player);
        m.action(Action::Back);
        assert_eq!(m.screen(), Screen::Channels);
        m.action(Action::Down);
        m.action(Action::Guide);
        assert_eq!(m.guide_view().expect("view").rows.len(), 4);
        assert_eq!(highlighted(&m), "2-2", "opened on the list's highlight");
        m.action(Action::Digit(4));
        m.timer(Timer::NumberEntry);
        assert_eq!(highlighted(&m), "4-2");
        m.action(Action::Guide);
        assert_eq!(m.screen(), Screen::Channels);
    }
}
