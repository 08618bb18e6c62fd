//! The Portcullis control plane: the admin HTTP API.
//!
//! Health and metrics for orchestrators; the certificate API; the expose
//! operation with approval plans; the routes monitor; tokens with
//! permissions (stored hashed); the audit log.

mod api_error;
mod audit;
mod certificates;
mod dns_credentials;
mod error;
mod executor;
mod expose;
mod health;
mod ingress;
mod json;
mod metrics;
mod openapi;
mod plans;
mod plans_api;
mod server;
pub mod tenants;
pub mod tokens;
mod tokens_api;

pub use error::Error;
pub use server::{AdminConfig, AdminServer, AdminState};
