//! RFC 8945 has no test vectors; these bytes were captured between
//! `kdig -y hmac-sha256:acme-key:…` (libknot's TSIG) and knotd 3.2.6: a
//! signed `test. SOA` query and knotd's signed answer.

use super::*;

const SECRET: &str = "wkkRcVce8wOoDjJS8RBLLUryBLxhhmwb+9ILnoVPnSw=";
const QUERY: &str = "914e01200001000000000001047465737400000600010861636d652d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b028b37012c0020c6332f134a74a80af658e8e00566bec3661abac3b152cbfc14a47c37b2cbd84a914e00000000";
const ANSWER: &str = "914e8500000100010000000104746573740000060001c00c000600010000003c0027036e7331c00c0a686f73746d6173746572c00c0000000100000e100000038400093a800000003c0861636d652d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b028b37012c00200b6b98d505b6d0940ab0a7ff7d4c0ab021e83f710fea433117c86aae3229e77b914e00000000";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key() -> Key {
    Key::new("Acme-Key.", Algorithm::HmacSha256, SECRET).unwrap()
}

#[test]
fn signing_kdigs_query_again_gives_kdigs_mac() {
    let (unsigned, tsig) = split(&hex(QUERY)).unwrap();
    let tsig = tsig.unwrap();
    assert_eq!(tsig.key_name, "acme-key");
    assert_eq!(tsig.algorithm, "hmac-sha256");
    assert_eq!((tsig.fudge, tsig.error), (300, 0));
    // RFC 8945 §4.3.3: MAC over the message without TSIG + the variables.
    let signed = sign(&key(), &unsigned, tsig.time_signed).unwrap();
    assert_eq!(signed.mac, tsig.mac);
    assert_eq!(signed.wire, hex(QUERY), "byte for byte what kdig sent");
}

#[test]
fn knots_signed_answer_verifies_against_the_request_mac() {
    let (_, request) = split(&hex(QUERY)).unwrap();
    let request_mac = request.unwrap().mac;
    let (message, tsig) = split(&hex(ANSWER)).unwrap();
    let tsig = tsig.unwrap();
    assert_eq!(
        u16::from_be_bytes([message[10], message[11]]),
        0,
        "ARCOUNT lowered"
    );
    assert!(verify_answer(&key(), &request_mac, &message, &tsig));

    // RFC 8945 §5.3: a different request MAC, a changed byte or a different
    // secret must not verify.
    let mut other_mac = request_mac.clone();
    other_mac[0] ^= 1;
    assert!(!verify_answer(&key(), &other_mac, &message, &tsig));
    let mut tampered = message.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(!verify_answer(&key(), &request_mac, &tampered, &tsig));
    let wrong = Key::new(
        "acme-key",
        Algorithm::HmacSha256,
        "AAAAcVce8wOoDjJS8RBLLUryBLxhhmwb+9ILnoVPnSw=",
    )
    .unwrap();
    assert!(!verify_answer(&wrong, &request_mac, &message, &tsig));
    let sha512 = Key::new("acme-key", Algorithm::HmacSha512, SECRET).unwrap();
    assert!(!verify_answer(&sha512, &request_mac, &message, &tsig));
}

#[test]
fn hmac_sha512_signs_with_a_64_byte_mac_and_its_name() {
    let key = Key::new("k", Algorithm::HmacSha512, SECRET).unwrap();
    let (unsigned, _) = split(&hex(QUERY)).unwrap();
    let signed = sign(&key, &unsigned, 1_700_000_000).unwrap();
    assert_eq!(signed.mac.len(), 64);
    let (again, tsig) = split(&signed.wire).unwrap();
    let tsig = tsig.unwrap();
    assert_eq!(again, unsigned);
    assert_eq!(
        (tsig.key_name.as_str(), tsig.algorithm.as_str()),
        ("k", "hmac-sha512")
    );
    assert_eq!(tsig.time_signed, 1_700_000_000);
    assert_eq!(tsig.mac, signed.mac);
}

#[test]
fn an_answer_without_tsig_splits_into_itself() {
    let (unsigned, _) = split(&hex(QUERY)).unwrap();
    let (message, tsig) = split(&unsigned).unwrap();
    assert!(tsig.is_none());
    assert_eq!(message, unsigned);
    assert!(split(&[0u8; 5]).is_err());
    let mut truncated = hex(ANSWER);
    truncated.truncate(truncated.len() - 10);
    assert!(split(&truncated).is_err());
}

#[test]
fn names_follow_compression_pointers_and_refuse_loops() {
    // "test." at 12, then a pointer to it.
    let mut buf = vec![0u8; 12];
    buf.extend_from_slice(&[4, b'T', b'e', b's', b't', 0, 3, b'w', b'w', b'w', 0xc0, 12]);
    assert_eq!(read_name(&buf, 12).unwrap(), ("test".to_owned(), 18));
    assert_eq!(read_name(&buf, 18).unwrap(), ("www.test".to_owned(), 24));
    let looped = [0xc0, 0];
    assert!(read_name(&looped, 0).is_err());
}

#[test]
fn keys_and_algorithms_parse_as_keymgr_prints_them() {
    assert_eq!(
        Algorithm::parse("HMAC-SHA256."),
        Some(Algorithm::HmacSha256)
    );
    assert_eq!(Algorithm::parse("hmac-sha512"), Some(Algorithm::HmacSha512));
    assert_eq!(Algorithm::parse("hmac-md5"), None);
    assert!(Key::new("k", Algorithm::HmacSha256, "not base64!").is_err());
    assert!(Key::new("k", Algorithm::HmacSha256, "").is_err());
    let unpadded = SECRET.trim_end_matches('=');
    assert!(Key::new("k", Algorithm::HmacSha256, unpadded).is_ok());
    assert!(Key::new(&"a".repeat(64), Algorithm::HmacSha256, SECRET).is_err());
}
