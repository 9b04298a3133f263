//! `keyserver monitor`: reads the audit log and raises alerts, the origin document's
//! monitoring system. Pure logic here (events in, alerts out); the CLI does the file I/O.

use crate::audit::Event;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

/// When to raise an alert.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Sliding window, seconds.
    pub window_secs: i64,
    /// Unconfirmed recoveries of one identifier within the window.
    pub failures_per_id: usize,
    /// Distinct identifiers tried from one address within the window.
    pub ids_per_peer: usize,
    /// Rate-limited requests from one address within the window.
    pub refusals_per_peer: usize,
    /// The long window, seconds: unconfirmed recoveries per identifier counted over it are
    /// not reset by a success (guesses interleaved with the owner's logins).
    pub long_window_secs: i64,
    /// Unconfirmed recoveries of one identifier within the long window.
    pub slow_failures_per_id: usize,
    /// Registrations of identifiers held by others, by one subscriber, within the window.
    pub taken_per_subject: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            window_secs: 600,
            failures_per_id: 5,
            ids_per_peer: 20,
            refusals_per_peer: 30,
            long_window_secs: 86_400,
            slow_failures_per_id: 10,
            taken_per_subject: 3,
        }
    }
}

/// Something an operator should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Many unconfirmed recoveries for one identifier: someone is guessing its password.
    FailureBurst {
        /// Identifier hash.
        id: String,
        /// Unconfirmed attempts in the window.
        count: usize,
    },
    /// One address tries many identifiers: a scan or a credential-stuffing run.
    ManyIdentifiers {
        /// The address.
        peer: IpAddr,
        /// Distinct identifiers in the window.
        count: usize,
    },
    /// One address keeps hitting the spacing rule or locks.
    Refusals {
        /// The address.
        peer: IpAddr,
        /// Refused requests in the window.
        count: usize,
    },
    /// Unconfirmed recoveries of one identifier keep coming, spaced out, between its owner's
    /// logins: someone is guessing slowly.
    SlowGuessing {
        /// Identifier hash.
        id: String,
        /// Unconfirmed attempts in the long window.
        count: usize,
    },
    /// One subscriber asks to register identifiers that others hold: enumeration.
    RegistrationProbing {
        /// Certificate subject hash.
        subject: String,
        /// Such registrations in the window.
        count: usize,
    },
    /// An identifier was locked by the guess limit.
    Locked {
        /// Identifier hash.
        id: String,
        /// Address of the attempt that locked it.
        peer: Option<IpAddr>,
    },
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alert::FailureBurst { id, count } => {
                write!(f, "failure-burst id={id} unconfirmed={count}")
            }
            Alert::ManyIdentifiers { peer, count } => {
                write!(f, "many-identifiers peer={peer} identifiers={count}")
            }
            Alert::Refusals { peer, count } => write!(f, "refusals peer={peer} refused={count}"),
            Alert::SlowGuessing { id, count } => {
                write!(f, "slow-guessing id={id} unconfirmed={count}")
            }
            Alert::RegistrationProbing { subject, count } => {
                write!(f, "registration-probing subject={subject} taken={count}")
            }
            Alert::Locked { id, peer } => match peer {
                Some(p) => write!(f, "locked id={id} peer={p}"),
                None => write!(f, "locked id={id}"),
            },
        }
    }
}

/// Timestamps in a sliding window, and whether the current incident was reported: an alert
/// fires when the count reaches its threshold and not again until the window has emptied.
#[derive(Debug, Default)]
struct Window {
    times: VecDeque<i64>,
    alerted: bool,
}

impl Window {
    /// Adds an event at `ts`, forgets those before `horizon`; true when this event makes
    /// the count reach `threshold` for the first time in this incident.
    fn push(&mut self, ts: i64, horizon: i64, threshold: usize) -> bool {
        self.prune(horizon);
        self.times.push_back(ts);
        if self.times.len() >= threshold && !self.alerted {
            self.alerted = true;
            return true;
        }
        false
    }

    fn prune(&mut self, horizon: i64) {
        while self.times.front().is_some_and(|&t| t < horizon) {
            self.times.pop_front();
        }
        if self.times.is_empty() {
            self.alerted = false;
        }
    }

    fn len(&self) -> usize {
        self.times.len()
    }
}

/// Sliding-window state over the audit events.
#[derive(Debug, Default)]
pub struct Monitor {
    thresholds: Thresholds,
    unconfirmed: HashMap<String, Window>,
    long_unconfirmed: HashMap<String, Window>,
    ids_by_peer: HashMap<IpAddr, HashMap<String, i64>>,
    refusals: HashMap<IpAddr, Window>,
    taken: HashMap<String, Window>,
}

impl Monitor {
    /// A monitor with the given thresholds.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            ..Self::default()
        }
    }

    /// Feeds one event (in log order) and returns the alerts it raises. An alert fires once
    /// per incident: when a count reaches its threshold, not again while it stays above.
    pub fn feed(&mut self, ev: &Event) -> Vec<Alert> {
        let t = self.thresholds;
        let horizon = ev.ts_ms - t.window_secs * 1000;
        let long_horizon = ev.ts_ms - t.long_window_secs * 1000;
        let mut alerts = Vec::new();
        match (ev.event.as_str(), ev.outcome.as_str()) {
            ("recover", "answered") => {
                let w = self.unconfirmed.entry(ev.id.clone()).or_default();
                if w.push(ev.ts_ms, horizon, t.failures_per_id) {
                    alerts.push(Alert::FailureBurst {
                        id: ev.id.clone(),
                        count: w.len(),
                    });
                }
                let w = self.long_unconfirmed.entry(ev.id.clone()).or_default();
                if w.push(ev.ts_ms, long_horizon, t.slow_failures_per_id) {
                    alerts.push(Alert::SlowGuessing {
                        id: ev.id.clone(),
                        count: w.len(),
                    });
                }
            }
            ("confirm", "confirmed") => {
                self.unconfirmed.remove(&ev.id);
                // The owner's own attempt was counted as unconfirmed: take it back, keep the
                // others (a success must not hide the guesses around it).
                if let Some(w) = self.long_unconfirmed.get_mut(&ev.id) {
                    w.times.pop_back();
                }
            }
            ("lock", _) => alerts.push(Alert::Locked {
                id: ev.id.clone(),
                peer: ev.peer,
            }),
            ("recover", "too_soon" | "locked" | "rate_limited") => {
                if let Some(peer) = ev.peer {
                    let w = self.refusals.entry(peer).or_default();
                    if w.push(ev.ts_ms, horizon, t.refusals_per_peer) {
                        alerts.push(Alert::Refusals {
                            peer,
                            count: w.len(),
                        });
                    }
                }
            }
            ("register", "other_subject" | "probing_limited") => {
                if let Some(subject) = &ev.subject {
                    let w = self.taken.entry(subject.clone()).or_default();
                    if w.push(ev.ts_ms, horizon, t.taken_per_subject) {
                        alerts.push(Alert::RegistrationProbing {
                            subject: subject.clone(),
                            count: w.len(),
                        });
                    }
                }
            }
            _ => {}
        }
        if let (true, Some(peer)) = (ev.event == "recover", ev.peer) {
            let ids = self.ids_by_peer.entry(peer).or_default();
            let was_new = ids.insert(ev.id.clone(), ev.ts_ms).is_none();
            ids.retain(|_, seen| *seen >= horizon);
            if was_new && ids.len() == t.ids_per_peer {
                alerts.push(Alert::ManyIdentifiers {
                    peer,
                    count: ids.len(),
                });
            }
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, event: &str, id: &str, peer: &str, outcome: &str) -> Event {
        Event {
            ts_ms: ts,
            event: event.into(),
            id: id.into(),
            peer: peer.parse().ok(),
            subject: None,
            outcome: outcome.into(),
        }
    }

    #[test]
    fn failure_burst_fires_once_and_confirm_clears() {
        let mut m = Monitor::new(Thresholds {
            failures_per_id: 3,
            ..Thresholds::default()
        });
        let mut fired = vec![];
        for i in 0..5 {
            fired.extend(m.feed(&ev(i * 11_000, "recover", "aa", "10.0.0.1", "answered")));
        }
        assert_eq!(
            fired,
            vec![Alert::FailureBurst {
                id: "aa".into(),
                count: 3
            }]
        );
        assert!(
            m.feed(&ev(60_000, "confirm", "aa", "10.0.0.1", "confirmed"))
                .is_empty()
        );
        assert!(
            m.feed(&ev(70_000, "recover", "aa", "10.0.0.1", "answered"))
                .is_empty()
        );
    }

    #[test]
    fn old_failures_leave_the_window() {
        let mut m = Monitor::new(Thresholds {
            failures_per_id: 3,
            window_secs: 60,
            ..Thresholds::default()
        });
        let mut fired = vec![];
        for i in 0..6 {
            fired.extend(m.feed(&ev(i * 40_000, "recover", "aa", "10.0.0.1", "answered")));
        }
        assert!(fired.is_empty());
    }

    #[test]
    fn scan_from_one_address_and_locks() {
        let mut m = Monitor::new(Thresholds {
            ids_per_peer: 4,
            ..Thresholds::default()
        });
        let mut fired = vec![];
        for i in 0..6 {
            fired.extend(m.feed(&ev(
                i,
                "recover",
                &format!("id{i}"),
                "192.0.2.7",
                "answered",
            )));
        }
        fired.extend(m.feed(&ev(9, "lock", "id1", "192.0.2.7", "locked")));
        assert_eq!(
            fired,
            vec![
                Alert::ManyIdentifiers {
                    peer: "192.0.2.7".parse().expect("ip"),
                    count: 4
                },
                Alert::Locked {
                    id: "id1".into(),
                    peer: "192.0.2.7".parse().ok()
                },
            ]
        );
    }
}

#[cfg(test)]
mod incident_tests {
    use super::*;

    fn ev(ts: i64, event: &str, id: &str, outcome: &str) -> Event {
        Event {
            ts_ms: ts,
            event: event.into(),
            id: id.into(),
            peer: "10.0.0.1".parse().ok(),
            subject: Some("s1".into()),
            outcome: outcome.into(),
        }
    }

    /// Guesses every 130 s kept the burst window at its threshold: the same alert fired on
    /// every attempt. One incident, one alert.
    #[test]
    fn spaced_burst_alerts_once() {
        let mut m = Monitor::default();
        let fired: Vec<Alert> = (0..20)
            .flat_map(|i| m.feed(&ev(i * 130_000, "recover", "aa", "answered")))
            .filter(|a| matches!(a, Alert::FailureBurst { .. }))
            .collect();
        assert_eq!(fired.len(), 1, "{fired:?}");
    }

    /// Guesses spaced more than the burst window, interleaved with the owner's logins,
    /// raise the slow-guessing alert once.
    #[test]
    fn slow_guesses_between_genuine_logins_alert_once() {
        let mut m = Monitor::default();
        let mut fired = vec![];
        let mut ts = 0;
        for round in 0..4 {
            for _ in 0..9 {
                ts += 200_000;
                fired.extend(m.feed(&ev(ts, "recover", "aa", "answered")));
            }
            ts += 1_000;
            fired.extend(m.feed(&ev(ts, "recover", "aa", "answered")));
            fired.extend(m.feed(&ev(ts + 100, "confirm", "aa", "confirmed")));
            let _ = round;
        }
        let slow: Vec<_> = fired
            .iter()
            .filter(|a| matches!(a, Alert::SlowGuessing { .. }))
            .collect();
        assert_eq!(
            slow,
            vec![&Alert::SlowGuessing {
                id: "aa".into(),
                count: 10
            }]
        );
        assert!(
            !fired
                .iter()
                .any(|a| matches!(a, Alert::FailureBurst { .. })),
            "spaced guesses never make a burst: {fired:?}"
        );
    }

    #[test]
    fn registration_probing_by_one_subject() {
        let mut m = Monitor::default();
        let fired: Vec<Alert> = (0..5)
            .flat_map(|i| {
                m.feed(&ev(
                    i * 1_000,
                    "register",
                    &format!("n{i}"),
                    "other_subject",
                ))
            })
            .collect();
        assert_eq!(
            fired,
            vec![Alert::RegistrationProbing {
                subject: "s1".into(),
                count: 3
            }]
        );
    }
}
