//! A local server that speaks the Domains and Domain Records part of API v2,
//! keeps the records it is given, and refuses what the documentation does not
//! allow: a missing or unknown bearer token (401, `unauthorized`), unknown
//! routes and domains (404, `not_found`), a wrong method (405), unknown query
//! parameters (400), bodies that are not JSON (400, `bad_request`) and
//! records that break the field rules (422). Like the real API it stores
//! `name` relative to the domain: a full name sent as `name` ends up as
//! `name.domain.domain`.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Value};

use super::super::build;
use super::TOKEN;
use crate::dns::provider::DnsProvider;
use crate::dns::providers::test_support::{fields, sorted, Fake, Req};

#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) id: u64,
    pub(super) domain: String,
    pub(super) kind: String,
    /// Relative to the domain, `@` for the apex.
    pub(super) name: String,
    pub(super) data: String,
    pub(super) ttl: u64,
}

impl Record {
    pub(super) fn full_name(&self) -> String {
        if self.name == "@" {
            self.domain.clone()
        } else {
            format!("{}.{}", self.name, self.domain)
        }
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) domains: Vec<String>,
    pub(super) records: Vec<Record>,
    pub(super) next_id: u64,
}

/// The running contract server.
pub(super) type Server = Fake<State>;

impl Server {
    pub(super) async fn start(domains: &[impl AsRef<str>]) -> Self {
        let state = State {
            domains: domains.iter().map(|d| d.as_ref().to_owned()).collect(),
            next_id: 3_352_895,
            ..State::default()
        };
        Fake::serve_json(state, "application/json; charset=utf-8", handle).await
    }

    pub(super) fn base_url(&self) -> String {
        self.url()
    }

    pub(super) fn provider(&self, token: &str) -> Box<dyn DnsProvider> {
        build(&fields(
            &[("api_token", token)],
            &[("base_url", &self.base_url())],
        ))
        .unwrap()
    }

    pub(super) fn records(&self) -> Vec<Record> {
        self.state.lock().unwrap().records.clone()
    }

    /// (name, data) of every record, in order.
    pub(super) fn stored(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .map(|r| (r.name, r.data))
            .collect()
    }

    pub(super) fn txt_at(&self, full_name: &str) -> Vec<String> {
        let records = self.records().into_iter();
        sorted(
            records
                .filter(|r| r.kind == "TXT" && r.full_name() == full_name)
                .map(|r| r.data),
        )
    }
}

fn failure(id: &str, message: &str) -> Option<Value> {
    Some(json!({ "id": id, "message": message }))
}

fn not_found() -> Option<Value> {
    failure(
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn record_json(r: &Record) -> Value {
    json!({
        "id": r.id, "type": r.kind, "name": r.name, "data": r.data, "priority": null,
        "port": null, "ttl": r.ttl, "weight": null, "flags": null, "tag": null
    })
}

/// Checks the query against the allowed keys; returns (page, per_page).
fn paging(req: &Req, allowed: &[&str]) -> Result<(usize, usize), Option<Value>> {
    let (mut page, mut per_page) = (1, 20);
    for (key, value) in &req.query {
        if !allowed.contains(&key.as_str()) {
            return Err(failure(
                "bad_request",
                &format!("unknown query parameter {key}"),
            ));
        }
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| failure("bad_request", &format!("invalid {key}")))
        };
        match key.as_str() {
            "page" => page = number()?.max(1),
            "per_page" => {
                per_page = number()?;
                if !(1..=200).contains(&per_page) {
                    return Err(failure("bad_request", "per_page must be between 1 and 200"));
                }
            }
            _ => {}
        }
    }
    Ok((page, per_page))
}

fn page_of(items: Vec<Value>, page: usize, per_page: usize) -> (Vec<Value>, usize) {
    let total = items.len();
    (
        items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect(),
        total,
    )
}

fn handle(state: &Mutex<State>, req: &Req) -> (u16, Option<Value>) {
    let auth = req.header("authorization");
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return (401, failure("unauthorized", "Unable to authenticate you"));
    }
    let mut s = state.lock().unwrap();
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["v2", "domains"]) => {
            let (page, per_page) = match paging(req, &["page", "per_page"]) {
                Ok(p) => p,
                Err(e) => return (400, e),
            };
            let domains = s
                .domains
                .iter()
                .map(|d| json!({ "name": d, "ttl": 1800, "zone_file": "" }))
                .collect();
            let (domains, total) = page_of(domains, page, per_page);
            (
                200,
                Some(json!({ "domains": domains, "links": {}, "meta": { "total": total } })),
            )
        }
        (&Method::GET, ["v2", "domains", domain, "records"]) => {
            if !s.domains.iter().any(|d| d == domain) {
                return (404, not_found());
            }
            let (page, per_page) = match paging(req, &["type", "name", "page", "per_page"]) {
                Ok(p) => p,
                Err(e) => return (400, e),
            };
            let kind = req.param("type");
            let name = req.param("name");
            let records = s
                .records
                .iter()
                .filter(|r| r.domain == *domain)
                .filter(|r| kind.is_none_or(|k| k == r.kind))
                .filter(|r| name.is_none_or(|n| n == r.full_name()))
                .map(record_json)
                .collect();
            let (records, total) = page_of(records, page, per_page);
            (
                200,
                Some(json!({ "domain_records": records, "links": {}, "meta": { "total": total } })),
            )
        }
        (&Method::POST, ["v2", "domains", domain, "records"]) => {
            if !s.domains.iter().any(|d| d == domain) {
                return (404, not_found());
            }
            let content_type = req.header("content-type");
            if content_type != Some("application/json") {
                return (
                    415,
                    failure(
                        "unsupported_media_type",
                        "Content-Type must be application/json",
                    ),
                );
            }
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, failure("bad_request", "unexpected end of JSON input"));
            };
            const FIELDS: &[&str] = &[
                "type", "name", "data", "priority", "port", "ttl", "weight", "flags", "tag",
            ];
            if let Some(key) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return (
                    422,
                    failure(
                        "unprocessable_entity",
                        &format!("{key} is not a domain record attribute"),
                    ),
                );
            }
            let (Some(kind), Some(name), Some(data)) = (
                body.get("type").and_then(Value::as_str),
                body.get("name").and_then(Value::as_str),
                body.get("data").and_then(Value::as_str),
            ) else {
                return (
                    422,
                    failure(
                        "unprocessable_entity",
                        "type, name and data are required for a TXT record",
                    ),
                );
            };
            if kind != "TXT" {
                return (
                    422,
                    failure(
                        "unprocessable_entity",
                        "Type is not a supported record type",
                    ),
                );
            }
            if data.is_empty() {
                return (
                    422,
                    failure("unprocessable_entity", "Data needs to be a string"),
                );
            }
            if name.is_empty()
                || name.ends_with('.')
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '*'))
            {
                return (
                    422,
                    failure(
                        "unprocessable_entity",
                        "Name Only valid hostname characters are allowed",
                    ),
                );
            }
            let ttl = match body.get("ttl") {
                None => 1800,
                Some(ttl) => match ttl.as_u64() {
                    Some(t) if t >= 30 => t,
                    _ => {
                        return (
                            422,
                            failure("unprocessable_entity", "TTL must be at least 30 seconds"),
                        )
                    }
                },
            };
            s.next_id += 1;
            let record = Record {
                id: s.next_id,
                domain: (*domain).to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                data: data.to_owned(),
                ttl,
            };
            let answer = json!({ "domain_record": record_json(&record) });
            s.records.push(record);
            (201, Some(answer))
        }
        (&Method::DELETE, ["v2", "domains", domain, "records", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return (404, not_found());
            };
            let before = s.records.len();
            s.records.retain(|r| !(r.domain == *domain && r.id == id));
            if s.records.len() == before {
                return (404, not_found());
            }
            (204, None)
        }
        (_, ["v2", "domains"] | ["v2", "domains", _, "records", ..]) => {
            (405, failure("method_not_allowed", "Method Not Allowed"))
        }
        _ => (404, not_found()),
    }
}
