//! What can go wrong while looking at DNS for DNS-01.

use std::net::SocketAddr;
use std::time::Duration;

/// The hint every "cannot see the zone" message ends with.
const RESOLVERS_HINT: &str =
    "set acme.dns_resolvers (or PORTCULLIS_ACME_DNS_RESOLVERS) to resolvers that can see the zone";

/// A failed lookup: zone detection, CNAME following, a TXT query.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// No SOA could be found for the domain or any parent, or a lookup
    /// failed on the way.
    #[error("could not find zone for domain \"{domain}\": {source}; {RESOLVERS_HINT}")]
    ZoneNotFound {
        /// The domain whose zone was looked for.
        domain: String,
        /// What the resolvers answered.
        source: LookupFailure,
    },
    /// The zone was found but its NS records could not be read.
    #[error("could not find the nameservers of zone \"{zone}\" (for domain \"{domain}\"): {source}; {RESOLVERS_HINT}")]
    Nameservers {
        /// The zone.
        zone: String,
        /// The domain whose zone it is.
        domain: String,
        /// What the resolvers answered.
        source: LookupFailure,
    },
    /// A CNAME lookup failed while following `_acme-challenge` delegations.
    #[error("could not follow CNAMEs from \"{name}\" (at \"{at}\"): {source}; {RESOLVERS_HINT}")]
    Cname {
        /// The name the chain starts at.
        name: String,
        /// The name whose CNAME lookup failed.
        at: String,
        /// What the resolvers answered.
        source: LookupFailure,
    },
    /// The CNAME chain is longer than the limit or loops.
    #[error("CNAME chain from \"{name}\" {problem}: {}", chain.join(" -> "))]
    CnameChain {
        /// The name the chain starts at.
        name: String,
        /// `loops` or `is longer than 8 CNAMEs`.
        problem: String,
        /// The names followed, in order.
        chain: Vec<String>,
    },
    /// A TXT query to one server failed.
    #[error("TXT query for \"{name}\" to {server} failed: {source}")]
    Txt {
        /// The server asked.
        server: SocketAddr,
        /// The name asked for.
        name: String,
        /// What happened.
        source: LookupFailure,
    },
    /// The name is not a valid DNS name.
    #[error("\"{name}\" is not a valid domain name: {message}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
    /// The system resolver configuration (`/etc/resolv.conf`) is unreadable.
    #[error("cannot read the system resolver configuration: {message}; set acme.dns_resolvers (or PORTCULLIS_ACME_DNS_RESOLVERS)")]
    SystemConfig {
        /// Why.
        message: String,
    },
}

/// What the resolvers answered when a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupFailure {
    /// An error RCODE, e.g. `SERVFAIL from 10.0.0.2:53`.
    #[error("{rcode} from {servers}")]
    Rcode {
        /// The RCODE's name (`SERVFAIL`, `REFUSED`...).
        rcode: String,
        /// The servers asked.
        servers: String,
    },
    /// No answer in time.
    #[error("no answer from {servers} within {timeout:.1?}")]
    Timeout {
        /// The servers asked.
        servers: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// The walk up the labels found no SOA record.
    #[error("no SOA record for it or any parent domain from {servers}")]
    NoSoa {
        /// The servers asked.
        servers: String,
    },
    /// Anything else (a refused connection, a malformed answer...).
    #[error("{message} (asking {servers})")]
    Other {
        /// What happened.
        message: String,
        /// The servers asked.
        servers: String,
    },
}

/// The propagation check gave up: some nameservers did not show the value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct PropagationTimeout {
    /// The zone checked.
    pub zone: String,
    /// Where the TXT record was expected.
    pub fqdn: String,
    /// The value expected among the TXT values.
    pub value: String,
    /// How long was waited.
    pub waited: Duration,
    /// The servers that did not show the value, with their last answer.
    pub missing: Vec<ServerReport>,
}

/// One server's last answer in a propagation check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReport {
    /// The address asked.
    pub server: SocketAddr,
    /// The NS host name it came from (authoritative checks).
    pub host: Option<String>,
    /// The TXT values returned, or why there were none.
    pub answer: Result<Vec<String>, LookupFailure>,
}

impl PropagationTimeout {
    fn describe(&self) -> String {
        let head = format!(
            "TXT \"{}\" at \"{}\" is not visible on every nameserver of zone \"{}\" after {:.1?}",
            self.value, self.fqdn, self.zone, self.waited
        );
        if self.missing.is_empty() {
            return format!(
                "{head}: the zone lists no nameserver with an address to ask; {RESOLVERS_HINT}"
            );
        }
        let reports: Vec<String> = self.missing.iter().map(ServerReport::describe).collect();
        format!("{head}: {}", reports.join("; "))
    }
}

impl ServerReport {
    fn describe(&self) -> String {
        let who = match &self.host {
            Some(host) => format!("{} ({host})", self.server),
            None => self.server.to_string(),
        };
        match &self.answer {
            Ok(values) if values.is_empty() => format!("{who} returned no TXT record"),
            Ok(values) => format!("{who} returned {values:?}"),
            Err(failure) => format!("{who} failed: {failure}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_domain_the_cause_and_the_fix() {
        let error = ResolveError::ZoneNotFound {
            domain: "_acme-challenge.www.example.com".into(),
            source: LookupFailure::Rcode {
                rcode: "SERVFAIL".into(),
                servers: "10.0.0.2:53".into(),
            },
        };
        assert_eq!(
            error.to_string(),
            "could not find zone for domain \"_acme-challenge.www.example.com\": SERVFAIL from \
             10.0.0.2:53; set acme.dns_resolvers (or PORTCULLIS_ACME_DNS_RESOLVERS) to resolvers \
             that can see the zone"
        );
        let chain = ResolveError::CnameChain {
            name: "a.test".into(),
            problem: "loops".into(),
            chain: vec!["a.test".into(), "b.test".into(), "a.test".into()],
        };
        assert_eq!(
            chain.to_string(),
            "CNAME chain from \"a.test\" loops: a.test -> b.test -> a.test"
        );
    }

    #[test]
    fn propagation_timeouts_say_what_each_server_returned() {
        let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let timeout = PropagationTimeout {
            zone: "test".into(),
            fqdn: "_acme-challenge.test".into(),
            value: "v".into(),
            waited: Duration::from_secs(2),
            missing: vec![
                ServerReport {
                    server,
                    host: Some("ns1.test".into()),
                    answer: Ok(vec!["old".into()]),
                },
                ServerReport {
                    server,
                    host: None,
                    answer: Ok(vec![]),
                },
            ],
        };
        assert_eq!(
            timeout.to_string(),
            "TXT \"v\" at \"_acme-challenge.test\" is not visible on every nameserver of zone \
             \"test\" after 2.0s: 127.0.0.1:53 (ns1.test) returned [\"old\"]; 127.0.0.1:53 \
             returned no TXT record"
        );
    }
}
