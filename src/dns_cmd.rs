//! `portcullis dns-credentials …` and `portcullis doctor dns NAME`.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde_json::{json, Map, Value};

use crate::client::Target;

const BASE: &str = "/api/v1/acme/dns-credentials";

#[derive(Debug, Subcommand)]
pub(crate) enum CredentialsCommand {
    /// Store a credential and validate it.
    Add {
        /// Name for it.
        #[arg(long)]
        name: String,
        /// cloudflare, route53, gcloud, digitalocean, hetzner, porkbun, ovh, rfc2136.
        #[arg(long)]
        provider: String,
        /// A plain setting, KEY=VALUE (repeat), e.g. base_url=…, server=…, key_name=….
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// A secret read from an environment variable, KEY=ENV_VAR (repeat):
        /// keeps it out of shell history and the process list.
        #[arg(long = "secret-env", value_name = "KEY=ENV_VAR")]
        secret_env: Vec<String>,
        /// A secret given inline, KEY=VALUE (repeat; visible in the process list).
        #[arg(long = "secret", value_name = "KEY=VALUE")]
        secret: Vec<String>,
    },
    /// List credentials and their status.
    List,
    /// Test a credential against its provider now.
    Validate {
        /// Credential id.
        id: String,
    },
    /// Remove a credential and its secrets.
    Remove {
        /// Credential id.
        id: String,
    },
}

fn pairs(entries: &[String], what: &str) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for entry in entries {
        let (key, value) = entry
            .split_once('=')
            .with_context(|| format!("{what} \"{entry}\" is not KEY=VALUE"))?;
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

pub(crate) async fn credentials(
    command: CredentialsCommand,
    target: &Target,
) -> anyhow::Result<()> {
    let client = target.connect()?;
    match command {
        CredentialsCommand::Add {
            name,
            provider,
            settings,
            secret_env,
            secret,
        } => {
            let mut secrets = pairs(&secret, "--secret")?;
            for entry in &secret_env {
                let (key, var) = entry
                    .split_once('=')
                    .with_context(|| format!("--secret-env \"{entry}\" is not KEY=ENV_VAR"))?;
                let value = std::env::var(var)
                    .with_context(|| format!("--secret-env {key}: ${var} is not set"))?;
                secrets.insert(key.to_owned(), Value::String(value));
            }
            let body = json!({"name": name, "provider": provider, "config": pairs(&settings, "--setting")?, "secrets": secrets});
            let record = client.post(BASE, Some(body)).await?;
            print_credential(&record);
            if record["status"] != "valid" {
                bail!(
                    "stored, but the provider refused it: {}",
                    record["status_message"].as_str().unwrap_or("no message")
                );
            }
        }
        CredentialsCommand::List => {
            let list = client.get(BASE).await?;
            println!(
                "{:<24}  {:<20}  {:<12}  {:<11}  ZONES",
                "ID", "NAME", "PROVIDER", "STATUS"
            );
            for record in list["credentials"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
            {
                print_credential(record);
            }
        }
        CredentialsCommand::Validate { id } => {
            let record = client.post(&format!("{BASE}/{id}/validate"), None).await?;
            print_credential(&record);
            if record["status"] != "valid" {
                bail!("{}", record["status_message"].as_str().unwrap_or("invalid"));
            }
        }
        CredentialsCommand::Remove { id } => {
            client.delete(&format!("{BASE}/{id}")).await?;
            println!("{id} removed");
        }
    }
    Ok(())
}

fn print_credential(record: &Value) {
    let zones: Vec<&str> = record["zones"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "{:<24}  {:<20}  {:<12}  {:<11}  {}",
        record["id"].as_str().unwrap_or_default(),
        record["name"].as_str().unwrap_or_default(),
        record["provider"].as_str().unwrap_or_default(),
        record["status"].as_str().unwrap_or_default(),
        zones.join(",")
    );
    if let Some(message) = record["status_message"].as_str() {
        println!("  {message}");
    }
}

/// `portcullis doctor dns NAME`: what DNS-01 would see for NAME.
pub(crate) async fn doctor_dns(
    name: &str,
    settings: &portcullis_config::Settings,
) -> anyhow::Result<()> {
    use portcullis_acme::dns::resolver::Resolver;
    let resolvers = &settings.acme.dns_resolvers;
    let resolver = Resolver::new(resolvers)?;
    let base = name
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    println!("name:            {base}");
    println!(
        "resolvers:       {}",
        if resolvers.is_empty() {
            "system (set acme.dns_resolvers or PORTCULLIS_ACME_DNS_RESOLVERS to change)".to_owned()
        } else {
            resolvers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let challenge = format!("_acme-challenge.{base}");
    let target = match resolver.resolve_cname_chain(&challenge).await {
        Ok(target) => target,
        Err(error) => {
            println!("{challenge}: {error}");
            challenge.clone()
        }
    };
    if target != challenge {
        println!("delegation:      {challenge} CNAME -> {target} (TXT records are written there)");
    }
    let zone = match resolver.find_zone(&target).await {
        Ok(zone) => zone,
        Err(error) => bail!("{error}"),
    };
    println!("zone:            {}", zone.name);
    println!("nameservers:");
    for (host, addresses) in &zone.nameservers {
        let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        println!(
            "  {host} ({})",
            if addresses.is_empty() {
                "no address".to_owned()
            } else {
                addresses.join(", ")
            }
        );
    }
    let servers: Vec<std::net::SocketAddr> = if resolvers.is_empty() {
        zone.nameservers
            .iter()
            .flat_map(|(_, addresses)| {
                addresses
                    .iter()
                    .map(|ip| std::net::SocketAddr::new(*ip, 53))
            })
            .collect()
    } else {
        resolvers.clone()
    };
    println!("TXT {target}:");
    for server in servers {
        match resolver.txt_at(server, &target).await {
            Ok(values) if values.is_empty() => println!("  {server}: (none)"),
            Ok(values) => println!(
                "  {server}: {}",
                values
                    .iter()
                    .map(|v| format!("\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Err(error) => println!("  {server}: {error}"),
        }
    }
    match resolver.resolve_cname_chain(&base).await {
        Ok(final_name) if final_name != base => println!("CNAME {base} -> {final_name}"),
        Ok(_) => println!("CNAME {base}: (none)"),
        Err(error) => println!("CNAME {base}: {error}"),
    }
    match resolver.addresses(&base).await {
        Ok(addresses) if addresses.is_empty() => println!("A/AAAA {base}: (none)"),
        Ok(addresses) => println!(
            "A/AAAA {base}: {}",
            addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(error) => println!("A/AAAA {base}: {error}"),
    }
    Ok(())
}
