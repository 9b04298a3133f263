//! The set-top box: login by EKE with the key server, mutual TLS to the content server with
//! the recovered certificate, licenses, a decrypting GStreamer player, zapping, registration,
//! the subscriber's locker (`locker`, sealed under KL), a headless mode for automation, and the TV screens (`ui`, Slint) driven by the remote
//! (`remote`, evdev). The screens' Slint code is compiled in the `stb-ui` crate; `ui` here
//! is the plain Rust that drives them (a sans-IO model, the view, the controller).
#![forbid(unsafe_code)]

pub mod channel_keys;
pub mod config;
pub mod feed;
pub mod frame;
pub mod harden;
pub mod headless;
pub mod keyserver_client;
pub mod locker;
pub mod playback;
pub mod player;
pub mod recorder;
pub mod register;
pub mod remote;
pub mod session;
mod sync;
mod tracks;
pub mod ui;
