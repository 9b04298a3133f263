//! The operator's content server: certificate authority and enrollment, subscribers and
//! packages, the channel catalogue with a small programme guide, an encrypt-once packager,
//! licenses, live streaming of the test channels and live inputs over mutual TLS, and each
//! subscriber's locker of sealed files. See `docs/content-server.md`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod ca;
pub mod catalogue;
pub mod codes;
pub mod config;
pub mod edge;
pub mod guide;
pub mod keys;
pub mod live;
pub mod locker;
pub mod packager;
pub mod parental;
pub mod routes;
pub mod server;
pub mod store;
pub mod ts;
