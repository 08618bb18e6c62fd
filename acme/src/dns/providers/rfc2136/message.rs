//! The DNS messages the provider sends (RFC 2136 UPDATEs, SOA queries)
//! and RCODE names.

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::TXT_TTL;

/// An UPDATE for `apex` (RFC 2136 §2.3: the zone section holds the zone's
/// SOA question).
fn update_message(apex: &Name) -> Message {
    let mut message = Message::new();
    message
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Update)
        .set_recursion_desired(false);
    message.add_zone(Query::query(apex.clone(), RecordType::SOA));
    message
}

/// Adds TXT `value` at `name` unless `name` holds a CNAME (RFC 2136 §2.4.3
/// "RRset does not exist": class NONE, TTL 0, no RDATA; §2.5.1 add).
pub(super) fn present_message(apex: &Name, name: Name, value: &str) -> Message {
    let mut message = update_message(apex);
    let mut no_cname = Record::with(name.clone(), RecordType::CNAME, 0);
    no_cname.set_dns_class(DNSClass::NONE);
    message.add_pre_requisite(no_cname);
    message.add_update(Record::from_rdata(
        name,
        TXT_TTL,
        RData::TXT(TXT::new(vec![value.to_owned()])),
    ));
    message
}

/// Deletes exactly TXT `value` at `name` (RFC 2136 §2.5.4: class NONE, TTL 0).
pub(super) fn cleanup_message(apex: &Name, name: Name, value: &str) -> Message {
    let mut message = update_message(apex);
    let mut record = Record::from_rdata(name, 0, RData::TXT(TXT::new(vec![value.to_owned()])));
    record.set_dns_class(DNSClass::NONE);
    message.add_update(record);
    message
}

/// RFC 2136 §2.4.4 "Name Is In Use" on the apex, and no update: changes
/// nothing, but the server checks the key may update the zone.
pub(super) fn apex_in_use(apex: &Name) -> Message {
    let mut message = update_message(apex);
    let mut in_use = Record::with(apex.clone(), RecordType::ANY, 0);
    in_use.set_dns_class(DNSClass::ANY);
    message.add_pre_requisite(in_use);
    message
}

/// A non-recursive SOA query for `name`.
pub(super) fn soa_query(name: Name) -> Message {
    let mut message = Message::new();
    message
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(false)
        .add_query(Query::query(name, RecordType::SOA));
    message
}

/// DNS RCODEs (RFC 1035 §4.1.1, RFC 2136 §2.2) and TSIG errors (RFC 8945
/// §3) by name.
pub(super) mod rcode {
    pub(crate) const NOERROR: u16 = 0;
    pub(crate) const NXDOMAIN: u16 = 3;
    pub(crate) const REFUSED: u16 = 5;
    pub(crate) const YXRRSET: u16 = 7;
    pub(crate) const NOTAUTH: u16 = 9;
    pub(crate) const NOTZONE: u16 = 10;

    pub(crate) fn name(code: u16) -> String {
        let name = match code {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            6 => "YXDOMAIN",
            7 => "YXRRSET",
            8 => "NXRRSET",
            9 => "NOTAUTH",
            10 => "NOTZONE",
            16 => "BADSIG",
            17 => "BADKEY",
            18 => "BADTIME",
            22 => "BADTRUNC",
            other => return format!("RCODE {other}"),
        };
        name.to_owned()
    }
}
