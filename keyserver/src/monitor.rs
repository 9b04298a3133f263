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
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            window_secs: 600,
            failures_per_id: 5,
            ids_per_peer: 20,
            refusals_per_peer: 30,
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
            Alert::Locked { id, peer } => match peer {
                Some(p) => write!(f, "locked id={id} peer={p}"),
                None => write!(f, "locked id={id}"),
            },
        }
    }
}

/// Sliding-window state over the audit events.
#[derive(Debug, Default)]
pub struct Monitor {
    thresholds: Thresholds,
    unconfirmed: HashMap<String, VecDeque<i64>>,
    ids_by_peer: HashMap<IpAddr, HashMap<String, i64>>,
    refusals: HashMap<IpAddr, VecDeque<i64>>,
}

impl Monitor {
    /// A monitor with the given thresholds.
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            ..Self::default()
        }
    }

    /// Feeds one event (in log order) and returns the alerts it raises. An alert fires when a
    /// count reaches its threshold, not again for every event above it.
    pub fn feed(&mut self, ev: &Event) -> Vec<Alert> {
        let t = self.thresholds;
        let horizon = ev.ts_ms - t.window_secs * 1000;
        let mut alerts = Vec::new();
        match (ev.event.as_str(), ev.outcome.as_str()) {
            ("recover", "answered") => {
                let q = self.unconfirmed.entry(ev.id.clone()).or_default();
                q.push_back(ev.ts_ms);
                prune(q, horizon);
                if q.len() == t.failures_per_id {
                    alerts.push(Alert::FailureBurst {
                        id: ev.id.clone(),
                        count: q.len(),
                    });
                }
            }
            ("confirm", "confirmed") => {
                self.unconfirmed.remove(&ev.id);
            }
            ("lock", _) => alerts.push(Alert::Locked {
                id: ev.id.clone(),
                peer: ev.peer,
            }),
            ("recover", "too_soon" | "locked") => {
                if let Some(peer) = ev.peer {
                    let q = self.refusals.entry(peer).or_default();
                    q.push_back(ev.ts_ms);
                    prune(q, horizon);
                    if q.len() == t.refusals_per_peer {
                        alerts.push(Alert::Refusals {
                            peer,
                            count: q.len(),
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

fn prune(q: &mut VecDeque<i64>, horizon: i64) {
    while q.front().is_some_and(|&t| t < horizon) {
        q.pop_front();
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
