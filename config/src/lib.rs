//! Portcullis settings, desired-state model and state store.
//!
//! This crate sits at the bottom of the workspace: it depends on no other
//! Portcullis crate, so every other crate can share its types. It holds three
//! things:
//!
//! * [`settings`]: the static TOML configuration, parsed in three stages
//!   (serde → validation → typed [`Settings`]) so that a bad file is refused at
//!   boot, not under traffic;
//! * [`model`]: the desired state the data plane is built from (services,
//!   routers, certificates), and [`dynamic`], the file provider's TOML format for it;
//! * [`store`]: the [`Store`] trait that persists desired state, with the
//!   embedded SQLite implementation.

mod duration;
mod error;

pub mod dynamic;
pub mod histogram;
pub mod model;
pub mod settings;
pub mod store;

pub use duration::{format_duration, parse_duration};
pub use error::Error;
pub use settings::Settings;
pub use store::{SqliteStore, Store};
