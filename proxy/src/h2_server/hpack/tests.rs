//! Tests of the HPACK decoder and encoder, chiefly against the examples of
//! RFC 7541 Appendix C.

use bytes::{Bytes, BytesMut};

use super::huffman::{self, HuffmanError, CODES};
use super::table::{static_name_index, STATIC_TABLE};
use super::{encode_field, encode_status, DecodeError, DecodeErrorOr, Decoder};

/// The octets of a hex dump as RFC 7541 prints it (whitespace ignored).
fn hex(text: &str) -> Bytes {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => panic!("not a hex digit: {}", b as char),
        })
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

/// Decodes `block`, returning the fields as (name, value) strings.
fn decode(decoder: &mut Decoder, block: &Bytes) -> Result<Vec<(String, String)>, DecodeError> {
    let mut fields = Vec::new();
    decoder
        .decode(block, |name, value| {
            fields.push((text(&name), text(&value)));
            Ok::<(), ()>(())
        })
        .map_err(|error| match error {
            DecodeErrorOr::Hpack(error) => error,
            DecodeErrorOr::Field(()) => unreachable!("the callback never fails"),
        })?;
    Ok(fields)
}

/// A decoded string as text (every example is ASCII).
fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `(name, value)` pairs as owned strings, to compare with [`decode`]'s.
fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Checks the dynamic table holds exactly `entries`, newest first, and that
/// its size is `size`.
fn assert_table(decoder: &Decoder, entries: &[(&str, &str)], size: usize) {
    let actual: Vec<(String, String)> = (0..decoder.table.len())
        .map(|i| {
            let (name, value) = decoder.table.get(i).unwrap();
            (text(name), text(value))
        })
        .collect();
    assert_eq!(actual, pairs(entries));
    assert_eq!(decoder.table.size(), size);
}

/// Decodes `block` and checks its fields and the table afterwards.
fn check(
    decoder: &mut Decoder,
    block: &str,
    fields: &[(&str, &str)],
    table: &[(&str, &str)],
    size: usize,
) {
    assert_eq!(decode(decoder, &hex(block)).unwrap(), pairs(fields));
    assert_table(decoder, table, size);
}

// RFC 7541 C.2: single representations.

#[test]
fn c_2_1_literal_with_indexing() {
    let mut decoder = Decoder::new(4096);
    check(
        &mut decoder,
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        &[("custom-key", "custom-header")],
        &[("custom-key", "custom-header")],
        55,
    );
}

#[test]
fn c_2_2_literal_without_indexing() {
    let mut decoder = Decoder::new(4096);
    check(
        &mut decoder,
        "040c 2f73 616d 706c 652f 7061 7468",
        &[(":path", "/sample/path")],
        &[],
        0,
    );
}

#[test]
fn c_2_3_literal_never_indexed() {
    let mut decoder = Decoder::new(4096);
    check(
        &mut decoder,
        "1008 7061 7373 776f 7264 0673 6563 7265 74",
        &[("password", "secret")],
        &[],
        0,
    );
}

#[test]
fn c_2_4_indexed() {
    let mut decoder = Decoder::new(4096);
    check(&mut decoder, "82", &[(":method", "GET")], &[], 0);
}

/// The three requests of C.3 and C.4, which decode to the same fields and
/// tables whether Huffman-coded or not.
fn requests(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(4096);
    check(
        &mut decoder,
        blocks[0],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ],
        &[(":authority", "www.example.com")],
        57,
    );
    check(
        &mut decoder,
        blocks[1],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
            ("cache-control", "no-cache"),
        ],
        &[
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ],
        110,
    );
    check(
        &mut decoder,
        blocks[2],
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ],
        &[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ],
        164,
    );
}

#[test]
fn c_3_requests_without_huffman() {
    requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn c_4_requests_with_huffman() {
    requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// The three responses of C.5 and C.6, decoded with a 256-octet table, so
/// that entries are evicted.
fn responses(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(256);
    let date_21 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let date_22 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let location = "https://www.example.com";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    check(
        &mut decoder,
        blocks[0],
        &[
            (":status", "302"),
            ("cache-control", "private"),
            ("date", date_21),
            ("location", location),
        ],
        &[
            ("location", location),
            ("date", date_21),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    );
    check(
        &mut decoder,
        blocks[1],
        &[
            (":status", "307"),
            ("cache-control", "private"),
            ("date", date_21),
            ("location", location),
        ],
        &[
            (":status", "307"),
            ("location", location),
            ("date", date_21),
            ("cache-control", "private"),
        ],
        222,
    );
    check(
        &mut decoder,
        blocks[2],
        &[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date_22),
            ("location", location),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ],
        &[
            ("set-cookie", cookie),
            ("content-encoding", "gzip"),
            ("date", date_22),
        ],
        215,
    );
}

#[test]
fn c_5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn c_6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

// Huffman coding (§5.2, Appendix B).

/// A test-only Huffman encoder from the same table: codes packed MSB first,
/// the last octet padded with the high bits of EOS (ones).
fn huffman_encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bits: u64 = 0;
    let mut count = 0u32;
    for &byte in input {
        let (code, len) = CODES[usize::from(byte)];
        bits = bits << len | u64::from(code);
        count += u32::from(len);
        while count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    if count > 0 {
        let pad = 8 - count;
        out.push(((bits << pad) | ((1 << pad) - 1)) as u8);
    }
    out
}

/// Decodes with the module's decoder.
fn huffman_decode(encoded: &[u8]) -> Result<Vec<u8>, HuffmanError> {
    let mut out = Vec::new();
    huffman::decode(encoded, &mut out).map(|()| out)
}

#[test]
fn huffman_every_octet_round_trips() {
    for byte in 0..=255u8 {
        let encoded = huffman_encode(&[byte]);
        assert_eq!(huffman_decode(&encoded), Ok(vec![byte]), "octet {byte}");
        // And inside a string, where its code straddles octet boundaries.
        let input = [b'a', byte, b'%', byte, byte];
        assert_eq!(huffman_decode(&huffman_encode(&input)), Ok(input.to_vec()));
    }
    let all: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(huffman_decode(&huffman_encode(&all)), Ok(all));
    assert_eq!(huffman_decode(&[]), Ok(Vec::new()));
}

#[test]
fn huffman_table_is_the_canonical_code_of_its_lengths() {
    // Appendix B is a canonical Huffman code: sorted by (length, symbol),
    // each code is the previous one plus one, shifted to the new length.
    // This catches a mistyped code or length in CODES.
    let mut order: Vec<usize> = (0..CODES.len()).collect();
    order.sort_by_key(|&symbol| (CODES[symbol].1, symbol));
    let mut next: u64 = 0;
    let mut previous_len = CODES[order[0]].1;
    for &symbol in &order {
        let (code, len) = CODES[symbol];
        next <<= len - previous_len;
        previous_len = len;
        assert_eq!(u64::from(code), next, "symbol {symbol}");
        next += 1;
    }
    // Complete: the last code (EOS) is all ones.
    assert_eq!(next, 1 << previous_len);
    assert_eq!(CODES[256], (0x3fff_ffff, 30));
}

#[test]
fn huffman_rfc_example_strings() {
    // From C.4.1 and C.6.1.
    assert_eq!(
        huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(),
        b"www.example.com"
    );
    assert_eq!(huffman_encode(b"no-cache"), hex("a8eb 1064 9cbf").to_vec());
    assert_eq!(huffman_decode(&hex("6402")).unwrap(), b"302");
}

#[test]
fn huffman_rejects_eos_in_string() {
    // EOS is 30 ones: 'a' (00011) then EOS, then padding.
    let mut bits: u64 = 0b00011 << 30 | 0x3fff_ffff;
    bits = bits << 5 | 0b11111; // 40 bits in all
    let encoded: Vec<u8> = (0..5).rev().map(|i| (bits >> (8 * i)) as u8).collect();
    assert_eq!(huffman_decode(&encoded), Err(HuffmanError::Eos));
    // Four octets of ones: EOS after 30 bits.
    assert_eq!(huffman_decode(&[0xff; 4]), Err(HuffmanError::Eos));
}

#[test]
fn huffman_rejects_long_padding() {
    // 'a' (00011) then 11 ones: the padding is longer than 7 bits.
    assert_eq!(
        huffman_decode(&[0x1f, 0xff]),
        Err(HuffmanError::PaddingTooLong)
    );
    // A whole octet of padding alone.
    assert_eq!(huffman_decode(&[0xff]), Err(HuffmanError::PaddingTooLong));
    // 'a' + 3 ones is fine.
    assert_eq!(huffman_decode(&[0x1f]), Ok(b"a".to_vec()));
}

#[test]
fn huffman_rejects_padding_not_ones() {
    // 'a' (00011) then 110: padding with a zero.
    assert_eq!(huffman_decode(&[0x1e]), Err(HuffmanError::PaddingNotOnes));
    // 'a' then 000: could be the start of '0' (00000), never completed.
    assert_eq!(huffman_decode(&[0x18]), Err(HuffmanError::PaddingNotOnes));
}

#[test]
fn huffman_error_surfaces_from_the_decoder() {
    // Literal without indexing, literal name "a" Huffman-coded with a bad
    // padding (0x1e).
    let block = Bytes::from_static(&[0x00, 0x81, 0x1e, 0x00]);
    assert_eq!(
        decode(&mut Decoder::new(4096), &block),
        Err(DecodeError::InvalidHuffman(HuffmanError::PaddingNotOnes))
    );
}

// Errors (RFC 9113 §4.3: all COMPRESSION_ERROR).

#[test]
fn index_zero_is_an_error() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &hex("80")),
        Err(DecodeError::IndexOutOfRange(0))
    );
}

#[test]
fn index_past_the_table_is_an_error() {
    let mut decoder = Decoder::new(4096);
    // 62 with an empty dynamic table.
    assert_eq!(
        decode(&mut decoder, &hex("be")),
        Err(DecodeError::IndexOutOfRange(62))
    );
    // After one insertion, 62 is valid and 63 is not.
    decode(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(
        decode(&mut decoder, &hex("be")).unwrap(),
        pairs(&[("a", "b")])
    );
    assert_eq!(
        decode(&mut decoder, &hex("bf")),
        Err(DecodeError::IndexOutOfRange(63))
    );
    // A literal's indexed name is checked too.
    assert_eq!(
        decode(&mut decoder, &hex("0f31 0162")),
        Err(DecodeError::IndexOutOfRange(64))
    );
    // A large index with continuation octets: 127 + 1000.
    assert_eq!(
        decode(&mut decoder, &hex("ff e8 07")),
        Err(DecodeError::IndexOutOfRange(1127))
    );
}

#[test]
fn truncated_integer_is_an_error() {
    let mut decoder = Decoder::new(4096);
    // An index of 127 + continuation, then the block ends.
    assert_eq!(
        decode(&mut decoder, &hex("ff")),
        Err(DecodeError::Truncated)
    );
    assert_eq!(
        decode(&mut decoder, &hex("ff 80")),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn truncated_string_is_an_error() {
    let mut decoder = Decoder::new(4096);
    // Literal name, then nothing.
    assert_eq!(
        decode(&mut decoder, &hex("00")),
        Err(DecodeError::Truncated)
    );
    // Name "a", then no value.
    assert_eq!(
        decode(&mut decoder, &hex("0001 61")),
        Err(DecodeError::Truncated)
    );
    // Value of length 5 with 2 octets left.
    assert_eq!(
        decode(&mut decoder, &hex("0001 6105 6263")),
        Err(DecodeError::StringTooLong {
            length: 5,
            remaining: 2
        })
    );
}

#[test]
fn integer_overflow_is_an_error() {
    let mut decoder = Decoder::new(4096);
    // Six continuation octets.
    assert_eq!(
        decode(&mut decoder, &hex("ff ff ff ff ff ff 01")),
        Err(DecodeError::IntegerOverflow)
    );
    // Five are accepted (an index of 127 + 2^28 is merely out of range).
    assert_eq!(
        decode(&mut decoder, &hex("ff 80 80 80 80 01")),
        Err(DecodeError::IndexOutOfRange(127 + (1 << 28)))
    );
}

#[test]
fn size_update_above_the_limit_is_an_error() {
    let mut decoder = Decoder::new(4096);
    // 31 + 4066 = 4097: 3f e2 1f.
    assert_eq!(
        decode(&mut decoder, &hex("3fe2 1f")),
        Err(DecodeError::TableSizeAboveLimit {
            requested: 4097,
            limit: 4096
        })
    );
    // 4096 itself is allowed: 3f e1 1f.
    assert_eq!(
        decode(&mut decoder, &hex("3fe1 1f 82")).unwrap(),
        pairs(&[(":method", "GET")])
    );
}

#[test]
fn size_update_after_a_field_is_an_error() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode(&mut decoder, &hex("82 20")),
        Err(DecodeError::TableSizeUpdateNotAtStart)
    );
}

#[test]
fn size_update_evicts() {
    let mut decoder = Decoder::new(4096);
    decode(&mut decoder, &hex("4001 6101 62 4001 6301 64")).unwrap();
    assert_table(&decoder, &[("c", "d"), ("a", "b")], 68);
    // Down to 40 (one entry), then two updates in a row: 0 then 4096.
    decode(&mut decoder, &hex("3f09")).unwrap();
    assert_table(&decoder, &[("c", "d")], 34);
    decode(&mut decoder, &hex("20 3fe1 1f")).unwrap();
    assert_table(&decoder, &[], 0);
    // An entry larger than the table empties it (§4.4).
    decode(&mut decoder, &hex("3f09 4001 6101 62")).unwrap();
    assert_table(&decoder, &[("a", "b")], 34);
    decode(&mut decoder, &hex("4001 6108 3031 3233 3435 3637")).unwrap();
    assert_table(&decoder, &[], 0);
}

#[test]
fn callback_error_stops_decoding() {
    let mut decoder = Decoder::new(4096);
    let mut seen = 0;
    let result = decoder.decode(&hex("8286 84"), |_, _| {
        seen += 1;
        if seen == 2 {
            Err("too many")
        } else {
            Ok(())
        }
    });
    assert_eq!(result, Err(DecodeErrorOr::Field("too many")));
    assert_eq!(seen, 2);
}

#[test]
fn raw_literals_are_slices_of_the_block() {
    let block = hex("0001 6101 62");
    let mut decoder = Decoder::new(4096);
    let range = block.as_ptr_range();
    decoder
        .decode(&block, |name, value| {
            assert!(range.contains(&name.as_ptr()));
            assert!(range.contains(&value.as_ptr()));
            Ok::<(), ()>(())
        })
        .unwrap();
}

// The encoder.

#[test]
fn static_name_index_matches_the_static_table() {
    for (i, &(name, _)) in STATIC_TABLE.iter().enumerate() {
        let first = STATIC_TABLE.iter().position(|&(n, _)| n == name).unwrap() + 1;
        assert_eq!(static_name_index(name), Some(first), "entry {}", i + 1);
    }
    assert_eq!(static_name_index(b"x-custom"), None);
    assert_eq!(static_name_index(b""), None);
}

#[test]
fn encoded_fields_decode_back() {
    let fields: &[(&str, &str)] = &[
        ("content-type", "text/html; charset=utf-8"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("x-custom", "value"),
        ("content-length", "25"),
        ("server", ""),
        ("x-long", &"v".repeat(300)),
    ];
    for status in [200, 404, 302, 599, 100, 204, 500, 999] {
        let mut out = BytesMut::new();
        encode_status(status, &mut out);
        for &(name, value) in fields {
            encode_field(name.as_bytes(), value.as_bytes(), &mut out);
        }
        let mut decoder = Decoder::new(4096);
        let decoded = decode(&mut decoder, &out.freeze()).unwrap();
        let status = status.to_string();
        let mut expected = pairs(&[(":status", &status)]);
        expected.extend(pairs(fields));
        assert_eq!(decoded, expected);
        assert_table(&decoder, &[], 0);
    }
}

#[test]
fn encoded_bytes() {
    let encode = |status: Option<u16>, field: Option<(&[u8], &[u8])>| {
        let mut out = BytesMut::new();
        if let Some(status) = status {
            encode_status(status, &mut out);
        }
        if let Some((name, value)) = field {
            encode_field(name, value, &mut out);
        }
        out.to_vec()
    };
    assert_eq!(encode(Some(200), None), [0x88]);
    assert_eq!(encode(Some(500), None), [0x8e]);
    // Literal without indexing, name index 8 (4-bit prefix), "302".
    assert_eq!(encode(Some(302), None), [0x08, 0x03, b'3', b'0', b'2']);
    // content-length is static index 28 ≥ 15: 0x0f then 28 - 15 = 13.
    assert_eq!(
        encode(None, Some((b"content-length", b"25"))),
        [0x0f, 0x0d, 0x02, b'2', b'5']
    );
    // date is index 33: 0x0f then 18.
    assert_eq!(encode(None, Some((b"date", b""))), [0x0f, 0x12, 0x00]);
    // A name outside the static table is a literal.
    assert_eq!(
        encode(None, Some((b"x-a", b"b"))),
        [0x00, 0x03, b'x', b'-', b'a', 0x01, b'b']
    );
    // A value of 200 octets: length 127 + 73 in the 7-bit prefix.
    let long = [b'v'; 200];
    let out = encode(None, Some((b"age", &long)));
    assert_eq!(out[..4], [0x0f, 0x06, 0x7f, 0x49]);
    assert_eq!(out.len(), 4 + 200);
}
