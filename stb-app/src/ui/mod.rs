//! The on-screen UI: Slint screens (`ui/*.slint`) drawn from a sans-IO [`model::Model`],
//! driven by the remote and the window's keyboard, with the player's frames as video.

pub mod controller;
pub mod keyboard;
pub mod model;
pub mod screenshots;
pub mod view;

/// Which screen the window draws: the model's screens, without the wizard's steps.
pub use stb_ui::Screen as DrawnScreen;
pub use stb_ui::{
    AppWindow, BannerInfo, ChannelRow, FieldItem, GuideCell, GuideRow, Hint, KeyCap, PlaybackInfo,
    RecordingRow,
};
