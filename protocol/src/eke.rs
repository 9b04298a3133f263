//! One-round-trip Encrypted Key Exchange on P-256 that returns F_KP(D) to the box.
//!
//! ```text
//! box                                             key server (VP, F_KP(D))
//! a <- random, X* = aG + PwA
//!          RecoverRequest(suite, N, X*)  ------>
//!                                                 X = X* - PwA, reject identity
//!                                                 b <- random, Y* = bG + PwB, Z = bX
//!                                                 keys = HKDF(salt = TH, ikm = Z.x)
//!          <------  RecoverResponse(suite, Y*, F_keys(F_KP(D)))
//! Y = Y* - PwB, Z = aY, keys, open, unseal
//!          Confirm(suite, N, TH, HMAC(k_confirm, TH)) ------>
//! ```
//!
//! PwA and PwB are RFC 9380 hash-to-curve images of VP under two domain separation tags.
//! A wrong password gives the box different keys, so the response fails its MAC; the key
//! server learns nothing about the password from a request. See `docs/protocol.md`.

use crate::codec::{Reader, Writer, msg};
use crate::curve::Scalar;
use crate::error::{DecodeError, Error, Result};
use crate::identifier::Identifier;
use crate::personal::{PersonalData, SEALED_LEN, SealedData};
use crate::register::StoredRecord;
use crate::seal::{SEAL_OVERHEAD, SealingKey, expand};
use crate::secret::SecretArray;
use crate::suite::{PasswordKeys, Suite, Verifier};
use hmac::{Hmac, KeyInit, Mac};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::group::GroupEncoding;
use p256::{AffinePoint, NistP256, NonZeroScalar, ProjectivePoint};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// DST for PwA (client's mask).
pub const DST_A: &[u8] = b"STB-EKE-V01-CS01-with-P256_XMD:SHA-256_SSWU_RO_-PwA";
/// DST for PwB (server's mask).
pub const DST_B: &[u8] = b"STB-EKE-V01-CS01-with-P256_XMD:SHA-256_SSWU_RO_-PwB";
/// Length of a compressed SEC1 point.
pub const POINT_LEN: usize = 33;
/// Length of the encrypted body of a [`RecoverResponse`].
pub const RESPONSE_BODY_LEN: usize = SEALED_LEN + SEAL_OVERHEAD;

const RESPONSE_CONTEXT: &[u8] = b"stb-eke/v1/response";
const CONFIRM_LABEL: &[u8] = b"stb-eke/v1/confirm";

// ---------------------------------------------------------------------------------------------
// Messages

/// Recovery request (message type 0x02): `suite, N, X*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverRequest {
    /// Suite the box derived its keys under.
    pub suite: Suite,
    /// N.
    pub identifier: Identifier,
    /// X* = aG + PwA, compressed SEC1.
    pub x_star: [u8; POINT_LEN],
}

impl RecoverRequest {
    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(msg::RECOVER_REQUEST);
        w.u8(self.suite.id());
        let _ = w.vec8(self.identifier.as_bytes()); // at most 32 bytes
        w.bytes(&self.x_star);
        w.buf
    }

    /// Parses the wire form (the point is validated when it is used).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, msg::RECOVER_REQUEST)?;
        let suite = Suite::from_id(r.u8()?)?;
        let identifier = Identifier::from_wire(r.vec8()?)
            .map_err(|_| DecodeError::InvalidField("identifier"))?;
        let x_star = r.array()?;
        r.finish()?;
        Ok(Self {
            suite,
            identifier,
            x_star,
        })
    }
}

/// Recovery response (message type 0x03): `suite, Y*, F_session(F_KP(D))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverResponse {
    /// Suite of the exchange (equal to the request's).
    pub suite: Suite,
    /// Y* = bG + PwB, compressed SEC1.
    pub y_star: [u8; POINT_LEN],
    /// `iv || ciphertext || tag`, [`RESPONSE_BODY_LEN`] bytes.
    pub body: Vec<u8>,
}

impl RecoverResponse {
    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(msg::RECOVER_RESPONSE);
        w.u8(self.suite.id());
        w.bytes(&self.y_star);
        let _ = w.vec16("response body", &self.body); // fixed size, fits
        w.buf
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, msg::RECOVER_RESPONSE)?;
        let suite = Suite::from_id(r.u8()?)?;
        let y_star = r.array()?;
        let body = r.vec16()?;
        if body.len() != RESPONSE_BODY_LEN {
            return Err(DecodeError::InvalidLength("response body"));
        }
        r.finish()?;
        Ok(Self {
            suite,
            y_star,
            body: body.to_vec(),
        })
    }
}

/// Key confirmation (message type 0x04): `suite, N, session id (TH), tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// Suite of the exchange.
    pub suite: Suite,
    /// N.
    pub identifier: Identifier,
    /// The transcript hash TH, which names the exchange.
    pub session_id: [u8; 32],
    /// HMAC-SHA256(k_confirm, "stb-eke/v1/confirm" || TH).
    pub tag: [u8; 32],
}

impl Confirm {
    /// Wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::header(msg::CONFIRM);
        w.u8(self.suite.id());
        let _ = w.vec8(self.identifier.as_bytes());
        w.bytes(&self.session_id);
        w.bytes(&self.tag);
        w.buf
    }

    /// Parses the wire form.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::header(bytes, msg::CONFIRM)?;
        let suite = Suite::from_id(r.u8()?)?;
        let identifier = Identifier::from_wire(r.vec8()?)
            .map_err(|_| DecodeError::InvalidField("identifier"))?;
        let session_id = r.array()?;
        let tag = r.array()?;
        r.finish()?;
        Ok(Self {
            suite,
            identifier,
            session_id,
            tag,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Shared derivations

/// PwA and PwB of one verifier: two hash-to-curve evaluations, the costliest step of an answer
/// after its two scalar multiplications. A key server may keep them from one recovery of a
/// record to the next ([`answer_using`]). They test passwords as VP does: zeroized on drop,
/// never printed.
#[derive(Clone)]
pub struct PasswordElements {
    a: ProjectivePoint,
    b: ProjectivePoint,
}

impl PasswordElements {
    /// Derives PwA and PwB from VP.
    pub fn of(verifier: &Verifier) -> Result<Self> {
        let (a, b) = password_elements(verifier)?;
        Ok(Self { a, b })
    }
}

/// Whether both points are the same (what a cache's tests compare).
impl PartialEq for PasswordElements {
    fn eq(&self, other: &Self) -> bool {
        self.a == other.a && self.b == other.b
    }
}

impl Drop for PasswordElements {
    fn drop(&mut self) {
        self.a.zeroize();
        self.b.zeroize();
    }
}

impl std::fmt::Debug for PasswordElements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordElements(..)")
    }
}

/// PwA and PwB from VP.
pub(crate) fn password_elements(verifier: &Verifier) -> Result<(ProjectivePoint, ProjectivePoint)> {
    let h = |dst: &[u8]| {
        p256::hash2curve::hash_from_bytes::<NistP256, p256::hash2curve::ExpandMsgXmd<Sha256>>(
            &[verifier.expose()],
            &[dst],
        )
        .map_err(|_| Error::Kdf)
    };
    Ok((h(DST_A)?, h(DST_B)?))
}

/// Decodes a compressed point; refuses any prefix but `02`/`03` (SEC1's hybrid and other
/// encodings would give one point several encodings, hence several transcripts), anything
/// off the curve and the identity.
fn decode_point(bytes: &[u8; POINT_LEN]) -> Result<ProjectivePoint> {
    if !matches!(bytes[0], 0x02 | 0x03) {
        return Err(Error::InvalidPoint);
    }
    let repr = p256::CompressedPoint::from(*bytes);
    let point: Option<AffinePoint> = AffinePoint::from_bytes(&repr).into();
    match point {
        Some(p) if !bool::from(p.is_identity()) => Ok(p.into()),
        _ => Err(Error::InvalidPoint),
    }
}

fn encode_point(p: &ProjectivePoint) -> [u8; POINT_LEN] {
    let mut out = [0u8; POINT_LEN];
    out.copy_from_slice(&p.to_affine().to_bytes());
    out
}

/// TH = SHA-256("stb-eke/v1/transcript" || suite || len(N) || N || X* || Y*).
pub(crate) fn transcript_hash(
    suite: Suite,
    identifier: &Identifier,
    x_star: &[u8; POINT_LEN],
    y_star: &[u8; POINT_LEN],
) -> [u8; 32] {
    let n = identifier.as_bytes();
    Sha256::new()
        .chain_update(b"stb-eke/v1/transcript")
        .chain_update([suite.id(), n.len() as u8])
        .chain_update(n)
        .chain_update(x_star)
        .chain_update(y_star)
        .finalize()
        .into()
}

pub(crate) struct SessionKeys {
    pub(crate) response: SealingKey,
    pub(crate) confirm: SecretArray<32>,
}

/// keys = HKDF-SHA256(salt = TH, ikm = x(Z), info = "stb-eke/v1/session-keys"), 96 bytes:
/// response encryption key, response MAC key, confirmation key.
pub(crate) fn session_keys(zx: &SecretArray<32>, th: &[u8; 32]) -> Result<SessionKeys> {
    let mut okm = SecretArray::new([0u8; 96]);
    expand(
        Some(th),
        zx.expose(),
        &[b"stb-eke/v1/session-keys"],
        okm.expose_mut(),
    );
    let (enc_mac, confirm) = okm.expose().split_at(64);
    Ok(SessionKeys {
        response: SealingKey::from_parts(enc_mac),
        confirm: SecretArray::from_slice(confirm).ok_or(Error::Kdf)?,
    })
}

fn confirm_tag(key: &SecretArray<32>, th: &[u8; 32]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).unwrap_or_else(|_| unreachable!());
    mac.update(CONFIRM_LABEL);
    mac.update(th);
    mac.finalize().into_bytes().into()
}

// ---------------------------------------------------------------------------------------------
// Client (the box)

/// A recovery in progress on the box; consumed by [`ClientRecovery::finish`].
#[derive(Debug)]
pub struct ClientRecovery {
    keys: PasswordKeys,
    a: Scalar,
    x_star: [u8; POINT_LEN],
    pw_b: ProjectivePoint,
}

impl ClientRecovery {
    /// Starts a recovery with keys from [`PasswordKeys::derive`]; returns the state to keep
    /// and the request to send.
    pub fn start(keys: PasswordKeys, rng: &mut impl CryptoRng) -> Result<(Self, RecoverRequest)> {
        Self::start_with_scalar(keys, NonZeroScalar::generate_from_rng(rng))
    }

    pub(crate) fn start_with_scalar(
        keys: PasswordKeys,
        a: NonZeroScalar,
    ) -> Result<(Self, RecoverRequest)> {
        let (pw_a, pw_b) = password_elements(keys.verifier())?;
        let a = Scalar::new(&a)?;
        let x_star = encode_point(&(a.mul_generator()? + pw_a));
        let request = RecoverRequest {
            suite: keys.suite(),
            identifier: keys.identifier().clone(),
            x_star,
        };
        Ok((
            Self {
                keys,
                a,
                x_star,
                pw_b,
            },
            request,
        ))
    }

    /// Processes the server's response: recovers D and builds the confirmation to send.
    ///
    /// A wrong identifier or password, a fake record, or any tampering all give
    /// [`Error::AuthenticationFailed`].
    pub fn finish(self, response: &RecoverResponse) -> Result<(PersonalData, Confirm)> {
        self.finish_recovery(response).map(|r| (r.data, r.confirm))
    }

    /// [`ClientRecovery::finish`], also giving back the record as stored and the password's
    /// keys: what a box needs to replace the record (to add KL, section 6) without deriving
    /// KP again.
    pub fn finish_recovery(self, response: &RecoverResponse) -> Result<Recovered> {
        if response.suite != self.keys.suite() {
            return Err(DecodeError::UnsupportedSuite(response.suite.id()).into());
        }
        let y = (decode_point(&response.y_star)? - self.pw_b).to_affine();
        if bool::from(y.is_identity()) {
            return Err(Error::InvalidPoint);
        }
        let zx = self.a.mul_x(&y)?;
        let th = transcript_hash(
            self.keys.suite(),
            self.keys.identifier(),
            &self.x_star,
            &response.y_star,
        );
        let session = session_keys(&zx, &th)?;
        let sealed = session
            .response
            .open(RESPONSE_CONTEXT, &th, &response.body)?;
        let sealed = SealedData::from_bytes(sealed.expose())?;
        let data = PersonalData::unseal(&sealed, &self.keys)?;
        let confirm = Confirm {
            suite: self.keys.suite(),
            identifier: self.keys.identifier().clone(),
            session_id: th,
            tag: confirm_tag(&session.confirm, &th),
        };
        Ok(Recovered {
            data,
            confirm,
            sealed,
            keys: self.keys,
        })
    }
}

/// What a successful recovery gives the box.
#[derive(Debug)]
pub struct Recovered {
    /// D, opened.
    pub data: PersonalData,
    /// The key confirmation to send.
    pub confirm: Confirm,
    /// The record as the key server holds it: a replacement names it so that it replaces
    /// only this one.
    pub sealed: SealedData,
    /// KP's derived keys (VP and the sealing key).
    pub keys: PasswordKeys,
}

// ---------------------------------------------------------------------------------------------
// Server (the key server)

/// The key server's secret from which fake records for unknown identifiers are derived.
/// Keep it stable: a fake record must look the same at every request, like a real one.
#[derive(Clone, Debug)]
pub struct ServerSecret(SecretArray<32>);

impl ServerSecret {
    /// Wraps stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretArray::new(bytes))
    }

    /// Generates a new secret.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(SecretArray::new(bytes))
    }

    /// The bytes to store.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// The fake record for an identifier that has none: a VP and sealed data derived with
    /// HKDF from this secret and N, of the same sizes as a real record.
    pub fn fake_record(&self, suite: Suite, identifier: &Identifier) -> StoredRecord {
        let n = identifier.as_bytes();
        let mut vp = [0u8; 32];
        expand(
            None,
            self.0.expose(),
            &[b"stb-eke/v1/fake-verifier", n],
            &mut vp,
        );
        let mut sealed = vec![0u8; SEALED_LEN];
        expand(
            None,
            self.0.expose(),
            &[b"stb-eke/v1/fake-sealed", n],
            &mut sealed,
        );
        StoredRecord {
            suite,
            verifier: Verifier::from_bytes(vp),
            sealed: SealedData::from_bytes(&sealed).unwrap_or_else(|_| unreachable!()),
        }
    }
}

/// What the key server keeps between a response and its confirmation.
#[derive(Clone, Debug)]
pub struct PendingConfirmation {
    /// Suite of the exchange.
    pub suite: Suite,
    /// N of the exchange.
    pub identifier: Identifier,
    /// TH, the exchange's name; the confirmation carries it.
    pub session_id: [u8; 32],
    /// The tag a genuine box will send.
    pub expected_tag: SecretArray<32>,
}

impl PendingConfirmation {
    /// Whether `confirm` proves the box derived the same session keys (constant time).
    pub fn verify(&self, confirm: &Confirm) -> bool {
        let same_session: bool = self.session_id.ct_eq(&confirm.session_id).into();
        let same_tag: bool = self.expected_tag.expose().ct_eq(&confirm.tag).into();
        same_session
            & same_tag
            & (self.suite == confirm.suite)
            & (self.identifier == confirm.identifier)
    }
}

/// Answers a recovery request.
///
/// `record` is the stored record, or `None` for an unknown identifier; then the fake record
/// from `secret` is used, and the work and the response size are the same either way. The
/// caller must count the request as a failed guess before sending the response, and keep the
/// [`PendingConfirmation`] to check the confirmation.
pub fn answer(
    request: &RecoverRequest,
    record: Option<&StoredRecord>,
    secret: &ServerSecret,
    rng: &mut impl CryptoRng,
) -> Result<(RecoverResponse, PendingConfirmation)> {
    answer_using(request, record, secret, PasswordElements::of, rng)
}

/// [`answer`], taking PwA and PwB from `elements` (called once, with the VP of the record
/// answered from, the fake one included), e.g. from a cache in front of
/// [`PasswordElements::of`].
pub fn answer_using(
    request: &RecoverRequest,
    record: Option<&StoredRecord>,
    secret: &ServerSecret,
    elements: impl FnOnce(&Verifier) -> Result<PasswordElements>,
    rng: &mut impl CryptoRng,
) -> Result<(RecoverResponse, PendingConfirmation)> {
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    answer_with(
        request,
        record,
        secret,
        elements,
        NonZeroScalar::generate_from_rng(rng),
        iv,
    )
}

pub(crate) fn answer_with(
    request: &RecoverRequest,
    record: Option<&StoredRecord>,
    secret: &ServerSecret,
    elements: impl FnOnce(&Verifier) -> Result<PasswordElements>,
    b: NonZeroScalar,
    iv: [u8; 16],
) -> Result<(RecoverResponse, PendingConfirmation)> {
    // Always derive the fake record so that both paths do the same work.
    let fake = secret.fake_record(request.suite, &request.identifier);
    let record = match record {
        Some(r) if r.suite == request.suite => r,
        _ => &fake,
    };
    let elements = elements(&record.verifier)?;
    let (pw_a, pw_b) = (elements.a, elements.b);
    let x_star = decode_point(&request.x_star)?;
    let b = Scalar::new(&b)?;
    let b_g = b.mul_generator()?;
    let mut x = (x_star - pw_a).to_affine();
    // X is the identity only when X* = PwA, which a client can only send by knowing VP's
    // hash: refusing with an error would confirm a password guess without counting it. Go on
    // with an unpredictable point instead; the box then fails like any wrong guess.
    if bool::from(x.is_identity()) {
        x = (b_g + x_star).to_affine();
    }
    let y_star = encode_point(&(b_g + pw_b));
    let zx = b.mul_x(&x)?;
    let th = transcript_hash(request.suite, &request.identifier, &request.x_star, &y_star);
    let session = session_keys(&zx, &th)?;
    let body = session
        .response
        .seal(RESPONSE_CONTEXT, &th, iv, record.sealed.as_bytes());
    let pending = PendingConfirmation {
        suite: request.suite,
        identifier: request.identifier.clone(),
        session_id: th,
        expected_tag: SecretArray::new(confirm_tag(&session.confirm, &th)),
    };
    Ok((
        RecoverResponse {
            suite: request.suite,
            y_star,
            body,
        },
        pending,
    ))
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn decode(bytes: &[u8; POINT_LEN]) -> ProjectivePoint {
        decode_point(bytes).expect("valid point")
    }
}
