use super::*;
use crate::fallback_cert::{generate, self_signed};

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

#[test]
fn exact_beats_wildcard_and_unknown_gets_fallback() {
    let p = provider();
    let exact = self_signed("api", &["api.example.com"], &p).unwrap();
    let wild = self_signed("wild", &["*.example.com"], &p).unwrap();
    let fallback = generate(&p).unwrap();
    let store = CertStore::build([&exact, &wild], Arc::clone(&fallback.key));
    assert!(Arc::ptr_eq(
        store.resolve(Some("api.example.com")),
        &exact.key
    ));
    assert!(Arc::ptr_eq(
        store.resolve(Some("web.example.com")),
        &wild.key
    ));
    assert!(
        Arc::ptr_eq(store.resolve(Some("a.b.example.com")), &fallback.key),
        "a wildcard covers one label only"
    );
    assert!(Arc::ptr_eq(
        store.resolve(Some("example.com")),
        &fallback.key
    ));
    assert!(Arc::ptr_eq(store.resolve(None), &fallback.key));
}

#[test]
fn multi_san_certificate_is_indexed_under_every_name() {
    let p = provider();
    let multi = self_signed("m", &["a.test", "b.test", "*.c.test"], &p).unwrap();
    let store = CertStore::build([&multi], generate(&p).unwrap().key);
    for name in ["a.test", "b.test", "x.c.test"] {
        assert!(Arc::ptr_eq(store.resolve(Some(name)), &multi.key), "{name}");
    }
    assert_eq!(store.len(), 3);
}

#[test]
fn later_expiry_wins_for_a_shared_name() {
    let p = provider();
    let mut older = self_signed("old", &["a.test"], &p).unwrap();
    older.not_after -= 1000;
    let newer = self_signed("new", &["a.test"], &p).unwrap();
    for order in [[&older, &newer], [&newer, &older]] {
        let store = CertStore::build(order, generate(&p).unwrap().key);
        assert!(Arc::ptr_eq(store.resolve(Some("a.test")), &newer.key));
    }
}

#[test]
fn pem_errors_name_the_source_and_never_show_key_material() {
    let p = provider();
    let secret = "-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----\n";
    let a = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b.test".to_owned()]).unwrap();
    let cert_pem = a.cert.pem();
    let err = LoadedCertificate::from_pem("site.pem", cert_pem.as_bytes(), secret.as_bytes(), &p)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("site.pem") && !err.contains("U0VDUkVU"),
        "{err}"
    );
    let other_key = b.key_pair.serialize_pem();
    let err =
        LoadedCertificate::from_pem("site.pem", cert_pem.as_bytes(), other_key.as_bytes(), &p)
            .unwrap_err()
            .to_string();
    assert!(err.contains("does not belong"), "{err}");
    let ok = LoadedCertificate::from_pem(
        "site.pem",
        cert_pem.as_bytes(),
        a.key_pair.serialize_pem().as_bytes(),
        &p,
    )
    .unwrap();
    assert_eq!(ok.names, vec!["a.test"]);
}
