//! Connection admission: how many connections a server holds at once, in all and per source,
//! and the time limits of each phase of a connection. Every connection costs a file
//! descriptor and some memory before it has sent a single request, so a server must refuse
//! beyond a bound it chose, not fall over at the one the kernel imposes.

use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Time limits and caps for the connections of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// The TLS handshake must finish within this many seconds.
    pub handshake_timeout_secs: u64,
    /// A request head must arrive within this many seconds: the first request after the
    /// handshake, and on HTTP/1.1 every later one, counted from the end of the previous
    /// response (so this is also how long an idle HTTP/1.1 connection is kept).
    pub header_timeout_secs: u64,
    /// A connection with no byte in either direction for this many seconds is closed (what
    /// bounds idle HTTP/2 connections).
    pub idle_timeout_secs: u64,
    /// Connections open at once, all sources together. Lowered at start to what the
    /// open-file limit allows.
    pub max_connections: usize,
    /// Connections open at once from one source: an IPv4 address or an IPv6 /64. A hotel's
    /// boxes may share one address behind NAT, hence a generous default.
    pub max_connections_per_source: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_secs: 10,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 16_384,
            max_connections_per_source: 256,
        }
    }
}

impl ConnectionLimits {
    /// TLS handshake limit.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs.max(1))
    }

    /// Request head limit.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    /// Idle limit.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server-wide cap is reached.
    Global,
    /// This source holds its share already.
    PerSource,
}

impl Refusal {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Global => "global",
            Refusal::PerSource => "per_source",
        }
    }
}

/// The key a source is counted under: IPv4 address, or the /64 of an IPv6 address (one host
/// usually owns a whole /64, so counting single addresses would cap nothing).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
        },
    }
}

#[derive(Debug, Default)]
struct Counts {
    by_source: HashMap<IpAddr, usize>,
}

/// Counts open connections and admits new ones within the caps.
#[derive(Debug)]
pub struct Gate {
    max: usize,
    per_source: usize,
    counts: Mutex<Counts>,
    open: watch::Sender<usize>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Gate {
    /// A gate with these caps (each at least 1).
    pub fn new(max: usize, per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            per_source: per_source.max(1),
            counts: Mutex::new(Counts::default()),
            open: watch::channel(0).0,
        })
    }

    /// A gate for one of `listeners` listeners of this process, its global cap lowered to
    /// what the open-file limit (raised to its hard limit first) leaves room for.
    pub fn within_open_files(limits: &ConnectionLimits, listeners: usize) -> Arc<Self> {
        let nofile = raise_open_file_limit();
        let max = cap_for_open_files(limits.max_connections, nofile, listeners);
        if max < limits.max_connections {
            tracing::warn!(
                wanted = limits.max_connections,
                max,
                nofile,
                "open-file limit too low for max_connections; capping (raise LimitNOFILE)"
            );
        }
        Self::new(max, limits.max_connections_per_source)
    }

    /// The server-wide cap in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Admits a connection from `peer`, or says which cap refuses it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admission, Refusal> {
        let source = source_key(peer);
        let mut counts = self.lock();
        if *self.open.borrow() >= self.max {
            return Err(Refusal::Global);
        }
        let n = counts.by_source.entry(source).or_default();
        if *n >= self.per_source {
            return Err(Refusal::PerSource);
        }
        *n += 1;
        self.open.send_modify(|open| *open += 1);
        Ok(Admission {
            gate: self.clone(),
            source,
        })
    }

    /// Resolves when no connection is open.
    pub async fn drained(&self) {
        let _ = self.open.subscribe().wait_for(|open| *open == 0).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.gate.lock();
        if let Some(n) = counts.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&self.source);
            }
        }
        self.gate.open.send_modify(|open| *open -= 1);
    }
}

/// Raises this process's soft open-file limit to its hard limit and returns the soft limit
/// now in force. A server holds one descriptor per connection; the soft default (1,024 on
/// many systems) is a compatibility setting for `select()`, which these servers do not use.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "could not raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Descriptors kept for everything but client connections: database pool, log and audit
/// files, listeners, outgoing requests.
pub const RESERVED_FILES: u64 = 128;

/// The largest connection cap the open-file limit `nofile` leaves room for when `listeners`
/// listeners share it.
pub fn cap_for_open_files(wanted: usize, nofile: u64, listeners: usize) -> usize {
    let room = nofile.saturating_sub(RESERVED_FILES) / listeners.max(1) as u64;
    wanted
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn per_source_and_global_caps_and_release() {
        let gate = Gate::new(3, 2);
        let a1 = gate.admit(ip("192.0.2.1")).expect("first");
        let _a2 = gate.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(
            gate.admit(ip("192.0.2.1")).expect_err("refused"),
            Refusal::PerSource
        );
        let _b1 = gate.admit(ip("192.0.2.2")).expect("other source");
        assert_eq!(
            gate.admit(ip("192.0.2.3")).expect_err("refused"),
            Refusal::Global
        );
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        gate.admit(ip("192.0.2.1")).expect("place freed");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let gate = Gate::new(10, 1);
        let _a = gate.admit(ip("2001:db8::1")).expect("first");
        assert_eq!(
            gate.admit(ip("2001:db8::2")).expect_err("refused"),
            Refusal::PerSource
        );
        let _b = gate.admit(ip("2001:db8:0:1::1")).expect("other /64");
        let _c = gate.admit(ip("192.0.2.9")).expect("v4");
        assert_eq!(
            gate.admit(ip("::ffff:192.0.2.9")).expect_err("refused"),
            Refusal::PerSource
        );
    }

    #[test]
    fn cap_leaves_room_for_other_files() {
        assert_eq!(cap_for_open_files(16_384, 1_024, 1), 896);
        assert_eq!(cap_for_open_files(100, 65_536, 2), 100);
        assert_eq!(cap_for_open_files(100, 10, 1), 1);
    }
}
