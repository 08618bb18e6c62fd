use super::*;

#[test]
fn quotes_and_reads_back() {
    assert_eq!(txt_quote("abc"), "\"abc\"");
    assert_eq!(txt_quote("a\"b\\c"), r#""a\"b\\c""#);
    let long = "x".repeat(300);
    let quoted = txt_quote(&long);
    assert_eq!(
        quoted,
        format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
    );
    for value in ["abc", "a\"b\\c", long.as_str(), "sp ace", "\u{7f}"] {
        assert_eq!(txt_text(&txt_quote(value)), value);
    }
    assert_eq!(txt_text("\"a\" \"b\""), "ab");
    assert_eq!(txt_text("bare"), "bare");
    assert_eq!(txt_text("\"\\065\\x\""), "Ax");
}

#[test]
fn names_are_relative_to_their_zone_or_refused() {
    assert_eq!(
        relative_name("p", "Example.COM.", "example.com", "@").unwrap(),
        "@"
    );
    assert_eq!(
        relative_name("p", "example.com", "_acme-challenge.WWW.example.com.", "").unwrap(),
        "_acme-challenge.www"
    );
    let err = relative_name("p", "example.com", "badexample.com", "@").unwrap_err();
    assert!(
        matches!(&err, DnsError::Config { provider: "p", field, message }
            if field == "zone" && message == "\"badexample.com\" is not inside zone \"example.com\""),
        "{err:?}"
    );
    assert!(in_zone("p", "example.com", "a.example.com").is_ok());
    assert!(in_zone("p", "example.com", "example.com").is_ok());
    assert!(in_zone("p", "example.com", "aexample.com").is_err());
    assert!(same_name("Example.com.", "example.COM"));
    assert_eq!(normalize("WWW.Example.com."), "www.example.com");
}

#[test]
fn values_urls_and_messages() {
    assert_eq!(unquote("\"v\""), "v");
    assert_eq!(unquote("\"v"), "\"v");
    assert_eq!(encode("a b/c~d-e_f.g"), "a%20b%2Fc~d-e_f.g");
    assert_eq!(snippet(b"  \n"), "empty body");
    assert_eq!(snippet("x".repeat(300).as_bytes()).len(), 200);
    assert_eq!(
        scrub("key k1 and k2, k1 again", &["k1", "", "k2"]),
        "key [redacted] and [redacted], [redacted] again"
    );
    assert!(matches!(
        refusal("p", 404, "m".into(), true, Some("z")),
        DnsError::Auth { .. }
    ));
    assert!(matches!(
        refusal("p", 404, "m".into(), false, Some("z")),
        DnsError::ZoneNotFound { ref zone, .. } if zone == "z"
    ));
    assert!(matches!(
        refusal("p", 500, "m".into(), false, None),
        DnsError::Api { status: 500, .. }
    ));
    let header = secret_header("p", "api_token", "Bearer t", "token").unwrap();
    assert!(header.is_sensitive());
    let err = secret_header("p", "api_token", "bad\ntoken", "token").unwrap_err();
    assert!(!err.to_string().contains("bad\ntoken"), "{err}");
}
