//! A local server that speaks the part of API v3 the provider uses, keeps the
//! records it is given, and refuses what the documentation does not allow:
//! anything but `POST` (405), bodies that are not a JSON object (400),
//! missing or wrong keys (400 "Invalid API key."), a domain outside the
//! account (400 "Invalid domain."), a domain without API access (400 "Domain
//! is not opted in to API access."), unknown routes (404), and create bodies
//! with unknown fields, a type outside the documented list, no content, or a
//! TTL under 600 (400). Like the real API it stores `name` as a subdomain and
//! answers with full names.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Map, Value};

use super::super::build;
use super::{API_KEY, SECRET};
use crate::dns::provider::DnsProvider;
use crate::dns::providers::test_support::{fields, sorted, Fake};

const TYPES: &[&str] = &[
    "A", "MX", "CNAME", "ALIAS", "TXT", "NS", "AAAA", "SRV", "TLSA", "CAA", "HTTPS", "SVCB",
];

#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) id: u64,
    pub(super) domain: String,
    /// Full name, as Porkbun answers it.
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) content: String,
    pub(super) ttl: u64,
}

#[derive(Default)]
pub(super) struct State {
    /// (domain, API access enabled)
    pub(super) domains: Vec<(String, bool)>,
    pub(super) records: Vec<Record>,
    pub(super) next_id: u64,
}

/// The running contract server.
pub(super) type Server = Fake<State>;

impl Server {
    pub(super) async fn start(domains: &[(impl AsRef<str>, bool)]) -> Self {
        let state = State {
            domains: domains
                .iter()
                .map(|(d, on)| (d.as_ref().to_owned(), *on))
                .collect(),
            next_id: 106_926_650,
            ..State::default()
        };
        Fake::serve_json(state, "application/json", |state, req| {
            handle(state, &req.method, &req.path, &req.body)
        })
        .await
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/api/json/v3", self.url())
    }

    pub(super) fn provider(&self, secret: &str) -> Box<dyn DnsProvider> {
        build(&fields(
            &[("api_key", API_KEY), ("secret_api_key", secret)],
            &[("base_url", &self.base_url())],
        ))
        .unwrap()
    }

    pub(super) fn records(&self) -> Vec<Record> {
        self.state.lock().unwrap().records.clone()
    }

    /// (name, content) of every record, in order.
    pub(super) fn stored(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .map(|r| (r.name, r.content))
            .collect()
    }

    pub(super) fn txt_at(&self, name: &str) -> Vec<String> {
        let records = self.records().into_iter();
        sorted(
            records
                .filter(|r| r.kind == "TXT" && r.name == name)
                .map(|r| r.content),
        )
    }
}

fn error(message: &str) -> (u16, Value) {
    (400, json!({ "status": "ERROR", "message": message }))
}

fn record_json(r: &Record) -> Value {
    json!({
        "id": r.id.to_string(), "name": r.name, "type": r.kind, "content": r.content,
        "ttl": r.ttl.to_string(), "prio": "0", "notes": ""
    })
}

/// Numbers may come as JSON numbers or strings.
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn handle(state: &Mutex<State>, method: &Method, path: &str, body: &[u8]) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some(["api", "json", "v3", route @ ..]) = Some(segments.as_slice()) else {
        return (404, json!({ "status": "ERROR", "message": "Not found." }));
    };
    let known = matches!(
        route,
        ["ping"]
            | ["domain", "listAll"]
            | ["dns", "create", _]
            | ["dns", "delete", _, _]
            | ["dns", "retrieveByNameType", _, _]
            | ["dns", "retrieveByNameType", _, _, _]
    );
    if !known {
        return (404, json!({ "status": "ERROR", "message": "Not found." }));
    }
    if method != Method::POST {
        return (
            405,
            json!({ "status": "ERROR", "message": "Method not allowed. Use POST." }),
        );
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return error("Unable to parse JSON body.");
    };
    match (fields.remove("apikey"), fields.remove("secretapikey")) {
        (Some(Value::String(key)), Some(Value::String(secret)))
            if key == API_KEY && secret == SECRET => {}
        (Some(_), Some(_)) => return error("Invalid API key. (002)"),
        _ => return error("Invalid API key. (001)"),
    }
    let mut s = state.lock().unwrap();
    let domain_ok = |s: &State, domain: &str| -> Result<(), (u16, Value)> {
        match s.domains.iter().find(|(d, _)| d == domain) {
            None => Err(error("Invalid domain.")),
            Some((_, false)) => Err(error("Domain is not opted in to API access.")),
            Some((_, true)) => Ok(()),
        }
    };
    let no_fields = |fields: &Map<String, Value>| -> Result<(), (u16, Value)> {
        match fields.keys().next() {
            Some(key) => Err(error(&format!("Unexpected field: {key}."))),
            None => Ok(()),
        }
    };
    match route {
        ["ping"] => {
            if let Err(e) = no_fields(&fields) {
                return e;
            }
            (200, json!({ "status": "SUCCESS", "yourIp": "127.0.0.1" }))
        }
        ["domain", "listAll"] => {
            let start = fields.remove("start").map_or(Some(0), |v| number(&v));
            fields.remove("includeLabels");
            if let Err(e) = no_fields(&fields) {
                return e;
            }
            let Some(start) = start else {
                return error("Invalid start.");
            };
            let domains: Vec<Value> = s
                .domains
                .iter()
                .skip(usize::try_from(start).unwrap())
                .take(1000)
                .map(|(d, _)| json!({ "domain": d, "status": "ACTIVE", "tld": d.rsplit('.').next(), "autoRenew": 0 }))
                .collect();
            (200, json!({ "status": "SUCCESS", "domains": domains }))
        }
        ["dns", "retrieveByNameType", domain, kind, sub @ ..] => {
            if let Err(e) = domain_ok(&s, domain).and_then(|()| no_fields(&fields)) {
                return e;
            }
            let name = match sub {
                [] => (*domain).to_owned(),
                [sub] => format!("{sub}.{domain}"),
                _ => unreachable!(),
            };
            let records: Vec<Value> = s
                .records
                .iter()
                .filter(|r| r.domain == *domain && r.kind == *kind && r.name == name)
                .map(record_json)
                .collect();
            (200, json!({ "status": "SUCCESS", "records": records }))
        }
        ["dns", "create", domain] => {
            if let Err(e) = domain_ok(&s, domain) {
                return e;
            }
            const FIELDS: &[&str] = &["name", "type", "content", "ttl", "prio", "notes"];
            if let Some(key) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return error(&format!("Unexpected field: {key}."));
            }
            let name = match fields.get("name") {
                None => "",
                Some(Value::String(name)) => name.as_str(),
                Some(_) => return error("Invalid name."),
            };
            let Some(kind) = fields
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| TYPES.contains(t))
            else {
                return error("Invalid type.");
            };
            let Some(content) = fields
                .get("content")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
            else {
                return error("Invalid content.");
            };
            let ttl = match fields.get("ttl") {
                None => 600,
                Some(ttl) => match number(ttl) {
                    Some(t) if t >= 600 => t,
                    _ => return error("Invalid TTL: the minimum is 600 seconds."),
                },
            };
            if name.ends_with('.') {
                return error("Invalid name.");
            }
            s.next_id += 1;
            let id = s.next_id;
            s.records.push(Record {
                id,
                domain: (*domain).to_owned(),
                name: if name.is_empty() {
                    (*domain).to_owned()
                } else {
                    format!("{name}.{domain}")
                },
                kind: kind.to_owned(),
                content: content.to_owned(),
                ttl,
            });
            (200, json!({ "status": "SUCCESS", "id": id }))
        }
        ["dns", "delete", domain, id] => {
            if let Err(e) = domain_ok(&s, domain).and_then(|()| no_fields(&fields)) {
                return e;
            }
            let before = s.records.len();
            s.records
                .retain(|r| !(r.domain == *domain && r.id.to_string() == *id));
            if s.records.len() == before {
                return error("Invalid record ID.");
            }
            (200, json!({ "status": "SUCCESS" }))
        }
        _ => unreachable!(),
    }
}
