#![allow(missing_docs)]
//! Criterion benchmarks of the protocol crate. `scripts/bench.sh` runs them next to
//! `openssl speed` and writes the figures used in BENCHMARKS.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stb_protocol::eke;
use stb_protocol::*;
use std::hint::black_box;

fn data() -> PersonalData {
    PersonalData {
        account: "Alice".into(),
        certificate_der: vec![0x30; 480],
        private_key_pkcs8: SecretVec::new(vec![0x02; 138]),
        ks: SecretArray::new([9; 32]),
        content_server_url: "https://content.example:8443".into(),
        operator_ca_der: vec![0x31; 420],
        keyserver_url: "https://keys.example:8444".into(),
        locker_key: None,
    }
}

fn eke_benches(c: &mut Criterion) {
    let id = Identifier::parse("alice").expect("id");
    let keys = PasswordKeys::from_kp(Suite::V1, &id, &SecretArray::new([4; 32]));
    let stored = RegisterRequest::new(&keys, &data(), [0; 16])
        .expect("reg")
        .record;
    let secret = ServerSecret::from_bytes([1; 32]);
    let mut rng = os_rng();
    let (_, request) = ClientRecovery::start(keys.clone(), &mut rng).expect("start");
    let mut c = c.benchmark_group("eke");

    c.bench_function("client_start", |b| {
        b.iter(|| ClientRecovery::start(keys.clone(), &mut os_rng()).expect("start"))
    });
    c.bench_function("server_answer", |b| {
        b.iter(|| {
            eke::answer(black_box(&request), Some(&stored), &secret, &mut rng).expect("answer")
        })
    });
    c.bench_function("server_answer_unknown_identifier", |b| {
        b.iter(|| eke::answer(black_box(&request), None, &secret, &mut rng).expect("answer"))
    });
    c.bench_function("client_finish", |b| {
        b.iter_batched(
            || {
                let mut rng = os_rng();
                let (client, request) =
                    ClientRecovery::start(keys.clone(), &mut rng).expect("start");
                let (response, _) =
                    eke::answer(&request, Some(&stored), &secret, &mut rng).expect("answer");
                (client, response)
            },
            |(client, response)| client.finish(&response).expect("finish"),
            criterion::BatchSize::SmallInput,
        )
    });
    c.finish();
}

fn kdf_benches(c: &mut Criterion) {
    let id = Identifier::parse("alice").expect("id");
    let password = Password::from("correct-horse#battery");
    let mut group = c.benchmark_group("kdf");
    group.sample_size(10);
    group.bench_function("argon2id_64MiB_t3_p1", |b| {
        b.iter(|| suite::derive_kp(Suite::V1, &id, black_box(&password)).expect("kdf"))
    });
    group.finish();
}

fn segment_benches(c: &mut Criterion) {
    const LEN: usize = 1 << 20;
    let key = ChannelKey {
        key_id: KeyId([1; 16]),
        key: SecretArray::new([2; 16]),
    };
    let cipher = SegmentCipher::new(&key).expect("cipher");
    let iv = [3u8; 16];
    let mut buf = vec![0u8; LEN];
    let mut group = c.benchmark_group("segment_aes128ctr_1MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.bench_function("aws-lc-rs (used)", |b| {
        b.iter(|| {
            cipher
                .apply_keystream_at(&iv, 0, black_box(&mut buf))
                .expect("ctr")
        })
    });
    group.bench_function("rustcrypto aes+ctr (reference)", |b| {
        use ctr::cipher::{KeyIvInit, StreamCipher};
        b.iter(|| {
            let mut c = ctr::Ctr128BE::<aes::Aes128>::new(&[2u8; 16].into(), &iv.into());
            c.apply_keystream(black_box(&mut buf));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = eke_benches, kdf_benches, segment_benches
}
criterion_main!(benches);
