use std::collections::BTreeMap;

use hickory_proto::op::OpCode;
use hickory_proto::rr::DNSClass;

use super::*;

const SECRET: &str = "wkkRcVce8wOoDjJS8RBLLUryBLxhhmwb+9ILnoVPnSw=";

fn fields(config: &[(&str, &str)], secret: Option<&str>) -> Fields {
    Fields {
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        secrets: secret
            .map(|s| BTreeMap::from([("key_secret".to_owned(), s.to_owned())]))
            .unwrap_or_default(),
    }
}

fn config_field(result: Result<Rfc2136, DnsError>) -> String {
    match result {
        Err(DnsError::Config { field, .. }) => field,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn fields_are_read_with_their_defaults() {
    let provider = Rfc2136::from_fields(&fields(
        &[
            ("server", "ns1.example.com"),
            ("key_name", "Acme-Key."),
            ("zones", " Example.COM., ,other.test"),
        ],
        Some(SECRET),
    ))
    .unwrap();
    assert_eq!(provider.server, "ns1.example.com:53");
    assert_eq!(provider.transport, Transport::Tcp);
    assert_eq!(provider.key.name, "acme-key");
    assert_eq!(provider.key.algorithm, Algorithm::HmacSha256);
    assert_eq!(provider.zones, ["example.com", "other.test"]);
    let debug = format!("{provider:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("wkkR"),
        "{debug}"
    );

    let udp = Rfc2136::from_fields(&fields(
        &[
            ("server", "[::1]:5353"),
            ("key_name", "k"),
            ("algorithm", "HMAC-SHA512"),
            ("transport", "UDP"),
        ],
        Some(SECRET),
    ))
    .unwrap();
    assert_eq!(udp.server, "[::1]:5353");
    assert_eq!(
        (udp.transport, udp.key.algorithm),
        (Transport::Udp, Algorithm::HmacSha512)
    );
}

#[test]
fn bad_fields_name_the_field() {
    let base = [("server", "127.0.0.1:53"), ("key_name", "k")];
    assert_eq!(
        config_field(Rfc2136::from_fields(&fields(&base, None))),
        "key_secret"
    );
    assert_eq!(
        config_field(Rfc2136::from_fields(&fields(&base, Some("%%%")))),
        "key_secret"
    );
    assert_eq!(
        config_field(Rfc2136::from_fields(&fields(&base[1..], Some(SECRET)))),
        "server"
    );
    assert_eq!(
        config_field(Rfc2136::from_fields(&fields(&base[..1], Some(SECRET)))),
        "key_name"
    );
    let long_label = "a".repeat(64);
    assert_eq!(
        config_field(Rfc2136::from_fields(&fields(
            &[("server", "127.0.0.1:53"), ("key_name", &long_label)],
            Some(SECRET)
        ))),
        "key_name"
    );
    for (field, value) in [
        ("algorithm", "hmac-md5"),
        ("transport", "quic"),
        ("server", "host:port"),
        ("server", "::1:53:x"),
    ] {
        let mut config = base.to_vec();
        config.push((field, value));
        assert_eq!(
            config_field(Rfc2136::from_fields(&fields(&config, Some(SECRET)))),
            field,
            "{field} = {value}"
        );
    }
    let spec = SPEC;
    assert_eq!(spec.secrets, ["key_secret"]);
    assert_eq!(spec.required, ["server", "key_name"]);
}

#[test]
fn present_adds_the_txt_with_a_no_cname_prerequisite() {
    let apex = dns_name("example.com").unwrap();
    let name = dns_name("_acme-challenge.www.example.com").unwrap();
    let wire = present_message(&apex, name.clone(), "token-1")
        .to_vec()
        .unwrap();
    let message = Message::from_vec(&wire).unwrap();
    assert_eq!(message.op_code(), OpCode::Update);
    // RFC 2136 §2.3: the zone section holds one SOA question for the zone.
    assert_eq!(message.queries().len(), 1);
    assert_eq!(message.queries()[0].name(), &apex);
    assert_eq!(message.queries()[0].query_type(), RecordType::SOA);
    // §2.4.3: prerequisite section (ANCOUNT) = CNAME, class NONE, TTL 0, no RDATA.
    let prerequisite = &message.answers()[0];
    assert_eq!(
        (
            prerequisite.record_type(),
            prerequisite.dns_class(),
            prerequisite.ttl()
        ),
        (RecordType::CNAME, DNSClass::NONE, 0)
    );
    assert!(prerequisite.data().is_none(), "{prerequisite:?}");
    // §2.5.1: update section (NSCOUNT) = the TXT, class IN, our TTL.
    let update = &message.name_servers()[0];
    assert_eq!(update.name(), &name);
    assert_eq!((update.dns_class(), update.ttl()), (DNSClass::IN, TXT_TTL));
    assert_eq!(update.data().unwrap().to_string(), "token-1");
}

#[test]
fn cleanup_deletes_exactly_one_rr() {
    let apex = dns_name("example.com").unwrap();
    let name = dns_name("_acme-challenge.example.com").unwrap();
    let wire = cleanup_message(&apex, name, "token-1").to_vec().unwrap();
    let message = Message::from_vec(&wire).unwrap();
    assert!(message.answers().is_empty());
    // RFC 2136 §2.5.4: class NONE, TTL 0, the RDATA of the RR to delete.
    let update = &message.name_servers()[0];
    assert_eq!(
        (update.record_type(), update.dns_class(), update.ttl()),
        (RecordType::TXT, DNSClass::NONE, 0)
    );
    assert_eq!(update.data().unwrap().to_string(), "token-1");
}

#[test]
fn rcode_names() {
    assert_eq!(rcode::name(9), "NOTAUTH");
    assert_eq!(rcode::name(16), "BADSIG");
    assert_eq!(rcode::name(23), "RCODE 23");
}
