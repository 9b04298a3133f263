//! The EKE's scalar multiplications on aws-lc's P-256.
//!
//! `p256` (portable Rust) keeps what aws-lc-rs does not expose: hash-to-curve, point addition
//! and the SEC1 encodings. The two multiplications each side does (`s·G` and `x(s·P)`) run on
//! aws-lc, the constant-time assembly that already does TLS's key exchange in this stack:
//! they were most of the key server's CPU per recovery with `p256`, which is about ten times
//! slower at them (BENCHMARKS.md). The results are the same points, so the protocol and its
//! vectors do not change.

use crate::error::{Error, Result};
use crate::secret::SecretArray;
use aws_lc_rs::agreement::{self, ECDH_P256, PrivateKey, UnparsedPublicKey};
use p256::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p256::{AffinePoint, NonZeroScalar, ProjectivePoint, Sec1Point};
use zeroize::Zeroizing;

/// A secret scalar (the EKE's `a` or `b`) held by aws-lc, which clears it when dropped.
pub(crate) struct Scalar(PrivateKey);

impl Scalar {
    pub(crate) fn new(s: &NonZeroScalar) -> Result<Self> {
        let bytes = Zeroizing::new(s.to_bytes());
        PrivateKey::from_private_key(&ECDH_P256, &bytes)
            .map(Self)
            .map_err(|_| Error::Curve)
    }

    /// `s·G`.
    pub(crate) fn mul_generator(&self) -> Result<ProjectivePoint> {
        let public = self.0.compute_public_key().map_err(|_| Error::Curve)?;
        let encoded = Sec1Point::from_bytes(public.as_ref()).map_err(|_| Error::Curve)?;
        Option::<AffinePoint>::from(AffinePoint::from_sec1_point(&encoded))
            .map(ProjectivePoint::from)
            .ok_or(Error::Curve)
    }

    /// `x(s·P)`, big-endian. `p` must not be the identity (callers reject it first); aws-lc
    /// checks that it is on the curve.
    pub(crate) fn mul_x(&self, p: &AffinePoint) -> Result<SecretArray<32>> {
        let encoded = p.to_sec1_point(false);
        agreement::agree(
            &self.0,
            UnparsedPublicKey::new(&ECDH_P256, encoded.as_bytes()),
            Error::Curve,
            |x| SecretArray::from_slice(x).ok_or(Error::Curve),
        )
    }
}

impl std::fmt::Debug for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scalar(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::Generate;
    use p256::elliptic_curve::group::Group;
    use p256::elliptic_curve::point::AffineCoordinates;

    /// aws-lc and p256 give the same points: the protocol's results do not depend on which
    /// library multiplies.
    #[test]
    fn same_results_as_p256() {
        let mut rng = crate::os_rng();
        for _ in 0..32 {
            let s = NonZeroScalar::generate_from_rng(&mut rng);
            let t = NonZeroScalar::generate_from_rng(&mut rng);
            let scalar = Scalar::new(&s).expect("scalar");
            let sg = scalar.mul_generator().expect("s·G");
            assert_eq!(sg, ProjectivePoint::mul_by_generator(&*s));
            let p = (ProjectivePoint::mul_by_generator(&*t)).to_affine();
            let x = scalar.mul_x(&p).expect("x(s·P)");
            let expected = (ProjectivePoint::from(p) * *s).to_affine().x();
            assert_eq!(x.expose()[..], expected[..]);
        }
    }
}
