//! A local Route 53 speaking the REST calls the provider makes, after
//! [`authenticate`] has recomputed each request's signature, and checking
//! request documents the way the Route 53 API Reference describes.

use std::sync::Mutex;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::super::xml;
use super::sigv4_check::authenticate;
use crate::dns::providers::test_support::{param, Fake, Reply, Req};

const NS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// An access key the fake accepts.
#[derive(Clone)]
pub(super) struct Account {
    pub(super) access_key_id: &'static str,
    pub(super) secret_access_key: &'static str,
    pub(super) session_token: Option<&'static str>,
}

/// A resource record set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Set {
    /// Lower-case, trailing dot.
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) ttl: u32,
    pub(super) values: Vec<String>,
}

struct Zone {
    id: String,
    name: String,
    private: bool,
    sets: Vec<Set>,
}

#[derive(Default)]
pub(super) struct State {
    accounts: Vec<Account>,
    zones: Vec<Zone>,
    page_size: usize,
    /// `METHOD path?query` of every request that passed authentication.
    log: Vec<String>,
    /// Answer `PriorRequestNotComplete` to this many coming changes.
    busy: u32,
    changes: u32,
}

/// The running fake; stops when dropped.
pub(super) type FakeRoute53 = Fake<State>;

impl FakeRoute53 {
    /// Starts on 127.0.0.1:0 with `accounts`; list pages hold `page_size`.
    pub(super) async fn start(accounts: Vec<Account>, page_size: usize) -> Self {
        let state = State {
            accounts,
            page_size,
            ..State::default()
        };
        Fake::serve(state, handle).await
    }

    /// Adds a hosted zone (`name` without the dot) holding an SOA and NS.
    pub(super) fn add_zone(&self, id: &str, name: &str, private: bool) {
        let apex = format!("{name}.");
        let sets = vec![
            set(&apex, "NS", 172800, &["ns-1.awsdns-01.org."]),
            set(
                &apex,
                "SOA",
                900,
                &["ns-1.awsdns-01.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"],
            ),
        ];
        let zone = Zone {
            id: id.to_owned(),
            name: apex,
            private,
            sets,
        };
        self.state.lock().unwrap().zones.push(zone);
    }

    /// Puts a record set straight into zone `id`.
    pub(super) fn put(&self, id: &str, new: Set) {
        let mut state = self.state.lock().unwrap();
        let zone = state.zones.iter_mut().find(|z| z.id == id).unwrap();
        zone.sets
            .retain(|s| !(s.name == new.name && s.kind == new.kind));
        zone.sets.push(new);
    }

    /// The record set `name` (no dot) of type `kind` in zone `id`.
    pub(super) fn get(&self, id: &str, name: &str, kind: &str) -> Option<Set> {
        let state = self.state.lock().unwrap();
        let zone = state.zones.iter().find(|z| z.id == id)?;
        zone.sets
            .iter()
            .find(|s| s.name == format!("{name}.") && s.kind == kind)
            .cloned()
    }

    /// Authenticated requests so far.
    pub(super) fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The next `n` changes are refused with `PriorRequestNotComplete`.
    pub(super) fn busy(&self, n: u32) {
        self.state.lock().unwrap().busy = n;
    }
}

/// A record set value.
pub(super) fn set(name: &str, kind: &str, ttl: u32, values: &[&str]) -> Set {
    Set {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ttl,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

type Answer = Reply;

fn xml_answer(status: StatusCode, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/xml")
        .header("x-amz-request-id", "b25f48e8-84fd-11e6-80d9-574e0c4664cb")
        .body(Full::new(Bytes::from(format!(
            "<?xml version=\"1.0\"?>\n{body}"
        ))))
        .unwrap()
}

/// Route 53's REST error document.
fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    xml_answer(
        status,
        format!(
            "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{}</Message></Error><RequestId>b25f48e8-84fd-11e6-80d9-574e0c4664cb</RequestId></ErrorResponse>",
            xml::escape(message)
        ),
    )
}

fn handle(state: &Mutex<State>, req: &Req) -> Answer {
    let accounts = state.lock().unwrap().accounts.clone();
    if let Err((code, message)) = authenticate(req, &accounts) {
        return error(StatusCode::FORBIDDEN, code, &message);
    }
    let query = &req.query;
    let mut state = state.lock().unwrap();
    state.log.push(format!("{} {}", req.method, req.uri));
    let path = req.path.as_str();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["2013-04-01", "hostedzone"]) => list_zones(&state, query),
        ("GET", ["2013-04-01", "hostedzonesbyname"]) => list_zones_by_name(&state, query),
        ("GET", ["2013-04-01", "hostedzone", id, "rrset"]) => list_sets(&state, id, query),
        ("POST", ["2013-04-01", "hostedzone", id, "rrset"]) => {
            let id = (*id).to_owned();
            change(&mut state, &id, &req.body)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "InvalidInput",
            &format!("no operation at {path}"),
        ),
    }
}

// === the API ===

/// Sort key of a DNS name: labels reversed (`www.example.com.` →
/// `com.example.www`).
fn reversed(name: &str) -> String {
    name.trim_end_matches('.')
        .rsplit('.')
        .collect::<Vec<_>>()
        .join(".")
}

fn dotted(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        name + "."
    }
}

fn zone_xml(zone: &Zone) -> String {
    format!(
        "<HostedZone><Id>/hostedzone/{}</Id><Name>{}</Name><CallerReference>ref-{}</CallerReference>\
         <Config><PrivateZone>{}</PrivateZone></Config><ResourceRecordSetCount>{}</ResourceRecordSetCount></HostedZone>",
        zone.id,
        zone.name,
        zone.id,
        zone.private,
        zone.sets.len()
    )
}

fn page_size(state: &State, query: &[(String, String)]) -> usize {
    let asked = param(query, "maxitems")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    asked.min(state.page_size)
}

fn list_zones(state: &State, query: &[(String, String)]) -> Answer {
    let size = page_size(state, query);
    let start = match param(query, "marker") {
        Some(marker) => match state.zones.iter().position(|z| z.id == marker) {
            Some(at) => at,
            None => return error(StatusCode::BAD_REQUEST, "InvalidInput", "Invalid marker"),
        },
        None => 0,
    };
    let page: Vec<&Zone> = state.zones.iter().skip(start).take(size).collect();
    let next = state.zones.get(start + size);
    let mut body = format!("<ListHostedZonesResponse xmlns=\"{NS}\"><HostedZones>");
    body += &page.iter().map(|z| zone_xml(z)).collect::<String>();
    body += &format!(
        "</HostedZones><IsTruncated>{}</IsTruncated>",
        next.is_some()
    );
    if let Some(next) = next {
        body += &format!("<NextMarker>{}</NextMarker>", next.id);
    }
    body += &format!("<MaxItems>{size}</MaxItems></ListHostedZonesResponse>");
    xml_answer(StatusCode::OK, body)
}

fn list_zones_by_name(state: &State, query: &[(String, String)]) -> Answer {
    let size = page_size(state, query);
    let dns_name = param(query, "dnsname").map(dotted);
    let zone_id = param(query, "hostedzoneid");
    if zone_id.is_some() && dns_name.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "hostedzoneid requires dnsname",
        );
    }
    let mut sorted: Vec<&Zone> = state.zones.iter().collect();
    sorted.sort_by_key(|z| (reversed(&z.name), z.id.clone()));
    let start_key = dns_name
        .as_deref()
        .map(|n| (reversed(n), zone_id.unwrap_or("").to_owned()));
    let rest: Vec<&Zone> = sorted
        .into_iter()
        .filter(|z| {
            start_key
                .as_ref()
                .is_none_or(|key| (reversed(&z.name), z.id.clone()) >= *key)
        })
        .collect();
    let next = rest.get(size);
    let mut body = format!("<ListHostedZonesByNameResponse xmlns=\"{NS}\"><HostedZones>");
    body += &rest
        .iter()
        .take(size)
        .map(|z| zone_xml(z))
        .collect::<String>();
    body += "</HostedZones>";
    if let Some(name) = &dns_name {
        body += &format!("<DNSName>{name}</DNSName>");
    }
    body += &format!("<IsTruncated>{}</IsTruncated>", next.is_some());
    if let Some(next) = next {
        body += &format!(
            "<NextDNSName>{}</NextDNSName><NextHostedZoneId>{}</NextHostedZoneId>",
            next.name, next.id
        );
    }
    body += &format!("<MaxItems>{size}</MaxItems></ListHostedZonesByNameResponse>");
    xml_answer(StatusCode::OK, body)
}

fn set_xml(set: &Set) -> String {
    let records: String = set
        .values
        .iter()
        .map(|v| {
            format!(
                "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                xml::escape(v)
            )
        })
        .collect();
    format!(
        "<ResourceRecordSet><Name>{}</Name><Type>{}</Type><TTL>{}</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet>",
        set.name, set.kind, set.ttl
    )
}

fn no_zone(id: &str) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        "NoSuchHostedZone",
        &format!("No hosted zone found with ID: {id}"),
    )
}

fn list_sets(state: &State, id: &str, query: &[(String, String)]) -> Answer {
    let Some(zone) = state.zones.iter().find(|z| z.id == id) else {
        return no_zone(id);
    };
    let name = param(query, "name").map(dotted);
    let kind = param(query, "type");
    if kind.is_some() && name.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Type specified without name",
        );
    }
    let size = page_size(state, query);
    let mut sorted: Vec<&Set> = zone.sets.iter().collect();
    sorted.sort_by_key(|s| (reversed(&s.name), s.kind.clone()));
    let start = (
        name.as_deref().map(reversed).unwrap_or_default(),
        kind.unwrap_or("").to_owned(),
    );
    let rest: Vec<&Set> = sorted
        .into_iter()
        .filter(|s| (reversed(&s.name), s.kind.clone()) >= start)
        .collect();
    let next = rest.get(size);
    let mut body = format!("<ListResourceRecordSetsResponse xmlns=\"{NS}\"><ResourceRecordSets>");
    body += &rest
        .iter()
        .take(size)
        .map(|s| set_xml(s))
        .collect::<String>();
    body += &format!(
        "</ResourceRecordSets><IsTruncated>{}</IsTruncated>",
        next.is_some()
    );
    if let Some(next) = next {
        body += &format!(
            "<NextRecordName>{}</NextRecordName><NextRecordType>{}</NextRecordType>",
            next.name, next.kind
        );
    }
    body += &format!("<MaxItems>{size}</MaxItems></ListResourceRecordSetsResponse>");
    xml_answer(StatusCode::OK, body)
}

/// A TXT value must be one or more quoted strings of at most 255 bytes.
fn valid_txt(value: &str) -> bool {
    let mut rest = value.trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('"') else {
            return false;
        };
        let mut len = 0;
        let mut escaped = false;
        let mut end = None;
        for (at, c) in inner.char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(at);
                    break;
                }
                _ => {}
            }
            len += 1;
        }
        let Some(end) = end.filter(|_| len <= 255) else {
            return false;
        };
        rest = inner[end + 1..].trim_start();
    }
    true
}

fn change(state: &mut State, id: &str, body: &[u8]) -> Answer {
    let invalid = |message: String| error(StatusCode::BAD_REQUEST, "InvalidChangeBatch", &message);
    let text = String::from_utf8_lossy(body);
    if !text.contains(&format!("xmlns=\"{NS}\"")) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "missing the 2013-04-01 namespace",
        );
    }
    let Ok(doc) = xml::parse(&text) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Could not parse the request document",
        );
    };
    let changes: Vec<&xml::Element> = match doc.at(&["ChangeBatch", "Changes"]) {
        Some(changes) if doc.name == "ChangeResourceRecordSetsRequest" => {
            changes.children("Change").collect()
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "Expected a ChangeResourceRecordSetsRequest with a ChangeBatch",
            )
        }
    };
    if changes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "ChangeBatch has no Change",
        );
    }
    if state.busy > 0 {
        state.busy -= 1;
        return error(
            StatusCode::BAD_REQUEST,
            "PriorRequestNotComplete",
            "The request was rejected because Route 53 was still processing a prior request.",
        );
    }
    let Some(zone) = state.zones.iter().find(|z| z.id == id) else {
        return no_zone(id);
    };
    let mut sets = zone.sets.clone();
    for change in changes {
        let action = change.text_at(&["Action"]).unwrap_or("");
        let (Some(name), Some(kind), Some(ttl)) = (
            change.text_at(&["ResourceRecordSet", "Name"]),
            change.text_at(&["ResourceRecordSet", "Type"]),
            change
                .text_at(&["ResourceRecordSet", "TTL"])
                .and_then(|t| t.parse::<u32>().ok()),
        ) else {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "ResourceRecordSet needs Name, Type and TTL",
            );
        };
        let name = dotted(name);
        let values: Vec<String> = change
            .at(&["ResourceRecordSet", "ResourceRecords"])
            .map(|r| {
                r.children("ResourceRecord")
                    .filter_map(|r| r.text_at(&["Value"]))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if values.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidInput",
                "ResourceRecords must hold at least one ResourceRecord",
            );
        }
        if !(name == zone.name || name.ends_with(&format!(".{}", zone.name))) {
            return invalid(format!(
                "[RRSet with DNS name {name} is not permitted in zone {}]",
                zone.name
            ));
        }
        if let Some(bad) = values.iter().find(|v| kind == "TXT" && !valid_txt(v)) {
            return invalid(format!(
                "[Invalid Resource Record: 'FATAL problem: InvalidCharacterString (Value should be enclosed in quotation marks) encountered with '{bad}'']"
            ));
        }
        if values
            .iter()
            .enumerate()
            .any(|(i, v)| values[..i].contains(v))
        {
            return invalid(format!("[Duplicate Resource Record: '{}']", values[0]));
        }
        let at = sets.iter().position(|s| s.name == name && s.kind == kind);
        let new = Set {
            name: name.clone(),
            kind: kind.to_owned(),
            ttl,
            values,
        };
        let what = format!("resource record set [name='{name}', type='{kind}']");
        match (action, at) {
            ("CREATE", Some(_)) => {
                return invalid(format!("[Tried to create {what} but it already exists]"))
            }
            ("CREATE" | "UPSERT", None) => sets.push(new),
            ("UPSERT", Some(at)) => sets[at] = new,
            ("DELETE", None) => {
                return invalid(format!("[Tried to delete {what} but it was not found]"))
            }
            ("DELETE", Some(at)) if sets[at] != new => {
                return invalid(format!(
                "[Tried to delete {what} but the values provided do not match the current values]"
            ))
            }
            ("DELETE", Some(at)) => {
                sets.remove(at);
            }
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInput",
                    &format!("Invalid Action: {action}"),
                )
            }
        }
    }
    if let Some(zone) = state.zones.iter_mut().find(|z| z.id == id) {
        zone.sets = sets;
    }
    state.changes += 1;
    xml_answer(
        StatusCode::OK,
        format!(
            "<ChangeResourceRecordSetsResponse xmlns=\"{NS}\"><ChangeInfo><Id>/change/C{}</Id>\
             <Status>PENDING</Status><SubmittedAt>2024-01-01T00:00:00.000Z</SubmittedAt></ChangeInfo>\
             </ChangeResourceRecordSetsResponse>",
            state.changes
        ),
    )
}
