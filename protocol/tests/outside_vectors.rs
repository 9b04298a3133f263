//! Vectors published by others, checked against the primitives this crate relies on.

use p256::elliptic_curve::group::GroupEncoding;
use stb_protocol::SecretArray;
use stb_protocol::segment::{ChannelKey, KeyId, SegmentCipher};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("hex")
}

/// RFC 9380, appendix J.1.1, suite P256_XMD:SHA-256_SSWU_RO_, through the `p256` crate's
/// hash2curve as the protocol uses it (`hash_from_bytes` with `ExpandMsgXmd<Sha256>`).
#[test]
fn rfc9380_j_1_1_p256_xmd_sha256_sswu_ro() {
    const DST: &[u8] = b"QUUX-V01-CS02-with-P256_XMD:SHA-256_SSWU_RO_";
    let cases: [(&[u8], &str, &str); 3] = [
        (
            b"",
            "2c15230b26dbc6fc9a37051158c95b79656e17a1a920b11394ca91c44247d3e4",
            "8a7a74985cc5c776cdfe4b1f19884970453912e9d31528c060be9ab5c43e8415",
        ),
        (
            b"abc",
            "0bb8b87485551aa43ed54f009230450b492fead5f1cc91658775dac4a3388a0f",
            "5c41b3d0731a27a7b14bc0bf0ccded2d8751f83493404c84a88e71ffd424212e",
        ),
        (
            b"abcdef0123456789",
            "65038ac8f2b1def042a5df0b33b1f4eca6bff7cb0f9c6c1526811864e544ed80",
            "cad44d40a656e7aff4002a8de287abc8ae0482b5ae825822bb870d6df9b56ca3",
        ),
    ];
    for (msg, x, y) in cases {
        let p = p256::hash2curve::hash_from_bytes::<
            p256::NistP256,
            p256::hash2curve::ExpandMsgXmd<sha2::Sha256>,
        >(&[msg], &[DST])
        .expect("hash to curve");
        let compressed = p.to_affine().to_bytes();
        assert_eq!(&compressed[1..], unhex(x).as_slice(), "x for {msg:?}");
        // The y parity in the compressed tag must match the vector's y.
        let y = unhex(y);
        let odd = y[31] & 1 == 1;
        assert_eq!(
            compressed[0],
            if odd { 3 } else { 2 },
            "y parity for {msg:?}"
        );
    }
}

const SP800_38A_PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                               30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
const SP800_38A_COUNTER: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

/// NIST SP 800-38A, F.5.1 CTR-AES128.Encrypt, through the segment cipher (aws-lc-rs), from
/// offset 0 and from every offset inside the first two blocks.
#[test]
fn sp800_38a_f_5_1_ctr_aes128() {
    let key = ChannelKey {
        key_id: KeyId([0; 16]),
        key: SecretArray::from_slice(&unhex("2b7e151628aed2a6abf7158809cf4f3c")).expect("key"),
    };
    let expected = unhex(
        "874d6191b620e3261bef6864990db6ce 9806f66b7970fdff8617187bb9fffdff
         5ae4df3edbd5d35e5b4f09020db03eab 1e031dda2fbe03d1792170a0f3009cee",
    );
    let iv: [u8; 16] = unhex(SP800_38A_COUNTER).try_into().expect("iv");
    let cipher = SegmentCipher::new(&key).expect("cipher");
    let plain = unhex(SP800_38A_PLAIN);
    for offset in 0..32 {
        let mut buf = plain[offset..].to_vec();
        cipher
            .apply_keystream_at(&iv, offset as u64, &mut buf)
            .expect("ctr");
        assert_eq!(buf, expected[offset..], "offset {offset}");
    }
}

/// NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt: the AES-256-CTR of the sealing construction
/// (RustCrypto `ctr::Ctr128BE<aes::Aes256>`).
#[test]
fn sp800_38a_f_5_5_ctr_aes256() {
    use ctr::cipher::{KeyIvInit, StreamCipher};
    let key = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let iv = unhex(SP800_38A_COUNTER);
    let mut buf = unhex(SP800_38A_PLAIN);
    ctr::Ctr128BE::<aes::Aes256>::new_from_slices(&key, &iv)
        .expect("key and iv")
        .apply_keystream(&mut buf);
    let expected = unhex(
        "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5
         2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6",
    );
    assert_eq!(buf, expected);
}
