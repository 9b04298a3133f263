//! Locking shared by the threads that touch the player's statistics and the UI's frame
//! slot (GStreamer's streaming threads, the feeder, the UI thread).

use std::sync::{Mutex, MutexGuard};

/// Locks, ignoring poisoning: the counters and the waiting frame stay usable after a panic
/// elsewhere, and a panic in one streaming thread must not stop the picture.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
