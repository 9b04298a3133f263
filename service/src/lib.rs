//! Plumbing shared by the key server and the content server: rustls configuration from PEM
//! files, a TLS accept loop that hands each request its peer's certificate, opening a
//! SQLite-or-PostgreSQL pool with the right migrations, and the wall clock.
#![forbid(unsafe_code)]

pub mod db;
pub mod serve;
pub mod tls;

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
