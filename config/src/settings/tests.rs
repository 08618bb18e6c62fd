use super::*;

fn parse(text: &str) -> Result<Settings, Error> {
    Settings::parse(text, Path::new("portcullis.toml"))
}

#[test]
fn embedded_default_matches_documented_defaults() {
    let s = Settings::embedded();
    assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(s.web_address.to_string(), DEFAULT_WEB_ADDRESS);
    assert_eq!(s.websecure_address.to_string(), DEFAULT_WEBSECURE_ADDRESS);
    assert_eq!(s.admin_address.to_string(), DEFAULT_ADMIN_ADDRESS);
    assert_eq!(
        s.dynamic_dir,
        PathBuf::from(DEFAULT_DATA_DIR).join("dynamic")
    );
    assert_eq!(s.drain_timeout, Duration::from_secs(30));
    assert!(s.workers >= 1, "workers = 0 means one per CPU");
}

#[test]
fn empty_file_is_the_embedded_default_with_a_source() {
    let s = parse("").unwrap();
    assert_eq!(s.source.as_deref(), Some(Path::new("portcullis.toml")));
    assert_eq!(Settings { source: None, ..s }, Settings::embedded());
}

#[test]
fn documented_keys_are_read() {
    let s = parse(
        r#"
        data_dir = "/var/lib/portcullis"
        [entrypoints.web]
        address = "0.0.0.0:80"
        [entrypoints.websecure]
        address = "[::]:443"
        [admin]
        address = "127.0.0.1:9999"
        [providers.file]
        directory = "/etc/portcullis/dynamic"
        "#,
    )
    .unwrap();
    assert_eq!(s.web_address.port(), 80);
    assert_eq!(s.websecure_address.to_string(), "[::]:443");
    assert_eq!(s.admin_address.port(), 9999);
    assert_eq!(s.dynamic_dir, PathBuf::from("/etc/portcullis/dynamic"));
}

#[test]
fn dynamic_dir_follows_data_dir() {
    let s = parse("data_dir = \"/srv/p\"").unwrap();
    assert_eq!(s.dynamic_dir, PathBuf::from("/srv/p/dynamic"));
}

#[test]
fn unknown_key_is_named_with_the_file() {
    let err = parse("[entrypoints.web]\naddress = \"127.0.0.1:1\"\nadress = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("portcullis.toml"), "{err}");
    assert!(err.contains("adress"), "{err}");
}

#[test]
fn bad_address_names_the_key_and_the_fix() {
    let err = parse("[admin]\naddress = \"localhost\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.address"), "{err}");
    assert!(err.contains("127.0.0.1:8443"), "{err}");
}

#[test]
fn bad_values_are_refused() {
    let err = parse("[server]\ndrain_timeout = \"30\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.drain_timeout"), "{err}");
    let err = parse("[log]\nformat = \"xml\"").unwrap_err().to_string();
    assert!(err.contains("log.format"), "{err}");
    let err = parse("[entrypoints.web]\naddress = \"127.0.0.1:9180\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("admin.address"), "{err}");
    let err = parse("[tls]\ndefault_cert_file = \"a.pem\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("default_key_file"), "{err}");
    let err = parse("data_dir = 5").unwrap_err().to_string();
    assert!(err.contains("data_dir"), "{err}");
}

#[test]
fn built_in_issuers_exist_and_custom_ones_are_checked() {
    let s = Settings::embedded();
    assert_eq!(s.acme.default_issuer, "internal-ca");
    assert_eq!(s.acme.issuers["letsencrypt-prod"].weekly_limit, Some(50));
    assert_eq!(s.acme.issuers["letsencrypt-staging"].weekly_limit, None);
    assert_eq!(s.acme.renew_before, Duration::from_secs(30 * 86400));
    assert_eq!(
        s.secret_key_file,
        PathBuf::from(DEFAULT_DATA_DIR).join("secret.key")
    );

    let s = parse(
        "[acme.issuers.corp]\ndirectory = \"https://acme.corp.test/dir\"\neab_kid = \"k\"\neab_hmac_key = \"c2VjcmV0\"\nfallback = [\"internal-ca\"]\n",
    )
    .unwrap();
    let corp = &s.acme.issuers["corp"];
    assert_eq!(corp.fallback, vec!["internal-ca"]);
    assert!(
        !format!("{corp:?}").contains("c2VjcmV0"),
        "the EAB key must not be printed"
    );

    for (text, key) in [
        ("[acme.issuers.x]\n", "acme.issuers.x.directory"),
        (
            "[acme.issuers.x]\ndirectory = \"http://plain\"\n",
            "acme.issuers.x.directory",
        ),
        (
            "[acme.issuers.x]\ndirectory = \"https://a\"\neab_kid = \"k\"\n",
            "acme.issuers.x.eab_kid",
        ),
        (
            "[acme.issuers.x]\ndirectory = \"https://a\"\nfallback = [\"nope\"]\n",
            "acme.issuers.x.fallback",
        ),
        (
            "[acme.issuers.letsencrypt-prod]\ndirectory = \"https://a\"\n",
            "acme.issuers.letsencrypt-prod.directory",
        ),
        ("[acme]\ndefault_issuer = \"nope\"\n", "acme.default_issuer"),
        ("[acme]\nrenew_interval = \"6\"\n", "acme.renew_interval"),
        ("[acme]\nemail = \"not-an-email\"\n", "acme.email"),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
}

#[test]
fn workers_are_bounded_and_named_in_the_error() {
    assert_eq!(parse("[server]\nworkers = 3").unwrap().workers, 3);
    let err = parse("[server]\nworkers = 100000").unwrap_err().to_string();
    assert!(err.contains("server.workers"), "{err}");
    assert!(err.contains("use 0 for one worker per CPU"), "{err}");
}

#[test]
fn the_header_read_timeout_is_a_positive_duration_named_in_errors() {
    assert_eq!(
        parse("").unwrap().header_read_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        parse("[server]\nheader_read_timeout = \"5s\"")
            .unwrap()
            .header_read_timeout,
        Duration::from_secs(5)
    );
    for bad in ["\"0s\"", "\"30\"", "30"] {
        let err = parse(&format!("[server]\nheader_read_timeout = {bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("header_read_timeout"), "{bad}: {err}");
    }
}
