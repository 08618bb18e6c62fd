//! A local server that speaks the `/auth/time` and `/domain/zone` part of the
//! API and checks every signed call the way OVH does: an unknown application
//! key (403 `INVALID_KEY`), an unknown consumer key (403
//! `INVALID_CREDENTIAL`), a timestamp more than 30 s off its own clock (400
//! `QUERY_TIME_OUT`), a signature that is not `"$1$" +
//! sha1(AS+CK+METHOD+URL+BODY+TS)` over the full URL and the exact body (400
//! `INVALID_SIGNATURE`), a missing header (401). Its clock runs three hours
//! ahead of ours, so only a client that learned the offset from `/auth/time`
//! gets through. It refuses unknown routes and zones (404), unknown query
//! parameters and bad record bodies (400), and serves records only after
//! `POST /domain/zone/{zone}/refresh`.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::super::build;
use super::{AK, AS, CK, SKEW};
use crate::dns::provider::DnsProvider;
use crate::dns::providers::test_support::{fields, sorted, Fake, Req};

const FIELD_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DKIM", "DMARC", "DNAME", "LOC", "MX", "NAPTR", "NS", "PTR",
    "SPF", "SRV", "SSHFP", "TLSA", "TXT",
];

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    pub(super) id: u64,
    pub(super) zone: String,
    pub(super) field_type: String,
    pub(super) sub_domain: String,
    pub(super) target: String,
    pub(super) ttl: u64,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) zones: Vec<String>,
    pub(super) records: Vec<Record>,
    /// What the name servers serve: `records` as of the last refresh.
    pub(super) live: Vec<Record>,
    pub(super) next_id: u64,
    /// The server's clock minus ours.
    pub(super) skew: i64,
    pub(super) refreshes: usize,
    pub(super) time_calls: usize,
}

/// The running contract server.
pub(super) type Server = Fake<State>;

impl Server {
    pub(super) async fn start(zones: &[&str]) -> Self {
        let state = State {
            zones: zones.iter().map(|z| (*z).to_owned()).collect(),
            next_id: 5_088_000_000,
            skew: SKEW,
            ..State::default()
        };
        Fake::serve_json(state, "application/json; charset=utf-8", handle).await
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/1.0", self.url())
    }

    pub(super) fn provider_with(&self, secret: &str, consumer: &str) -> Box<dyn DnsProvider> {
        build(&fields(
            &[
                ("application_key", AK),
                ("application_secret", secret),
                ("consumer_key", consumer),
            ],
            &[("base_url", &self.base_url())],
        ))
        .unwrap()
    }

    pub(super) fn provider(&self) -> Box<dyn DnsProvider> {
        self.provider_with(AS, CK)
    }

    /// (subDomain, target) of every record, in order.
    pub(super) fn stored(&self) -> Vec<(String, String)> {
        let s = self.state.lock().unwrap();
        s.records
            .iter()
            .map(|r| (r.sub_domain.clone(), r.target.clone()))
            .collect()
    }

    pub(super) fn txt_at(&self, sub: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let txt = s.records.iter().filter(|r| r.field_type == "TXT");
        sorted(
            txt.filter(|r| r.sub_domain == sub)
                .map(|r| r.target.clone()),
        )
    }

    pub(super) fn published(&self) -> bool {
        let s = self.state.lock().unwrap();
        s.live == s.records
    }
}

pub(super) fn now() -> i64 {
    crate::unix_now()
}

fn coded(status: u16, code: &str, message: &str) -> (u16, Value) {
    let reason = match status {
        400 => "400 Bad Request",
        403 => "403 Forbidden",
        _ => "",
    };
    (
        status,
        json!({ "errorCode": code, "httpCode": reason, "message": message }),
    )
}

fn classed(status: u16, class: &str, message: &str) -> (u16, Value) {
    (status, json!({ "class": class, "message": message }))
}

fn record_json(r: &Record) -> Value {
    json!({ "id": r.id, "zone": r.zone, "fieldType": r.field_type, "subDomain": r.sub_domain, "target": r.target, "ttl": r.ttl })
}

/// OVH's checks on a signed call, in order.
fn check_signature(s: &State, req: &Req) -> Result<(), (u16, Value)> {
    let (Some(application), Some(consumer), Some(timestamp), Some(signature)) = (
        req.header("x-ovh-application"),
        req.header("x-ovh-consumer"),
        req.header("x-ovh-timestamp"),
        req.header("x-ovh-signature"),
    ) else {
        return Err(classed(401, "Client::Unauthorized", "You must login first"));
    };
    if application != AK {
        return Err(coded(403, "INVALID_KEY", "This application key is invalid"));
    }
    if consumer != CK {
        return Err(coded(
            403,
            "INVALID_CREDENTIAL",
            "This credential is not valid",
        ));
    }
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return Err(coded(400, "QUERY_TIME_OUT", "Query out of time"));
    };
    if (timestamp - (now() + s.skew)).abs() > 30 {
        return Err(coded(400, "QUERY_TIME_OUT", "Query out of time"));
    }
    let url = format!("http://{}{}", req.local, req.target);
    let body = std::str::from_utf8(&req.body).unwrap();
    let digest = Sha1::digest(format!(
        "{AS}+{CK}+{}+{url}+{body}+{timestamp}",
        req.method.as_str()
    ));
    let expected: String = std::iter::once("$1$".to_owned())
        .chain(digest.iter().map(|b| format!("{b:02x}")))
        .collect();
    if signature != expected {
        return Err(coded(400, "INVALID_SIGNATURE", "Invalid signature"));
    }
    if !req.body.is_empty()
        && !req
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(classed(
            400,
            "Client::BadRequest",
            "Content-Type must be application/json",
        ));
    }
    Ok(())
}

fn handle(state: &Mutex<State>, req: &Req) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let Some(["1.0", route @ ..]) = Some(segments.as_slice()) else {
        return classed(404, "Client::NotFound", "Got an invalid (or empty) URL");
    };
    if let (&Method::GET, ["auth", "time"]) = (&req.method, route) {
        s.time_calls += 1;
        return (200, json!(now() + s.skew));
    }
    let known = matches!(
        route,
        ["domain", "zone"]
            | ["domain", "zone", _, "record"]
            | ["domain", "zone", _, "record", _]
            | ["domain", "zone", _, "refresh"]
    );
    if !known {
        return classed(404, "Client::NotFound", "Got an invalid (or empty) URL");
    }
    if let Err(refusal) = check_signature(&s, req) {
        return refusal;
    }
    let zone_exists = |s: &State, zone: &str| s.zones.iter().any(|z| z == zone);
    let no_such_service = || classed(404, "Client::NotFound", "This service does not exist");
    match (&req.method, route) {
        (&Method::GET, ["domain", "zone"]) => (200, json!(s.zones)),
        (&Method::GET, ["domain", "zone", zone, "record"]) => {
            if !zone_exists(&s, zone) {
                return no_such_service();
            }
            if let Some((key, _)) = req
                .query
                .iter()
                .find(|(k, _)| k != "fieldType" && k != "subDomain")
            {
                return classed(
                    400,
                    "Client::BadRequest",
                    &format!("Invalid parameter: {key}"),
                );
            }
            let ids: Vec<u64> = s
                .records
                .iter()
                .filter(|r| r.zone == *zone)
                .filter(|r| req.param("fieldType").is_none_or(|t| t == r.field_type))
                .filter(|r| req.param("subDomain").is_none_or(|d| d == r.sub_domain))
                .map(|r| r.id)
                .collect();
            (200, json!(ids))
        }
        (&Method::GET, ["domain", "zone", zone, "record", id]) => {
            match s
                .records
                .iter()
                .find(|r| r.zone == *zone && r.id.to_string() == *id)
            {
                Some(record) => (200, record_json(record)),
                None => classed(
                    404,
                    "Client::NotFound",
                    &format!("The requested object (id = {id}) does not exist"),
                ),
            }
        }
        (&Method::POST, ["domain", "zone", zone, "record"]) => {
            if !zone_exists(&s, zone) {
                return no_such_service();
            }
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
                return classed(400, "Client::BadRequest", "Invalid JSON received");
            };
            if let Some(key) = body
                .keys()
                .find(|k| !["fieldType", "subDomain", "target", "ttl"].contains(&k.as_str()))
            {
                return classed(
                    400,
                    "Client::BadRequest",
                    &format!("Invalid parameter: {key}"),
                );
            }
            let (Some(field_type), Some(target)) = (
                body.get("fieldType").and_then(Value::as_str),
                body.get("target").and_then(Value::as_str),
            ) else {
                return classed(
                    400,
                    "Client::BadRequest",
                    "Missing parameter(s): fieldType, target",
                );
            };
            if !FIELD_TYPES.contains(&field_type) {
                return classed(
                    400,
                    "Client::BadRequest",
                    &format!("Invalid value for fieldType: {field_type}"),
                );
            }
            let sub_domain = body
                .get("subDomain")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if sub_domain.ends_with('.') || sub_domain.ends_with(zone) {
                return classed(400, "Client::BadRequest", "Invalid subDomain");
            }
            let ttl = match body.get("ttl") {
                None => 0,
                Some(ttl) => match ttl.as_u64() {
                    Some(t) if t == 0 || t >= 60 => t,
                    _ => {
                        return classed(
                            400,
                            "Client::BadRequest",
                            "Invalid TTL: use 0 or at least 60",
                        )
                    }
                },
            };
            s.next_id += 1;
            let record = Record {
                id: s.next_id,
                zone: (*zone).to_owned(),
                field_type: field_type.to_owned(),
                sub_domain: sub_domain.to_owned(),
                target: target.to_owned(),
                ttl,
            };
            let answer = record_json(&record);
            s.records.push(record);
            (200, answer)
        }
        (&Method::DELETE, ["domain", "zone", zone, "record", id]) => {
            let before = s.records.len();
            s.records
                .retain(|r| !(r.zone == *zone && r.id.to_string() == *id));
            if s.records.len() == before {
                return classed(
                    404,
                    "Client::NotFound",
                    &format!("The requested object (id = {id}) does not exist"),
                );
            }
            (200, Value::Null)
        }
        (&Method::POST, ["domain", "zone", zone, "refresh"]) => {
            if !zone_exists(&s, zone) {
                return no_such_service();
            }
            if !req.body.is_empty() {
                return classed(400, "Client::BadRequest", "This call takes no body");
            }
            s.live = s.records.clone();
            s.refreshes += 1;
            (200, Value::Null)
        }
        _ => classed(405, "Client::MethodNotAllowed", "Method not allowed"),
    }
}
