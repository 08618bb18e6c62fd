//! A service's upstreams at run time: pooled HTTP/1.1 clients and round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::Authority;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::model::Service;

/// How long an idle pooled upstream connection is kept.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream address.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 256;

/// The running form of a [`Service`]: what forwarding needs, built once per
/// definition and kept across table swaps so connection pools survive.
#[derive(Debug)]
pub struct Upstreams {
    definition: Service,
    name: Arc<str>,
    /// Parsed once so each request only clones a reference-counted buffer.
    authorities: Vec<Authority>,
    next: AtomicUsize,
    /// One pooled client per data-plane worker (see [`crate::worker`]),
    /// built on first use: a pooled connection is driven by a task on the
    /// worker that opened it, so a request only ever uses its own worker's
    /// connections.
    clients: Box<[OnceLock<UpstreamClient>]>,
}

type UpstreamClient = Client<HttpConnector, Incoming>;

impl Upstreams {
    /// Builds the address list for a validated service, with room for the
    /// connection pools of `workers` data-plane workers.
    pub fn new(definition: Service, workers: usize) -> Self {
        // Validated as host:port by the config crate; an address that still
        // fails to parse is dropped rather than served.
        let authorities = definition
            .upstreams
            .iter()
            .filter_map(|u| u.parse::<Authority>().ok())
            .collect();
        Self {
            name: Arc::from(definition.name.as_str()),
            definition,
            authorities,
            next: AtomicUsize::new(0),
            clients: (0..=workers).map(|_| OnceLock::new()).collect(),
        }
    }

    fn build_client(&self) -> UpstreamClient {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.definition.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            // We always set Host ourselves, to the client's original host.
            .set_host(false)
            .build(connector)
    }

    /// The definition this was built from.
    pub fn definition(&self) -> &Service {
        &self.definition
    }

    /// The service name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The next upstream address, round-robin.
    pub fn pick(&self) -> Option<&Authority> {
        let count = self.authorities.len();
        if count == 0 {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % count;
        self.authorities.get(index)
    }

    /// The current worker's pooled client.
    pub fn client(&self) -> &Client<HttpConnector, Incoming> {
        let slot = crate::worker::slot();
        // A worker index beyond the slots (a table built for fewer workers)
        // shares slot 0 rather than failing the request.
        let cell = match self.clients.get(slot) {
            Some(cell) => cell,
            None => &self.clients[0],
        };
        cell.get_or_init(|| self.build_client())
    }

    /// Time allowed for the response head.
    pub fn response_timeout(&self) -> Duration {
        self.definition.response_timeout
    }
}
