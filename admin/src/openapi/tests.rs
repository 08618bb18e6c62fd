use super::*;

fn document_json() -> serde_json::Value {
    serde_json::from_slice(document()).expect("the document is JSON")
}

#[test]
fn every_documented_operation_is_routed() {
    let doc = document_json();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        // `{id}` and `{name}` stand for any one segment.
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect();
        let allow = crate::server::allowed_methods(&segments)
            .unwrap_or_else(|| panic!("{path} is documented but not routed"));
        for method in item.as_object().expect("path item").keys() {
            assert!(
                allow.contains(&method.to_ascii_uppercase()),
                "{method} {path} is documented but the router allows only {allow}"
            );
        }
    }
}

#[test]
fn every_api_operation_but_the_document_names_the_bearer_scheme() {
    let doc = document_json();
    assert!(doc["components"]["securitySchemes"][BEARER].is_object());
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get(BEARER).is_some()));
            let public = !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json";
            assert_eq!(secured, !public, "{method} {path}");
            if !public {
                for status in ["401", "500"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_permission_enum_lists_every_permission() {
    let doc = document_json();
    let listed: Vec<&str> = doc["components"]["schemas"]["Permission"]["enum"]
        .as_array()
        .expect("Permission enum")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(listed, crate::tokens::ALL_PERMISSIONS);
}

#[test]
fn the_status_enums_match_the_wire_strings() {
    use portcullis_config::model::{CertStatus, ChallengeType, Entrypoint, Mtls};
    let doc = document_json();
    let schemas = &doc["components"]["schemas"];
    let values = |name: &str| -> Vec<String> {
        schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} enum"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let strings = |all: &[&str]| all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        values("CertificateStatus"),
        strings(&CertStatus::ALL.map(CertStatus::as_str))
    );
    assert_eq!(
        values("ChallengeType"),
        strings(&[
            ChallengeType::Http01.as_str(),
            ChallengeType::TlsAlpn01.as_str(),
            ChallengeType::Dns01.as_str()
        ])
    );
    assert_eq!(
        values("Entrypoint"),
        strings(&[Entrypoint::Web.as_str(), Entrypoint::Websecure.as_str()])
    );
    assert_eq!(
        values("Mtls"),
        strings(&[
            Mtls::Off.as_str(),
            Mtls::Optional.as_str(),
            Mtls::Required.as_str()
        ])
    );
}
