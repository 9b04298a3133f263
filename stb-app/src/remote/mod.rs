//! The remote control: keymap (key codes to actions) and the evdev devices it comes from.

pub mod devices;
pub mod keymap;

pub use keymap::{Action, Keymap};
