//! Router templates: the layouts the expose operation creates routers from.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Mtls;

/// One router of a template.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRoute {
    /// Appended to the router name: `expose-<host>-<suffix>`.
    pub suffix: String,
    /// Path prefix.
    #[serde(default = "root")]
    pub path_prefix: String,
    /// A named service; `None` = the exposed backend.
    #[serde(default)]
    pub service: Option<String>,
    /// Client-certificate policy (needs `admin.mtls_client_ca`).
    #[serde(default)]
    pub mtls: Mtls,
    /// Priority among equal prefixes.
    #[serde(default)]
    pub priority: i32,
}

fn root() -> String {
    "/".to_owned()
}

/// A named list of routers.
pub type RouterTemplate = Vec<TemplateRoute>;

/// Name of the default template: one catch-all router.
pub const SINGLE: &str = "single";
/// Name of the nine-router operator-platform layout.
pub const PLATFORM: &str = "platform";

fn route(suffix: &str, path_prefix: &str, mtls: Mtls) -> TemplateRoute {
    TemplateRoute {
        suffix: suffix.to_owned(),
        path_prefix: path_prefix.to_owned(),
        service: None,
        mtls,
        priority: 0,
    }
}

/// The built-in templates.
pub fn built_in() -> BTreeMap<String, RouterTemplate> {
    let mut templates = BTreeMap::new();
    templates.insert(SINGLE.to_owned(), vec![route("main", "/", Mtls::Off)]);
    templates.insert(
        PLATFORM.to_owned(),
        vec![
            route("api", "/api", Mtls::Off),
            route("agent", "/agent", Mtls::Off),
            route("cable", "/cable", Mtls::Off),
            route("internal", "/internal", Mtls::Required),
            route("worker", "/worker", Mtls::Required),
            route("federation", "/federation", Mtls::Required),
            route("node", "/node", Mtls::Required),
            route("health", "/healthz", Mtls::Off),
            route("frontend", "/", Mtls::Off),
        ],
    );
    templates
}
