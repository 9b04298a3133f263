//! Error types. Peer misbehaviour, bad user input and authentication failure are kept apart
//! so that servers can answer with the right status and UIs can say the right thing.

use thiserror::Error;

/// A message could not be decoded. Always the peer's (or an attacker's) doing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the message did.
    #[error("message truncated")]
    Truncated,
    /// Bytes follow the end of the message.
    #[error("trailing bytes after message")]
    TrailingBytes,
    /// The version byte is not one this implementation speaks.
    #[error("unsupported message version {0}")]
    UnsupportedVersion(u8),
    /// The message type byte is not the one expected here.
    #[error("unexpected message type {0:#04x}")]
    UnexpectedType(u8),
    /// The suite identifier is unknown.
    #[error("unsupported suite {0}")]
    UnsupportedSuite(u8),
    /// A length field is outside what the format allows.
    #[error("invalid length for {0}")]
    InvalidLength(&'static str),
    /// A field has a value the format forbids.
    #[error("invalid field {0}")]
    InvalidField(&'static str),
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A message from the peer was malformed.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A point sent by the peer is not on P-256, or is the identity.
    #[error("invalid curve point from peer")]
    InvalidPoint,
    /// Integrity check failed. During recovery this is what a wrong identifier or password
    /// looks like: the two cannot (and must not) be told apart.
    #[error("authentication failed (wrong identifier or password, or tampered data)")]
    AuthenticationFailed,
    /// The identifier is not acceptable.
    #[error("invalid identifier: {0}")]
    Identifier(#[from] crate::identifier::IdentifierError),
    /// A value is too large for its wire encoding.
    #[error("{0} is too large to encode")]
    TooLarge(&'static str),
    /// A segment's clear header disagrees with its key: another key id, or an IV other than
    /// the one its key id, epoch and sequence derive (docs/protocol.md, segments).
    #[error("segment header does not match its key: {0}")]
    SegmentMismatch(&'static str),
    /// The key-derivation function rejected its parameters (never with the built-in suites).
    #[error("key derivation failed")]
    Kdf,
    /// The segment cipher refused a key or a buffer (never with a 16-byte key).
    #[error("segment cipher failed")]
    Cipher,
    /// The elliptic-curve library refused a scalar or a point (never with the values this
    /// crate passes it).
    #[error("elliptic-curve operation failed")]
    Curve,
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
