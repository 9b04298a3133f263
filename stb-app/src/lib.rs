//! The set-top box without its screens: login by EKE with the key server, mutual TLS to the
//! content server with the recovered certificate, licenses, a decrypting GStreamer player,
//! zapping, registration, and a headless mode for automation. The Slint UI builds on this.
#![forbid(unsafe_code)]

pub mod config;
pub mod feed;
pub mod harden;
pub mod headless;
pub mod keyserver_client;
pub mod player;
pub mod register;
pub mod remote;
pub mod session;
pub mod ui;
