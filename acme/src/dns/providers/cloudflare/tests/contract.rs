//! A local server that speaks the part of API v4 the provider uses, keeps the
//! records it is given, and refuses what the documentation does not allow: a
//! missing or malformed `Authorization` header (400, 6003/6111), an unknown
//! token (403, 9109), unknown routes (404, 7003), a wrong method (405, 7000),
//! unknown query parameters, and record bodies that are not JSON or break the
//! field rules (400).

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Value};

use super::super::build;
use super::TOKEN;
use crate::dns::provider::DnsProvider;
use crate::dns::providers::test_support::{fields, sorted, Fake, Req};

/// A stored DNS record.
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub(super) id: String,
    pub(super) zone_id: String,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) content: String,
    pub(super) ttl: u64,
}

/// What the server holds.
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
                .map(|(i, zone)| (format!("{i:032x}"), zone.as_ref().to_owned()))
                .collect(),
            ..State::default()
        };
        Fake::serve_json(state, "application/json", handle).await
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/client/v4", self.url())
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

fn failure(code: u64, message: &str) -> Value {
    json!({ "success": false, "errors": [{ "code": code, "message": message }], "messages": [], "result": null })
}

fn success(result: Value) -> Value {
    json!({ "success": true, "errors": [], "messages": [], "result": result })
}

fn list(items: Vec<Value>, page: usize, per_page: usize) -> Value {
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json!({
        "success": true, "errors": [], "messages": [], "result": chunk,
        "result_info": { "page": page, "per_page": per_page, "count": 0, "total_count": total, "total_pages": pages }
    })
}

fn record_json(r: &Record, zone: &str) -> Value {
    json!({
        "id": r.id, "zone_id": r.zone_id, "zone_name": zone, "name": r.name, "type": r.kind,
        "content": r.content, "proxiable": false, "proxied": false, "ttl": r.ttl, "locked": false,
        "created_on": "2024-01-01T05:20:00.12345Z", "modified_on": "2024-01-01T05:20:00.12345Z"
    })
}

/// Query parameters allowed on a route, with (min, max) for `per_page`.
fn check_query(
    req: &Req,
    allowed: &[&str],
    per_page: (usize, usize),
) -> Result<(usize, usize), Value> {
    let mut page = 1;
    let mut size = 20;
    for (key, value) in &req.query {
        if !allowed.contains(&key.as_str()) {
            return Err(failure(1001, &format!("Unknown query parameter: {key}")));
        }
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| failure(1001, &format!("Invalid {key}")))
        };
        match key.as_str() {
            "page" => page = number()?.max(1),
            "per_page" => {
                size = number()?;
                if size < per_page.0 || size > per_page.1 {
                    return Err(failure(1001, "Invalid per_page"));
                }
            }
            _ => {}
        }
    }
    Ok((page, size))
}

/// The name of the zone with id `zone_id`, or the 404 for an unknown id.
fn zone_name(s: &State, zone_id: &str) -> Result<String, (u16, Value)> {
    s.zones
        .iter()
        .find(|(id, _)| id == zone_id)
        .map(|(_, n)| n.clone())
        .ok_or_else(|| {
            let message =
                "Could not route to /zones/..., perhaps your object identifier is invalid?";
            (404, failure(7003, message))
        })
}

fn handle(state: &Mutex<State>, req: &Req) -> (u16, Value) {
    let bearer = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => {
            return (
                400,
                json!({ "success": false, "errors": [{ "code": 6003, "message": "Invalid request headers",
                    "error_chain": [{ "code": 6111, "message": "Invalid format for Authorization header" }] }],
                    "messages": [], "result": null }),
            )
        }
        Some(token) if token != TOKEN => return (403, failure(9109, "Invalid access token")),
        Some(_) => {}
    }
    let mut s = state.lock().unwrap();
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let Some(["client", "v4", rest @ ..]) = Some(segments.as_slice()) else {
        return (404, failure(7003, "Could not route to the requested path"));
    };
    match (&req.method, rest) {
        (&Method::GET, ["zones"]) => {
            let (page, per_page) =
                match check_query(req, &["name", "status", "page", "per_page"], (5, 50)) {
                    Ok(p) => p,
                    Err(e) => return (400, e),
                };
            let name = req.param("name");
            let zones: Vec<Value> = s
                .zones
                .iter()
                .filter(|(_, n)| name.is_none_or(|want| want == n))
                .map(|(id, n)| json!({ "id": id, "name": n, "status": "active", "paused": false, "type": "full" }))
                .collect();
            (200, list(zones, page, per_page))
        }
        (_, ["zones"]) => (405, failure(7000, "No route for that URI")),
        (&Method::GET, ["zones", zone_id, "dns_records"]) => {
            let zone = match zone_name(&s, zone_id) {
                Ok(zone) => zone,
                Err(refusal) => return refusal,
            };
            let (page, per_page) = match check_query(
                req,
                &["type", "name", "content", "page", "per_page"],
                (5, 5_000_000),
            ) {
                Ok(p) => p,
                Err(e) => return (400, e),
            };
            let records: Vec<Value> = s
                .records
                .iter()
                .filter(|r| &r.zone_id == zone_id)
                .filter(|r| req.param("type").is_none_or(|t| t == r.kind))
                .filter(|r| req.param("name").is_none_or(|n| n == r.name))
                .filter(|r| req.param("content").is_none_or(|c| c == r.content))
                .map(|r| record_json(r, &zone))
                .collect();
            (200, list(records, page, per_page))
        }
        (&Method::POST, ["zones", zone_id, "dns_records"]) => {
            let zone = match zone_name(&s, zone_id) {
                Ok(zone) => zone,
                Err(refusal) => return refusal,
            };
            if !req.query.is_empty() {
                return (400, failure(1001, "Unknown query parameter"));
            }
            let content_type = req.header("content-type");
            if content_type != Some("application/json") {
                return (415, failure(6003, "Content-Type must be application/json"));
            }
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, failure(9207, "Request body is invalid."));
            };
            const FIELDS: &[&str] = &[
                "type", "name", "content", "ttl", "proxied", "comment", "tags",
            ];
            if let Some(key) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
                return (
                    400,
                    failure(
                        9207,
                        &format!("Request body is invalid: unknown field {key}"),
                    ),
                );
            }
            let (Some(kind), Some(name), Some(content)) = (
                body.get("type").and_then(Value::as_str),
                body.get("name").and_then(Value::as_str),
                body.get("content").and_then(Value::as_str),
            ) else {
                return (
                    400,
                    failure(
                        9207,
                        "Request body is invalid: type, name and content are required",
                    ),
                );
            };
            if kind != "TXT" {
                return (400, failure(9000, "DNS record type is invalid."));
            }
            if content.is_empty() {
                return (400, failure(9005, "Content for TXT record is invalid."));
            }
            let ttl = match body.get("ttl") {
                None => 1,
                Some(ttl) => match ttl.as_u64() {
                    Some(t) if t == 1 || (60..=86_400).contains(&t) => t,
                    _ => {
                        return (
                            400,
                            failure(
                                9021,
                                "TTL must be between 60 and 86400 seconds, or 1 for Automatic.",
                            ),
                        )
                    }
                },
            };
            if body.get("proxied").and_then(Value::as_bool) == Some(true) {
                return (400, failure(9004, "This record type cannot be proxied."));
            }
            // Cloudflare stores full names: "@" is the apex, a relative name gets the zone.
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let name = if name == "@" || name == zone {
                zone.clone()
            } else if name.ends_with(&format!(".{zone}")) {
                name
            } else {
                format!("{name}.{zone}")
            };
            if s.records.iter().any(|r| {
                r.zone_id == *zone_id && r.kind == kind && r.name == name && r.content == content
            }) {
                return (400, failure(81058, "An identical record already exists."));
            }
            s.next_id += 1;
            let record = Record {
                id: format!("{:032x}", 0xabc000 + s.next_id),
                zone_id: (*zone_id).to_owned(),
                kind: kind.to_owned(),
                name,
                content: content.to_owned(),
                ttl,
            };
            let answer = success(record_json(&record, &zone));
            s.records.push(record);
            (200, answer)
        }
        (&Method::DELETE, ["zones", zone_id, "dns_records", record_id]) => {
            let before = s.records.len();
            s.records
                .retain(|r| !(&r.zone_id == zone_id && &r.id == record_id));
            if s.records.len() == before {
                return (404, failure(81044, "Record does not exist."));
            }
            (200, success(json!({ "id": record_id })))
        }
        (_, ["zones", _, "dns_records", ..]) => (405, failure(7000, "No route for that URI")),
        _ => (404, failure(7003, "Could not route to the requested path")),
    }
}
