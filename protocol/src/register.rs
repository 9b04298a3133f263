//! The registration message: (suite, N, VP, F_KP(D)) sent to the key server over mutual TLS.
//! The key server stores it as a [`StoredRecord`].

use crate::codec::{Reader, Writer, msg};
use crate::error::{DecodeError, Result};
use crate::identifier::Identifier;
use crate::personal::{PersonalData, SealedData};
use crate::suite::{PasswordKeys, Suite, Verifier};

/// What the key server keeps for one identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Suite the record was made under.
    pub suite: Suite,
    /// VP.
    pub verifier: Verifier,
    /// F_KP(D).
    pub sealed: SealedData,
}

/// Registration request (message type 0x01).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterRequest {
    /// N.
    pub identifier: Identifier,
    /// The record to store.
    pub record: StoredRecord,
}

impl RegisterRequest {
    /// Builds the request on the box: seals D under the password keys.
    pub fn new(keys: &PasswordKeys, data: &PersonalData, iv: [u8; 16]) -> Result<Self> {
        Ok(Self {
            identifier: keys.identifier().clone(),
            record: StoredRecord {
                suite: keys.suite(),
                verifier: keys.verifier().clone(),
                sealed: data.seal(keys, iv)?,
            },
        })
    }

    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(msg::REGISTER);
        w.u8(self.record.suite.id());
        // Identifiers are at most 32 bytes and sealed data has a fixed size: cannot fail.
        let _ = w.vec8(self.identifier.as_bytes());
        w.bytes(self.record.verifier.expose());
        let _ = w.vec16("sealed data", self.record.sealed.as_bytes());
        w.buf
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, msg::REGISTER)?;
        let suite = Suite::from_id(r.u8()?)?;
        let identifier = Identifier::from_wire(r.vec8()?)
            .map_err(|_| DecodeError::InvalidField("identifier"))?;
        let verifier = Verifier::from_bytes(r.array()?);
        let sealed = SealedData::from_bytes(r.vec16()?)?;
        r.finish()?;
        Ok(Self {
            identifier,
            record: StoredRecord {
                suite,
                verifier,
                sealed,
            },
        })
    }
}
