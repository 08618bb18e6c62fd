//! End-to-end tests: the real `portcullis` binary (or the real data plane
//! in-process where a test must drive swaps itself), real sockets on
//! loopback, real TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod acme;
mod admin;
mod config_errors;
mod dns01;
mod dns_rfc2136;
mod file_provider;
mod forwarding;
mod header_timeout;
mod hot_swap;
mod http1;
mod http2;
mod idle;
mod logs;
mod mtls;
mod openapi;
mod shutdown;
mod store_routes;
mod tenants;
mod tls;
