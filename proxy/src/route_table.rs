//! The route table: host → longest path prefix → highest priority → service.
//!
//! Built whole from a [`DesiredState`] off the request path and swapped in
//! atomically; lookups borrow from the snapshot and allocate nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use portcullis_config::model::{DesiredState, Entrypoint, HostPattern, Mtls, Router};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::metrics::RouteMetrics;
use crate::route_plan;
use crate::upstream::Upstreams;
use crate::Error;

/// One router, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// The router's name, for logs.
    pub router: Arc<str>,
    /// Requests whose path starts with this match.
    pub path_prefix: Box<str>,
    /// Tie-breaker among equal prefixes; higher wins.
    pub priority: i32,
    /// Client-certificate policy.
    pub mtls: Mtls,
    /// Verifies client certificates against this router's CA (mtls != off).
    pub client_auth: Option<Arc<dyn ClientCertVerifier>>,
    /// Where matching requests go.
    pub upstreams: Arc<Upstreams>,
    /// Counters, kept across table swaps.
    pub metrics: Arc<RouteMetrics>,
    /// Headers set on every forwarded request.
    pub request_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// One route of a host, with its path prefix beside it: in a big table a
/// lookup then decides without reading the route itself (one cache miss
/// fewer), and a root prefix without reading any string.
#[derive(Debug)]
struct Entry {
    prefix: Box<str>,
    route: Arc<Route>,
}

impl Entry {
    fn matches(&self, path: &str) -> bool {
        // Prefixes start with '/' (validated), so "/" matches every
        // origin-form path by its first byte.
        if self.prefix.len() == 1 {
            return path.as_bytes().first() == Some(&b'/');
        }
        path.starts_with(&*self.prefix)
    }
}

/// Routes of one host, most specific first.
type RouteList = Vec<Entry>;

fn first_match<'a>(list: &'a RouteList, path: &str) -> Option<&'a Arc<Route>> {
    list.iter().find(|e| e.matches(path)).map(|e| &e.route)
}

/// Routes of one entrypoint by host.
///
/// Hashed with foldhash (seeded per process) rather than SipHash: every
/// request's host is hashed once or twice, and in a table of 100k hosts
/// SipHash was a large part of the lookup.
#[derive(Debug, Default)]
struct HostMap {
    exact: HostIndex,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HostIndex,
}

type HostIndex = HashMap<Box<str>, RouteList, foldhash::fast::RandomState>;

impl HostMap {
    fn insert(&mut self, host: &HostPattern, route: &Arc<Route>) {
        let list = match host {
            HostPattern::Exact(name) => self.exact.entry(name.as_str().into()).or_default(),
            HostPattern::Wildcard(parent) => {
                self.wildcard.entry(parent.as_str().into()).or_default()
            }
        };
        list.push(Entry {
            prefix: route.path_prefix.clone(),
            route: Arc::clone(route),
        });
    }

    fn sort(&mut self) {
        for list in self.exact.values_mut().chain(self.wildcard.values_mut()) {
            list.sort_by(|a, b| {
                let (a, b) = (&a.route, &b.route);
                b.path_prefix
                    .len()
                    .cmp(&a.path_prefix.len())
                    .then(b.priority.cmp(&a.priority))
                    .then_with(|| a.router.cmp(&b.router))
            });
        }
    }

    fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        if let Some(route) = self
            .exact
            .get(host)
            .and_then(|list| first_match(list, path))
        {
            return Some(route);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard
            .get(parent)
            .and_then(|list| first_match(list, path))
    }

    fn has_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
            || host
                .split_once('.')
                .is_some_and(|(_, parent)| self.wildcard.contains_key(parent))
    }
}

/// Every route of both entrypoints, plus the client CAs they need.
#[derive(Debug, Default)]
pub struct RouteTable {
    web: HostMap,
    websecure: HostMap,
    services: HashMap<Box<str>, Arc<Upstreams>>,
    metrics: HashMap<Arc<str>, Arc<RouteMetrics>>,
    client_roots: Option<Arc<RootCertStore>>,
}

impl RouteTable {
    /// Builds a table from a merged desired state.
    ///
    /// Services whose definition is unchanged since `previous` keep their
    /// running [`Upstreams`] (and so their pooled connections).
    pub fn build(
        state: &DesiredState,
        serving: &HashSet<String>,
        previous: Option<&RouteTable>,
        provider: &Arc<CryptoProvider>,
        workers: usize,
    ) -> Result<Self, Error> {
        let mut table = Self::default();
        for (name, service) in &state.services {
            let reused = previous
                .and_then(|p| p.services.get(name.as_str()))
                .filter(|u| u.definition() == service)
                .map(Arc::clone);
            let upstreams =
                reused.unwrap_or_else(|| Arc::new(Upstreams::new(service.clone(), workers)));
            table.services.insert(name.as_str().into(), upstreams);
        }
        let mut all_roots = RootCertStore::empty();
        for planned in route_plan::plan(state, serving) {
            if !planned.live {
                continue;
            }
            let router = planned.router;
            let Some(upstreams) = table.services.get(router.service.as_str()) else {
                return Err(portcullis_config::Error::Model {
                    kind: "router",
                    name: router.name.clone(),
                    message: format!("refers to unknown service \"{}\"", router.service),
                }
                .into());
            };
            let client_auth = match (&router.client_ca_pem, router.mtls) {
                (Some(pem), Mtls::Optional | Mtls::Required) => {
                    let roots = client_roots(router, pem)?;
                    all_roots.roots.extend(roots.roots.iter().cloned());
                    Some(client_verifier(router, roots, provider)?)
                }
                _ => None,
            };
            let name: Arc<str> = Arc::from(router.name.as_str());
            let metrics = previous
                .and_then(|p| p.metrics.get(&name))
                .map_or_else(|| Arc::new(RouteMetrics::new(workers)), Arc::clone);
            table
                .metrics
                .insert(Arc::clone(&name), Arc::clone(&metrics));
            let request_headers = router
                .request_headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((
                        http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                        http::HeaderValue::from_str(value).ok()?,
                    ))
                })
                .collect();
            let route = Arc::new(Route {
                request_headers,
                metrics,
                router: name,
                path_prefix: router.path_prefix.as_str().into(),
                priority: router.priority,
                mtls: router.mtls,
                client_auth,
                upstreams: Arc::clone(upstreams),
            });
            let map = match router.entrypoint {
                Entrypoint::Web => &mut table.web,
                Entrypoint::Websecure => &mut table.websecure,
            };
            for host in &router.hosts {
                let pattern = HostPattern::parse(host).map_err(|message| {
                    portcullis_config::Error::Model {
                        kind: "router",
                        name: router.name.clone(),
                        message,
                    }
                })?;
                map.insert(&pattern, &route);
            }
        }
        table.web.sort();
        table.websecure.sort();
        if !all_roots.is_empty() {
            table.client_roots = Some(Arc::new(all_roots));
        }
        Ok(table)
    }

    /// The route for a lower-case host and a path on one entrypoint.
    pub fn lookup(&self, entrypoint: Entrypoint, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.map(entrypoint).lookup(host, path)
    }

    /// True when any router of `entrypoint` serves `host`.
    pub fn serves_host(&self, entrypoint: Entrypoint, host: &str) -> bool {
        self.map(entrypoint).has_host(host)
    }

    /// Every live router's counters.
    pub fn route_metrics(&self) -> impl Iterator<Item = (&str, &RouteMetrics)> {
        self.metrics
            .iter()
            .map(|(name, metrics)| (&**name, &**metrics))
    }

    /// The union of every router's client CAs, for the handshake.
    pub fn client_roots(&self) -> Option<&Arc<RootCertStore>> {
        self.client_roots.as_ref()
    }

    fn map(&self, entrypoint: Entrypoint) -> &HostMap {
        match entrypoint {
            Entrypoint::Web => &self.web,
            Entrypoint::Websecure => &self.websecure,
        }
    }
}

fn client_roots(router: &Router, pem: &str) -> Result<RootCertStore, Error> {
    let fail = |message: String| Error::ClientCa {
        router: router.name.clone(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| fail(format!("not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("the file holds no CERTIFICATE block".into()));
    }
    Ok(roots)
}

fn client_verifier(
    router: &Router,
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::ClientCa {
            router: router.name.clone(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
