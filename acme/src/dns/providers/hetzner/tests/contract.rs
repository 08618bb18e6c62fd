//! A local server that speaks the zones, RRSets and actions part of the
//! Hetzner Cloud API (<https://docs.hetzner.cloud/reference/cloud>) as
//! documented, keeps the RRSets it is given, and refuses what the
//! documentation does not allow, in Hetzner's error shape
//! `{"error": {"code", "message", "details"}}`:
//! - a missing token, another scheme than `Bearer` or an unknown token:
//!   401 `unauthorized` "unable to authenticate" (the documentation names
//!   one code for an invalid or unknown token and no other for a missing
//!   one);
//! - unknown routes: 404 `not_found`; a known route with another method:
//!   405 `method_not_allowed`;
//! - unknown zones, RRSets and actions: 404 `not_found`;
//! - query parameters a route does not document, `page` below 1 and
//!   `per_page` outside 1..=50: 422 `invalid_input`;
//! - bodies that are not JSON objects: 400 `json_error`;
//! - bodies with fields the route does not document or of the wrong type,
//!   empty or over-long (50) or repeated `records`, TXT values that are
//!   not quoted character-strings of at most 255 bytes, a `ttl` outside
//!   60..=2147483647 or other than the TTL the RRSet already has, RRSet
//!   names that are not lower case, end with a dot or the zone's name, and
//!   types the API does not know: 422 `invalid_input`.
//!
//! Adding a value an RRSet already holds, or removing one it does not,
//! is not documented either way; both are refused (422 `invalid_input`)
//! so the provider cannot come to rely on either.
//!
//! Changes answer 201 with an action. It stays `running` for
//! [`State::running_polls`] polls of `GET /actions/{id}`, then ends in
//! `success` (and only then is the change applied) or, when
//! [`State::fail_next`] was set, in `error` with that message.

use std::sync::Mutex;

use http::Method;
use serde_json::{json, Value};

use super::super::Hetzner;
use super::TOKEN;
use crate::dns::provider::DnsProvider;
use crate::dns::providers::support::txt_text;
use crate::dns::providers::test_support::{fields, sorted, Fake, Req};

mod requests;

use requests::{body, paging, records, rrset_key};

/// RRSet types the API knows (the `rr_type` enum).
const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV",
    "SVCB", "TLSA", "TXT",
];

/// The most entries a page may hold (`per_page`), and the most records
/// one change may carry.
const MAX_PER_PAGE: usize = 50;

/// What a handler answers: a status and a JSON body.
type Answer = (u16, Option<Value>);

/// One route's handler: the state, the request, the path's segments.
type Handler = fn(&mut State, &Req, &[&str]) -> Answer;

/// An RRSet as the server keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RRSet {
    /// The zone's id.
    pub(super) zone: u64,
    /// Relative to the zone, `@` for the apex.
    pub(super) name: String,
    pub(super) kind: String,
    /// `None`: the zone's default.
    pub(super) ttl: Option<u64>,
    /// As sent (TXT values quoted), in the order they were added.
    pub(super) values: Vec<String>,
}

/// A change an action applies when it succeeds.
#[derive(Debug)]
enum Change {
    Add {
        rrset: (u64, String, String),
        ttl: Option<u64>,
        values: Vec<String>,
    },
    Remove {
        rrset: (u64, String, String),
        values: Vec<String>,
    },
}

/// An asynchronous action.
#[derive(Debug)]
struct Action {
    id: u64,
    command: &'static str,
    zone: u64,
    /// Polls still to answer `running` to.
    running: u32,
    /// What it applies on success; taken when it ends.
    change: Option<Change>,
    /// The message it fails with, when it is to fail.
    failure: Option<String>,
    status: &'static str,
}

/// What the server holds.
#[derive(Default)]
pub(super) struct State {
    /// (id, name)
    pub(super) zones: Vec<(u64, String)>,
    pub(super) rrsets: Vec<RRSet>,
    actions: Vec<Action>,
    /// Polls each new action answers `running` to before it ends (0: it
    /// ends at once).
    pub(super) running_polls: u32,
    /// The message the next action fails with.
    pub(super) fail_next: Option<String>,
    /// Every authenticated request, as `METHOD /path?query`.
    pub(super) log: Vec<String>,
}

/// The running contract server.
pub(super) type Server = Fake<State>;

impl Server {
    pub(super) async fn start(zones: &[impl AsRef<str>]) -> Self {
        let state = State {
            zones: (0u64..)
                .zip(zones)
                .map(|(i, z)| (4_200_000 + i, z.as_ref().to_owned()))
                .collect(),
            ..State::default()
        };
        Fake::serve_json(state, "application/json", handle).await
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// The provider, polling actions every millisecond.
    pub(super) fn provider(&self, token: &str) -> Box<dyn DnsProvider> {
        let mut provider = Hetzner::new(&fields(
            &[("api_token", token)],
            &[("base_url", &self.base_url())],
        ))
        .unwrap();
        provider.poll_interval = std::time::Duration::from_millis(1);
        Box::new(provider)
    }

    pub(super) fn zone_id(&self, zone: &str) -> u64 {
        let s = self.state.lock().unwrap();
        s.zones.iter().find(|(_, n)| n == zone).unwrap().0
    }

    /// Adds an RRSet as if made elsewhere.
    pub(super) fn seed(&self, zone: &str, name: &str, kind: &str, ttl: u64, values: &[&str]) {
        let zone = self.zone_id(zone);
        self.state.lock().unwrap().rrsets.push(RRSet {
            zone,
            name: name.into(),
            kind: kind.into(),
            ttl: Some(ttl),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        });
    }

    /// Every TXT RRSet.
    pub(super) fn txt(&self) -> Vec<RRSet> {
        let s = self.state.lock().unwrap();
        s.rrsets
            .iter()
            .filter(|r| r.kind == "TXT")
            .cloned()
            .collect()
    }

    /// (name, unquoted value) of every TXT record, in order.
    pub(super) fn stored(&self) -> Vec<(String, String)> {
        self.txt()
            .into_iter()
            .flat_map(|r| {
                let name = r.name;
                r.values
                    .into_iter()
                    .map(move |v| (name.clone(), txt_text(&v)))
            })
            .collect()
    }

    /// The unquoted TXT values at `relative`, sorted.
    pub(super) fn txt_at(&self, relative: &str) -> Vec<String> {
        sorted(
            self.stored()
                .into_iter()
                .filter(|(name, _)| name == relative)
                .map(|(_, value)| value),
        )
    }

    /// The TXT RRSet at `fqdn` in `example.com` as (TTL, values as held),
    /// the zone's default TTL (3600) when it has none.
    pub(super) fn set(&self, fqdn: &str) -> Option<(u64, Vec<String>)> {
        let relative = match fqdn.strip_suffix("example.com") {
            Some("") => "@",
            Some(head) => head.trim_end_matches('.'),
            None => return None,
        };
        self.txt()
            .into_iter()
            .find(|r| r.name == relative)
            .map(|r| (r.ttl.unwrap_or(3600), r.values))
    }

    /// How many authenticated requests started with `prefix`.
    pub(super) fn requests(&self, prefix: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.log.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

// === answers ===

/// An error in Hetzner's shape.
fn failure(status: u16, code: &str, message: &str) -> Answer {
    let error = json!({ "code": code, "message": message, "details": null });
    (status, Some(json!({ "error": error })))
}

/// 422 `invalid_input` naming `field`, with the documented details.
fn invalid(field: &str, problem: &str) -> Answer {
    let message = format!("invalid input in field '{field}': {problem}");
    let details = json!({ "fields": [{ "name": field, "messages": [problem] }] });
    let error = json!({ "code": "invalid_input", "message": message, "details": details });
    (422, Some(json!({ "error": error })))
}

fn not_found(what: &str) -> Answer {
    failure(404, "not_found", &format!("{what} not found"))
}

fn zone_json(id: u64, name: &str, records: usize) -> Value {
    json!({
        "id": id, "name": name, "mode": "primary", "ttl": 3600, "status": "ok",
        "created": "2026-05-01T12:00:00Z", "labels": {}, "protection": { "delete": false },
        "record_count": records, "primary_nameservers": [], "registrar": "other",
        "authoritative_nameservers": {
            "assigned": ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."],
            "delegated": [], "delegation_last_check": null, "delegation_status": "unknown"
        }
    })
}

fn rrset_json(r: &RRSet) -> Value {
    let records: Vec<Value> = r.values.iter().map(|v| json!({ "value": v })).collect();
    json!({
        "id": format!("{}/{}", r.name, r.kind), "name": r.name, "type": r.kind, "ttl": r.ttl,
        "labels": {}, "protection": { "change": false }, "records": records, "zone": r.zone
    })
}

fn action_json(a: &Action) -> Value {
    let running = a.status == "running";
    let error = a
        .failure
        .as_ref()
        .filter(|_| a.status == "error")
        .map(|m| json!({ "code": "action_failed", "message": m }));
    json!({
        "id": a.id, "command": a.command, "status": a.status,
        "progress": if running { 50 } else { 100 },
        "started": "2026-05-01T12:00:00Z",
        "finished": if running { Value::Null } else { json!("2026-05-01T12:00:01Z") },
        "resources": [{ "id": a.zone, "type": "zone" }], "error": error
    })
}

// === the contract ===

fn handle(state: &Mutex<State>, req: &Req) -> Answer {
    if req.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
        return failure(401, "unauthorized", "unable to authenticate");
    }
    let mut s = state.lock().unwrap();
    s.log.push(format!("{} {}", req.method, req.target));
    let Some(rest) = req.path.strip_prefix("/v1/") else {
        return not_found("route");
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (allowed, answer): (Method, Handler) = match segments.as_slice() {
        ["zones"] => (Method::GET, list_zones),
        ["zones", _, "rrsets", _, _] => (Method::GET, get_rrset),
        ["zones", _, "rrsets", _, _, "actions", "add_records"] => (Method::POST, add_records),
        ["zones", _, "rrsets", _, _, "actions", "remove_records"] => (Method::POST, remove_records),
        ["actions", _] => (Method::GET, get_action),
        _ => return not_found("route"),
    };
    if req.method != allowed {
        return failure(
            405,
            "method_not_allowed",
            "The request method is not allowed",
        );
    }
    answer(&mut s, req, &segments)
}

/// `GET /zones`
fn list_zones(s: &mut State, req: &Req, _: &[&str]) -> Answer {
    const QUERY: &[&str] = &["name", "mode", "label_selector", "sort", "page", "per_page"];
    let (page, per_page) = match paging(req, QUERY) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let name = req.param("name");
    let zones: Vec<Value> = s
        .zones
        .iter()
        .filter(|(_, n)| name.is_none_or(|want| want == n))
        .map(|(id, n)| {
            let records = s.rrsets.iter().filter(|r| r.zone == *id).count();
            zone_json(*id, n, records)
        })
        .collect();
    let total = zones.len();
    let last = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = zones
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let pagination = json!({
        "page": page, "per_page": per_page,
        "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
        "next_page": if page < last { json!(page + 1) } else { Value::Null },
        "last_page": last, "total_entries": total
    });
    (
        200,
        Some(json!({ "zones": chunk, "meta": { "pagination": pagination } })),
    )
}

fn find<'a>(s: &'a State, (zone, name, kind): &(u64, String, String)) -> Option<&'a RRSet> {
    s.rrsets
        .iter()
        .find(|r| r.zone == *zone && &r.name == name && &r.kind == kind)
}

/// `GET /zones/{id_or_name}/rrsets/{rr_name}/{rr_type}`
fn get_rrset(s: &mut State, req: &Req, segments: &[&str]) -> Answer {
    let key = match rrset_key(s, req, segments) {
        Ok(key) => key,
        Err(answer) => return answer,
    };
    match find(s, &key) {
        Some(rrset) => (200, Some(json!({ "rrset": rrset_json(rrset) }))),
        None => not_found("rrset"),
    }
}

/// Starts an action for `change`: it ends at once, or after
/// [`State::running_polls`] polls.
fn start(s: &mut State, command: &'static str, zone: u64, change: Change) -> Answer {
    let id = 1_000_000_000 + s.actions.len() as u64;
    let mut action = Action {
        id,
        command,
        zone,
        running: s.running_polls,
        change: Some(change),
        failure: s.fail_next.take(),
        status: "running",
    };
    if action.running == 0 {
        finish(&mut s.rrsets, &mut action);
    }
    let answer = json!({ "action": action_json(&action) });
    s.actions.push(action);
    (201, Some(answer))
}

/// Ends `action`: `error` when it is to fail, else `success` with its
/// change applied.
fn finish(rrsets: &mut Vec<RRSet>, action: &mut Action) {
    if action.failure.is_some() {
        action.status = "error";
        action.change = None;
        return;
    }
    action.status = "success";
    match action.change.take() {
        Some(Change::Add {
            rrset: (zone, name, kind),
            ttl,
            values,
        }) => match rrsets
            .iter_mut()
            .find(|r| r.zone == zone && r.name == name && r.kind == kind)
        {
            Some(rrset) => rrset.values.extend(values),
            None => rrsets.push(RRSet {
                zone,
                name,
                kind,
                ttl,
                values,
            }),
        },
        Some(Change::Remove {
            rrset: (zone, name, kind),
            values,
        }) => {
            for rrset in rrsets
                .iter_mut()
                .filter(|r| r.zone == zone && r.name == name && r.kind == kind)
            {
                rrset.values.retain(|v| !values.contains(v));
            }
            // Documented: an RRSet left without records is deleted.
            rrsets.retain(|r| !r.values.is_empty());
        }
        None => {}
    }
}

/// `POST /zones/{id_or_name}/rrsets/{rr_name}/{rr_type}/actions/add_records`
fn add_records(s: &mut State, req: &Req, segments: &[&str]) -> Answer {
    let checked = rrset_key(s, req, segments).and_then(|key| {
        let body = body(req, &["records", "ttl"])?;
        let values = records(&body, &key.2)?;
        let ttl = match body.get("ttl") {
            None | Some(Value::Null) => None,
            Some(ttl) => match ttl.as_u64() {
                Some(t) if (60..=2_147_483_647).contains(&t) => Some(t),
                _ => return Err(invalid("ttl", "must be an integer from 60 to 2147483647")),
            },
        };
        if let Some(existing) = find(s, &key) {
            if ttl.is_some() && existing.ttl.is_some() && ttl != existing.ttl {
                return Err(invalid("ttl", "must match the TTL of the existing RRSet"));
            }
            if values.iter().any(|v| existing.values.contains(v)) {
                return Err(invalid("records", "record already exists in the RRSet"));
            }
        }
        Ok((key, ttl, values))
    });
    match checked {
        Ok((rrset, ttl, values)) => {
            let zone = rrset.0;
            let change = Change::Add { rrset, ttl, values };
            start(s, "add_rrset_records", zone, change)
        }
        Err(answer) => answer,
    }
}

/// `POST /zones/{id_or_name}/rrsets/{rr_name}/{rr_type}/actions/remove_records`
fn remove_records(s: &mut State, req: &Req, segments: &[&str]) -> Answer {
    let checked = rrset_key(s, req, segments).and_then(|key| {
        let body = body(req, &["records"])?;
        let values = records(&body, &key.2)?;
        let Some(existing) = find(s, &key) else {
            return Err(not_found("rrset"));
        };
        if !values.iter().all(|v| existing.values.contains(v)) {
            return Err(invalid("records", "record does not exist in the RRSet"));
        }
        Ok((key, values))
    });
    match checked {
        Ok((rrset, values)) => {
            let zone = rrset.0;
            start(
                s,
                "remove_rrset_records",
                zone,
                Change::Remove { rrset, values },
            )
        }
        Err(answer) => answer,
    }
}

/// `GET /actions/{id}`
fn get_action(s: &mut State, req: &Req, segments: &[&str]) -> Answer {
    if let Some((key, _)) = req.query.first() {
        return invalid(key, "unknown query parameter");
    }
    let id = segments.get(1).and_then(|id| id.parse::<u64>().ok());
    let State {
        actions, rrsets, ..
    } = s;
    let Some(action) = actions.iter_mut().find(|a| Some(a.id) == id) else {
        return not_found("action");
    };
    if action.status == "running" {
        if action.running > 0 {
            action.running -= 1;
        } else {
            finish(rrsets, action);
        }
    }
    (200, Some(json!({ "action": action_json(action) })))
}
