//! The key server: stores subscribers' sealed personal data, answers EKE recoveries, limits
//! guesses, and audits. See `docs/keyserver.md` for operation and `docs/protocol.md` for the
//! messages.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod config;
pub mod elements;
pub mod kek;
pub mod metrics;
pub mod monitor;
pub mod revocation;
pub mod routes;
pub mod server;
pub mod store;

pub use stb_server_common::now_ms;
