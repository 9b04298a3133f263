//! Sans-IO core of the secure set-top-box stack.
//!
//! This crate holds every byte format and every cryptographic step shared by the box
//! (`stb-app`), the key server and the content server. It does no networking and reads no
//! clock: callers pass bytes, randomness and times in, and get bytes and typed results out.
//!
//! - [`Identifier`], [`Password`] and [`password::check_policy`]: what the subscriber types.
//! - [`PasswordKeys`]: KP by Argon2id under a versioned [`Suite`], then VP and the sealing key.
//! - [`PersonalData`]: D (certificate, private key, KS, server URLs), sealed under KP.
//! - [`RegisterRequest`]: (N, VP, F_KP(D)) for the key server.
//! - [`eke`]: the one-round-trip recovery: [`ClientRecovery`] on the box, [`eke::answer`] on
//!   the key server, with fake records for unknown identifiers and key confirmation.
//! - [`segment`] and [`license`]: channel content encryption (AES-128-CTR) and licenses.
//! - [`locker`]: the subscriber's own objects and their index, sealed under KL.
//!
//! ```
//! use stb_protocol::*;
//! let id = Identifier::parse("alice")?;
//! # let keys = PasswordKeys::from_kp(Suite::V1, &id, &SecretArray::new([7; 32]));
//! # /*
//! let keys = PasswordKeys::derive(Suite::V1, &id, &Password::from("correct-horse#battery"))?;
//! # */
//! let mut rng = os_rng();
//! let (client, request) = ClientRecovery::start(keys, &mut rng)?;
//! // send request.encode() to the key server, decode its RecoverResponse, then:
//! // let (data, confirm) = client.finish(&response)?;
//! # let _ = (client, request);
//! # Ok::<(), Error>(())
//! ```
#![forbid(unsafe_code)]

mod codec;
pub mod content_api;
mod curve;
pub mod eke;
pub mod enrollment_code;
pub mod error;
pub mod identifier;
pub mod license;
pub mod locker;
pub mod password;
pub mod personal;
pub mod register;
pub mod seal;
pub mod secret;
pub mod segment;
pub mod suite;

#[cfg(test)]
mod vectors;

pub use codec::WIRE_VERSION;
pub use eke::{
    ClientRecovery, Confirm, PendingConfirmation, RecoverRequest, RecoverResponse, Recovered,
    ServerSecret,
};
pub use error::{DecodeError, Error, Result};
pub use identifier::Identifier;
pub use license::{License, LicenseEntry, LicenseKey};
pub use password::Password;
pub use personal::{PersonalData, SealedData};
pub use register::{RegisterRequest, StoredRecord};
pub use secret::{SecretArray, SecretVec};
pub use segment::{ChannelKey, KeyId, SegmentCipher, SegmentHeader, SegmentSplitter};
pub use suite::{PasswordKeys, Suite, Verifier};

/// The operating system's CSPRNG (getrandom), for callers that do not bring their own.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Fresh random bytes from the OS, e.g. for IVs.
pub fn random_array<const N: usize>() -> [u8; N] {
    use rand_core::Rng;
    let mut out = [0u8; N];
    os_rng().fill_bytes(&mut out);
    out
}
