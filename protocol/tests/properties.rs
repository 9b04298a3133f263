//! Property tests of the recovery protocol and the decoders, through the public API only.
//!
//! Password keys are built with `PasswordKeys::from_kp` from random KPs: the Argon2id step is
//! covered by the vector tests, and skipping it lets each property run hundreds of cases.

use p256::elliptic_curve::group::GroupEncoding;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use stb_protocol::eke::{self, RESPONSE_BODY_LEN};
use stb_protocol::*;

fn identifier() -> Identifier {
    Identifier::parse("alice.example").expect("identifier")
}

fn keys(kp: [u8; 32]) -> PasswordKeys {
    PasswordKeys::from_kp(Suite::V1, &identifier(), &SecretArray::new(kp))
}

fn data() -> PersonalData {
    PersonalData {
        account: "Alice".into(),
        certificate_der: vec![0x30; 420],
        private_key_pkcs8: SecretVec::new(vec![0x02; 138]),
        ks: SecretArray::new([9; 32]),
        content_server_url: "https://content.example:8443".into(),
        operator_ca_der: vec![0x31; 380],
        keyserver_url: "https://keys.example:8444".into(),
        locker_key: None,
    }
}

fn record(kp: [u8; 32]) -> StoredRecord {
    RegisterRequest::new(&keys(kp), &data(), [1; 16])
        .expect("register")
        .record
}

fn secret() -> ServerSecret {
    ServerSecret::from_bytes([0x77; 32])
}

/// One full exchange: request, answer, and the client's result.
fn exchange(
    client_kp: [u8; 32],
    stored: Option<&StoredRecord>,
    seed: u64,
) -> (Result<(PersonalData, Confirm)>, PendingConfirmation, usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (client, request) = ClientRecovery::start(keys(client_kp), &mut rng).expect("start");
    let (response, pending) = eke::answer(&request, stored, &secret(), &mut rng).expect("answer");
    let size = response.encode().len();
    (client.finish(&response), pending, size)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn right_password_recovers_and_confirms(kp in any::<[u8; 32]>(), seed in any::<u64>()) {
        let stored = record(kp);
        let (result, pending, _) = exchange(kp, Some(&stored), seed);
        let (recovered, confirm) = result.expect("recovery");
        prop_assert_eq!(recovered, data());
        prop_assert!(pending.verify(&confirm));
        // The confirmation survives its wire form.
        prop_assert!(pending.verify(&Confirm::decode(&confirm.encode()).expect("decode")));
    }

    #[test]
    fn wrong_password_fails_with_typed_error(
        kp in any::<[u8; 32]>(), wrong in any::<[u8; 32]>(), seed in any::<u64>()
    ) {
        prop_assume!(kp != wrong);
        let stored = record(kp);
        let (result, _, _) = exchange(wrong, Some(&stored), seed);
        prop_assert_eq!(result.map(|_| ()), Err(Error::AuthenticationFailed));
    }

    #[test]
    fn fake_and_real_responses_look_alike(kp in any::<[u8; 32]>(), seed in any::<u64>()) {
        let stored = record(kp);
        let (_, _, real_size) = exchange(kp, Some(&stored), seed);
        let (fake_result, _, fake_size) = exchange(kp, None, seed);
        prop_assert_eq!(real_size, fake_size);
        prop_assert_eq!(fake_result.map(|_| ()), Err(Error::AuthenticationFailed));
    }

    #[test]
    fn flipping_any_request_byte_fails(kp in any::<[u8; 32]>(), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
        let stored = record(kp);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (client, request) = ClientRecovery::start(keys(kp), &mut rng).expect("start");
        let mut bytes = request.encode();
        let i = idx.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Either the server refuses it, or the box cannot open what comes back.
        if let Ok(tampered) = RecoverRequest::decode(&bytes) {
            let record = (tampered.identifier == request.identifier).then_some(&stored);
            if let Ok((response, _)) = eke::answer(&tampered, record, &secret(), &mut rng) {
                prop_assert!(client.finish(&response).is_err());
            }
        }
    }

    #[test]
    fn flipping_any_response_byte_fails(kp in any::<[u8; 32]>(), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
        let stored = record(kp);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (client, request) = ClientRecovery::start(keys(kp), &mut rng).expect("start");
        let (response, _) = eke::answer(&request, Some(&stored), &secret(), &mut rng).expect("answer");
        let mut bytes = response.encode();
        let i = idx.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(tampered) = RecoverResponse::decode(&bytes) {
            prop_assert!(client.finish(&tampered).is_err());
        }
    }

    #[test]
    fn flipping_any_confirmation_byte_fails(kp in any::<[u8; 32]>(), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
        let stored = record(kp);
        let (result, pending, _) = exchange(kp, Some(&stored), 3);
        let (_, confirm) = result.expect("recovery");
        let mut bytes = confirm.encode();
        let i = idx.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(tampered) = Confirm::decode(&bytes) {
            prop_assert!(!pending.verify(&tampered));
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..5000)) {
        let _ = RegisterRequest::decode(&bytes);
        let _ = RecoverRequest::decode(&bytes);
        let _ = RecoverResponse::decode(&bytes);
        let _ = Confirm::decode(&bytes);
        let _ = PersonalData::decode(&bytes);
        let _ = License::decode(&bytes);
        let _ = SegmentHeader::decode(&bytes);
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_messages(
        idx in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()
    ) {
        let kp = [5; 32];
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (_, request) = ClientRecovery::start(keys(kp), &mut rng).expect("start");
        let (response, _) = eke::answer(&request, Some(&record(kp)), &secret(), &mut rng).expect("answer");
        for mut m in [request.encode(), response.encode(), RegisterRequest::new(&keys(kp), &data(), [0; 16]).expect("reg").encode()] {
            let i = idx.index(m.len());
            m[i] = byte;
            m.truncate(cut.index(m.len() + 1));
            let _ = RecoverRequest::decode(&m);
            let _ = RecoverResponse::decode(&m);
            let _ = RegisterRequest::decode(&m);
        }
    }
}

#[test]
fn response_replayed_into_another_session_fails() {
    let kp = [8; 32];
    let stored = record(kp);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let (_, first_request) = ClientRecovery::start(keys(kp), &mut rng).expect("start");
    let (old_response, _) =
        eke::answer(&first_request, Some(&stored), &secret(), &mut rng).expect("answer");
    let (second, _) = ClientRecovery::start(keys(kp), &mut rng).expect("start");
    assert_eq!(
        second.finish(&old_response).map(|_| ()),
        Err(Error::AuthenticationFailed)
    );
}

#[test]
fn confirmation_from_another_session_is_refused() {
    let kp = [8; 32];
    let stored = record(kp);
    let (a, _, _) = exchange(kp, Some(&stored), 10);
    let (_, pending_b, _) = exchange(kp, Some(&stored), 11);
    let (_, confirm_a) = a.expect("recovery");
    assert!(!pending_b.verify(&confirm_a));
}

#[test]
fn invalid_and_identity_points_are_refused() {
    let kp = [3; 32];
    let stored = record(kp);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let (client, request) = ClientRecovery::start(keys(kp), &mut rng).expect("start");

    // Not on the curve: about half of all x have no y; take the first such x.
    let mut off_curve = request.clone();
    let mut x = [0u8; 33];
    x[0] = 2;
    for candidate in 0u8..=255 {
        x[32] = candidate;
        let repr = p256::CompressedPoint::from(x);
        if bool::from(p256::AffinePoint::from_bytes(&repr).is_none()) {
            break;
        }
    }
    off_curve.x_star = x;
    assert_eq!(
        eke::answer(&off_curve, Some(&stored), &secret(), &mut rng).map(|_| ()),
        Err(Error::InvalidPoint)
    );

    // The SEC1 identity encoding padded to 33 bytes, and a bad tag byte.
    for bad in [[0u8; 33], {
        let mut b = request.x_star;
        b[0] = 4;
        b
    }] {
        let mut r = request.clone();
        r.x_star = bad;
        assert_eq!(
            eke::answer(&r, Some(&stored), &secret(), &mut rng).map(|_| ()),
            Err(Error::InvalidPoint)
        );
    }

    // X* = PwA makes X the identity: the server must not say so (that would confirm a
    // password guess without counting it); it answers like a wrong guess, same size.
    let pw_a = p256::hash2curve::hash_from_bytes::<
        p256::NistP256,
        p256::hash2curve::ExpandMsgXmd<sha2::Sha256>,
    >(&[keys(kp).verifier().expose()], &[eke::DST_A])
    .expect("h2c");
    let mut r = request.clone();
    r.x_star.copy_from_slice(&pw_a.to_affine().to_bytes());
    let (masked, _) = eke::answer(&r, Some(&stored), &secret(), &mut rng).expect("answered");
    assert_eq!(masked.encode().len(), 4230);
    let (genuine, _) = eke::answer(&request, Some(&stored), &secret(), &mut rng).expect("answer");
    assert_ne!(masked.body, genuine.body);

    // The same checks on the box for Y*.
    let pw_b = p256::hash2curve::hash_from_bytes::<
        p256::NistP256,
        p256::hash2curve::ExpandMsgXmd<sha2::Sha256>,
    >(&[keys(kp).verifier().expose()], &[eke::DST_B])
    .expect("h2c");
    let mut y = [0u8; 33];
    y.copy_from_slice(&pw_b.to_affine().to_bytes());
    let response = RecoverResponse {
        suite: Suite::V1,
        y_star: y,
        body: vec![0; RESPONSE_BODY_LEN],
    };
    assert_eq!(
        client.finish(&response).map(|_| ()),
        Err(Error::InvalidPoint)
    );
}

#[test]
fn fake_records_are_stable_and_distinct() {
    let a = Identifier::parse("nobody").expect("id");
    let b = Identifier::parse("nobody2").expect("id");
    assert_eq!(
        secret().fake_record(Suite::V1, &a),
        secret().fake_record(Suite::V1, &a)
    );
    assert_ne!(
        secret().fake_record(Suite::V1, &a),
        secret().fake_record(Suite::V1, &b)
    );
    let other = ServerSecret::from_bytes([0x78; 32]);
    assert_ne!(
        secret().fake_record(Suite::V1, &a),
        other.fake_record(Suite::V1, &a)
    );
}

#[test]
fn real_argon2_password_round_trip() {
    let id = identifier();
    let keys =
        PasswordKeys::derive(Suite::V1, &id, &Password::from("tV-remote#2026!")).expect("kdf");
    let stored = RegisterRequest::new(&keys, &data(), random_array())
        .expect("reg")
        .record;
    let wrong =
        PasswordKeys::derive(Suite::V1, &id, &Password::from("tV-remote#2026?")).expect("kdf");
    let mut rng = os_rng();
    for (k, ok) in [(keys, true), (wrong, false)] {
        let (client, request) = ClientRecovery::start(k, &mut rng).expect("start");
        let (response, _) =
            eke::answer(&request, Some(&stored), &secret(), &mut rng).expect("answer");
        assert_eq!(client.finish(&response).is_ok(), ok);
    }
}

#[test]
fn message_sizes_match_the_spec() {
    // docs/protocol.md, section 7: fixed sizes for a 5-byte identifier.
    let kp = [1; 32];
    let id = Identifier::parse("alice").expect("id");
    let keys = PasswordKeys::from_kp(Suite::V1, &id, &SecretArray::new(kp));
    let reg = RegisterRequest::new(&keys, &data(), [0; 16]).expect("reg");
    assert_eq!(reg.encode().len(), 2 + 1 + 6 + 32 + 2 + 4144);
    let mut rng = os_rng();
    let (_, request) = ClientRecovery::start(keys, &mut rng).expect("start");
    assert_eq!(request.encode().len(), 2 + 1 + 6 + 33);
    let (response, _) =
        eke::answer(&request, Some(&reg.record), &secret(), &mut rng).expect("answer");
    assert_eq!(response.encode().len(), 4230);
}
