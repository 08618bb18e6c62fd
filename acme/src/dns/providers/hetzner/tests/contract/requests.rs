//! What a request to the contract server must look like: query
//! parameters, the RRSet a path names, and change bodies, each refused in
//! Hetzner's error shape when it breaks the documented rules.

use serde_json::{Map, Value};

use super::{failure, invalid, not_found, Answer, State, MAX_PER_PAGE, TYPES};
use crate::dns::providers::test_support::{parse_query, Req};

/// Refuses query parameters outside `allowed`; returns (page, per_page).
pub(super) fn paging(req: &Req, allowed: &[&str]) -> Result<(usize, usize), Answer> {
    let (mut page, mut per_page) = (1, 25);
    for (key, value) in &req.query {
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(key, "unknown query parameter"));
        }
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| invalid(key, "is not an integer"))
        };
        match key.as_str() {
            "page" => page = number()?,
            "per_page" => per_page = number()?,
            _ => {}
        }
    }
    if page < 1 {
        return Err(invalid("page", "must be at least 1"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(invalid("per_page", "must be between 1 and 50"));
    }
    Ok((page, per_page))
}

/// The RRSet a path names: (zone id, name, type), checked as documented.
pub(super) fn rrset_key(
    s: &State,
    req: &Req,
    segments: &[&str],
) -> Result<(u64, String, String), Answer> {
    if let Some((key, _)) = req.query.first() {
        return Err(invalid(key, "unknown query parameter"));
    }
    let [_, zone, _, name, kind, ..] = segments else {
        return Err(not_found("route"));
    };
    let zone = decode(zone);
    let Some((id, zone_name)) = s
        .zones
        .iter()
        .find(|(id, n)| zone == id.to_string() || zone == *n)
    else {
        return Err(not_found("zone"));
    };
    let name = decode(name);
    let valid_name = name == "@"
        || (!name.is_empty()
            && !name.ends_with('.')
            && name != *zone_name
            && !name.ends_with(&format!(".{zone_name}"))
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.*".contains(c)));
    if !valid_name {
        return Err(invalid(
            "rr_name",
            "must be lower case, relative to the zone and without a trailing dot",
        ));
    }
    let kind = decode(kind);
    if !TYPES.contains(&kind.as_str()) {
        return Err(invalid("rr_type", "is not a supported type"));
    }
    Ok((*id, name, kind))
}

/// A path segment, percent-decoded (through the query decoder the fakes
/// share).
pub(super) fn decode(segment: &str) -> String {
    parse_query(&format!("s={segment}"))
        .pop()
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The JSON object body of a change, with only `fields`.
pub(super) fn body(req: &Req, fields: &[&str]) -> Result<Map<String, Value>, Answer> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
        return Err(failure(400, "json_error", "invalid JSON in request body"));
    };
    if let Some(key) = body.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(invalid(key, "unknown field"));
    }
    Ok(body)
}

/// `records`: 1 to 50 objects `{"value", "comment"?}` of distinct
/// values, TXT ones quoted; returns the values.
pub(super) fn records(body: &Map<String, Value>, kind: &str) -> Result<Vec<String>, Answer> {
    let Some(records) = body.get("records").and_then(Value::as_array) else {
        return Err(invalid("records", "is required and must be an array"));
    };
    if !(1..=MAX_PER_PAGE).contains(&records.len()) {
        return Err(invalid("records", "must hold 1 to 50 records"));
    }
    let mut values: Vec<String> = Vec::new();
    for record in records {
        let Some(record) = record.as_object() else {
            return Err(invalid("records", "must hold objects"));
        };
        if let Some(key) = record
            .keys()
            .find(|k| !["value", "comment"].contains(&k.as_str()))
        {
            return Err(invalid(&format!("records.{key}"), "unknown field"));
        }
        if record.get("comment").is_some_and(|c| !c.is_string()) {
            return Err(invalid("records.comment", "must be a string"));
        }
        let Some(value) = record.get("value").and_then(Value::as_str) else {
            return Err(invalid("records.value", "is required and must be a string"));
        };
        if kind == "TXT" && !quoted_strings(value) {
            return Err(invalid(
                "records.value",
                "TXT values must be quoted strings of at most 255 characters",
            ));
        }
        if values.iter().any(|v| v == value) {
            return Err(invalid("records", "must only contain distinct values"));
        }
        values.push(value.to_owned());
    }
    Ok(values)
}

/// One or more `"..."` character-strings of at most 255 bytes each,
/// separated by spaces, `\"` and `\\` escaped inside.
pub(super) fn quoted_strings(value: &str) -> bool {
    let mut chars = value.chars().peekable();
    let mut strings = 0;
    while chars.peek().is_some() {
        if strings > 0 && chars.next() != Some(' ') {
            return false;
        }
        if chars.next() != Some('"') {
            return false;
        }
        let mut length = 0;
        loop {
            match chars.next() {
                None => return false,
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some(c) => length += c.len_utf8(),
                    None => return false,
                },
                Some(c) => length += c.len_utf8(),
            }
        }
        if length > 255 {
            return false;
        }
        strings += 1;
    }
    strings > 0
}
