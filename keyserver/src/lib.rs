//! The key server: stores subscribers' sealed personal data, answers EKE recoveries, limits
//! guesses, and audits. See `docs/keyserver.md` for operation and `docs/protocol.md` for the
//! messages.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod metrics;
pub mod monitor;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
