//! A local server that speaks the zones and records part of the DNS Console
//! API, keeps the records it is given, and refuses what the documentation
//! does not allow: a missing token (401 "No API key found in request"), an
//! unknown one (401 "Invalid authentication credentials"), unknown routes
//! (404 "no Route matched with those values"), an unknown zone name (404),
//! unknown query parameters or page sizes (400), bodies that are not JSON
//! (400) and records that break the field rules (422). It pages records 100
//! at a time, so a busy zone takes several calls.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Value};

use super::super::build;
use super::TOKEN;
use crate::dns::provider::DnsProvider;
use crate::dns::providers::test_support::{fields, sorted, Fake, Req};

const TYPES: &[&str] = &[
    "A", "AAAA", "NS", "MX", "CNAME", "RP", "TXT", "SOA", "HINFO", "SRV", "DANE", "TLSA", "DS",
    "CAA",
];

#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) id: String,
    pub(super) zone_id: String,
    pub(super) kind: String,
    /// Relative to the zone, `@` for the apex.
    pub(super) name: String,
    pub(super) value: String,
    pub(super) ttl: Option<u64>,
}

#[derive(Default)]
pub(super) struct State {
    /// (id, name)
    pub(super) zones: Vec<(String, String)>,
    pub(super) records: Vec<Record>,
    pub(super) next_id: u64,
}

/// The running contract server.
pub(super) type Server = Fake<State>;

impl Server {
    pub(super) async fn start(zones: &[impl AsRef<str>]) -> Self {
        let state = State {
            zones: zones
                .iter()
                .enumerate()
                .map(|(i, z)| (format!("HetzZone{i:04}xZZ"), z.as_ref().to_owned()))
                .collect(),
            ..State::default()
        };
        Fake::serve_json(state, "application/json; charset=utf-8", handle).await
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/api/v1", self.url())
    }

    pub(super) fn provider(&self, token: &str) -> Box<dyn DnsProvider> {
        build(&fields(
            &[("api_token", token)],
            &[("base_url", &self.base_url())],
        ))
        .unwrap()
    }

    pub(super) fn zone_id(&self, zone: &str) -> String {
        let s = self.state.lock().unwrap();
        s.zones.iter().find(|(_, n)| n == zone).unwrap().0.clone()
    }

    pub(super) fn txt(&self) -> Vec<Record> {
        self.state
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|r| r.kind == "TXT")
            .cloned()
            .collect()
    }

    /// (name, value) of every TXT record, in order.
    pub(super) fn stored(&self) -> Vec<(String, String)> {
        self.txt().into_iter().map(|r| (r.name, r.value)).collect()
    }

    pub(super) fn txt_at(&self, relative: &str) -> Vec<String> {
        sorted(
            self.txt()
                .into_iter()
                .filter(|r| r.name == relative)
                .map(|r| r.value),
        )
    }
}

fn failure(message: &str, code: u16) -> Option<Value> {
    Some(json!({ "error": { "message": message, "code": code } }))
}

fn record_json(r: &Record) -> Value {
    json!({
        "id": r.id, "zone_id": r.zone_id, "type": r.kind, "name": r.name, "value": r.value,
        "ttl": r.ttl, "created": "2024-01-01 00:00:00.000 +0000 UTC", "modified": "2024-01-01 00:00:00.000 +0000 UTC"
    })
}

/// Checks the query against the allowed keys; returns (page, per_page).
fn paging(
    req: &Req,
    allowed: &[&str],
    default_per_page: usize,
) -> Result<(usize, usize), Option<Value>> {
    let (mut page, mut per_page) = (1, default_per_page);
    for (key, value) in &req.query {
        if !allowed.contains(&key.as_str()) {
            return Err(failure(&format!("unknown query parameter {key}"), 400));
        }
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| failure(&format!("invalid {key}"), 400))
        };
        match key.as_str() {
            "page" => page = number()?.max(1),
            "per_page" => {
                per_page = number()?;
                if !(1..=100).contains(&per_page) {
                    return Err(failure("per_page must be between 1 and 100", 400));
                }
            }
            _ => {}
        }
    }
    Ok((page, per_page))
}

fn paged(key: &str, items: Vec<Value>, page: usize, per_page: usize) -> Value {
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json!({
        key: chunk,
        "meta": { "pagination": { "page": page, "per_page": per_page, "last_page": last, "total_entries": total } }
    })
}

fn handle(state: &Mutex<State>, req: &Req) -> (u16, Option<Value>) {
    match req.header("auth-api-token") {
        None => {
            return (
                401,
                Some(json!({ "message": "No API key found in request" })),
            )
        }
        Some(token) if token != TOKEN => {
            return (
                401,
                Some(json!({ "message": "Invalid authentication credentials" })),
            )
        }
        Some(_) => {}
    }
    let mut s = state.lock().unwrap();
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    match (&req.method, segments.as_slice()) {
        (&Method::GET, ["api", "v1", "zones"]) => {
            let (page, per_page) =
                match paging(req, &["name", "search_name", "page", "per_page"], 100) {
                    Ok(p) => p,
                    Err(e) => return (400, e),
                };
            let name = req.param("name");
            let zones: Vec<Value> = s
                .zones
                .iter()
                .filter(|(_, n)| name.is_none_or(|want| want == n))
                .map(|(id, n)| json!({ "id": id, "name": n, "ttl": 86400, "status": "verified", "paused": false }))
                .collect();
            if name.is_some() && zones.is_empty() {
                return (404, failure("zone not found", 404));
            }
            (200, Some(paged("zones", zones, page, per_page)))
        }
        (&Method::GET, ["api", "v1", "records"]) => {
            let (page, per_page) = match paging(req, &["zone_id", "page", "per_page"], 100) {
                Ok(p) => p,
                Err(e) => return (400, e),
            };
            let zone_id = req.param("zone_id");
            if let Some(zone_id) = zone_id {
                if !s.zones.iter().any(|(id, _)| id == zone_id) {
                    return (404, failure("zone not found", 404));
                }
            }
            let records = s
                .records
                .iter()
                .filter(|r| zone_id.is_none_or(|z| z == r.zone_id))
                .map(record_json)
                .collect();
            (200, Some(paged("records", records, page, per_page)))
        }
        (&Method::POST, ["api", "v1", "records"]) => {
            let content_type = req.header("content-type");
            if content_type != Some("application/json") {
                return (406, failure("Content-Type must be application/json", 406));
            }
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, failure("invalid JSON body", 400));
            };
            const FIELDS: &[&str] = &["zone_id", "type", "name", "value", "ttl"];
            if let Some(key) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return (
                    422,
                    failure(
                        &format!("422 Unprocessable Entity: unknown field {key}"),
                        422,
                    ),
                );
            }
            let (Some(zone_id), Some(kind), Some(name), Some(value)) = (
                body.get("zone_id").and_then(Value::as_str),
                body.get("type").and_then(Value::as_str),
                body.get("name").and_then(Value::as_str),
                body.get("value").and_then(Value::as_str),
            ) else {
                return (
                    422,
                    failure(
                        "422 Unprocessable Entity: zone_id, type, name and value are required",
                        422,
                    ),
                );
            };
            if !s.zones.iter().any(|(id, _)| id == zone_id) {
                return (
                    422,
                    failure("422 Unprocessable Entity: zone not found", 422),
                );
            }
            if !TYPES.contains(&kind) {
                return (422, failure("422 Unprocessable Entity: invalid type", 422));
            }
            let valid_name = name == "@"
                || (!name.is_empty()
                    && !name.ends_with('.')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*')));
            if !valid_name || value.is_empty() {
                return (
                    422,
                    failure("422 Unprocessable Entity: invalid name or value", 422),
                );
            }
            let ttl = match body.get("ttl") {
                None => None,
                Some(ttl) => match ttl.as_u64() {
                    Some(t) if t >= 60 => Some(t),
                    _ => {
                        return (
                            422,
                            failure("422 Unprocessable Entity: ttl must be at least 60", 422),
                        )
                    }
                },
            };
            s.next_id += 1;
            let record = Record {
                id: format!("{:032x}", 0x5e7_0000 + s.next_id),
                zone_id: zone_id.to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
                value: value.to_owned(),
                ttl,
            };
            let answer = json!({ "record": record_json(&record) });
            s.records.push(record);
            (200, Some(answer))
        }
        (&Method::DELETE, ["api", "v1", "records", id]) => {
            let before = s.records.len();
            s.records.retain(|r| r.id != *id);
            if s.records.len() == before {
                return (404, failure("record not found", 404));
            }
            (200, None)
        }
        _ => (
            404,
            Some(json!({ "message": "no Route matched with those values" })),
        ),
    }
}
