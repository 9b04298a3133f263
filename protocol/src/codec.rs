//! Minimal big-endian reader and writer for the wire formats. Every read is bounds-checked
//! and returns [`DecodeError`]; nothing here can panic on any input.

use crate::error::DecodeError;

/// The version byte that starts every message of this protocol revision.
pub const WIRE_VERSION: u8 = 1;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Checks the version byte and the message type byte.
    pub(crate) fn header(buf: &'a [u8], msg_type: u8) -> Result<Self, DecodeError> {
        Ok(Self::header_of(buf, &[msg_type])?.0)
    }

    /// [`Reader::header`] for a message that may have one of several types: returns the one
    /// it has.
    pub(crate) fn header_of(buf: &'a [u8], msg_types: &[u8]) -> Result<(Self, u8), DecodeError> {
        let mut r = Self::new(buf);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let t = r.u8()?;
        if !msg_types.contains(&t) {
            return Err(DecodeError::UnexpectedType(t));
        }
        Ok((r, t))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A field preceded by a one-byte length.
    pub(crate) fn vec8(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    /// A field preceded by a two-byte length.
    pub(crate) fn vec16(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn header(msg_type: u8) -> Self {
        let mut w = Self::default();
        w.u8(WIRE_VERSION);
        w.u8(msg_type);
        w
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    /// Callers guarantee `v.len() <= 255` (checked where the value is validated).
    pub(crate) fn vec8(&mut self, v: &[u8]) -> Result<(), crate::Error> {
        let n = u8::try_from(v.len()).map_err(|_| crate::Error::TooLarge("field"))?;
        self.u8(n);
        self.bytes(v);
        Ok(())
    }

    pub(crate) fn vec16(&mut self, what: &'static str, v: &[u8]) -> Result<(), crate::Error> {
        let n = u16::try_from(v.len()).map_err(|_| crate::Error::TooLarge(what))?;
        self.u16(n);
        self.bytes(v);
        Ok(())
    }
}

/// Message type bytes (the second byte of every message).
pub(crate) mod msg {
    pub(crate) const REGISTER: u8 = 0x01;
    pub(crate) const RECOVER_REQUEST: u8 = 0x02;
    pub(crate) const RECOVER_RESPONSE: u8 = 0x03;
    pub(crate) const CONFIRM: u8 = 0x04;
    pub(crate) const PERSONAL_DATA: u8 = 0x10;
    pub(crate) const PERSONAL_DATA_WITH_LOCKER: u8 = 0x11;
    pub(crate) const LICENSE: u8 = 0x20;
    pub(crate) const SEGMENT: u8 = 0x21;
}
