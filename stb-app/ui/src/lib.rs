//! The box's screens (`*.slint` in this directory), compiled by build.rs. The logic that
//! fills them lives in stb-app's `ui` module.

#![allow(missing_docs, clippy::all)]

slint::include_modules!();
