//! The `portcullis` binary: CLI, runtime, signals, and wiring of the crates.

mod certs_cmd;
mod client;
mod dns_cmd;
mod plans_cmd;
mod serve;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portcullis_config::Settings;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: the request path allocates and frees
/// small buffers and futures on every request, from several threads, where
/// glibc's arenas showed as several percent of the proxy's CPU. Built
/// without transparent huge pages (`no_thp`): with them an idle proxy held
/// twice the memory (31 MiB against 16 MiB) for no measurable speed-up.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An edge proxy that terminates TLS, routes by host and path, and manages its own certificates.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the embedded default when no --config is given).
    Serve {
        /// TOML settings file; every key has a default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a settings file and exit.
    CheckConfig {
        /// TOML settings file.
        file: PathBuf,
    },
    /// Certificates on the running server.
    Certs {
        #[command(subcommand)]
        command: certs_cmd::CertsCommand,
        #[command(flatten)]
        target: client::Target,
    },
    /// Publish a service on a public hostname (a plan; see `plans`).
    Expose {
        #[command(flatten)]
        args: plans_cmd::ExposeArgs,
        #[command(flatten)]
        target: client::Target,
    },
    /// Plans awaiting approval, running, done.
    Plans {
        #[command(subcommand)]
        command: plans_cmd::PlansCommand,
        #[command(flatten)]
        target: client::Target,
    },
    /// The routes monitor: certificates, host rules, routers, public URLs.
    Routes {
        #[command(flatten)]
        target: client::Target,
    },
    /// Admin API tokens.
    Token {
        #[command(subcommand)]
        command: plans_cmd::TokenCommand,
        #[command(flatten)]
        target: client::Target,
    },
    /// DNS provider credentials for dns-01.
    DnsCredentials {
        #[command(subcommand)]
        command: dns_cmd::CredentialsCommand,
        #[command(flatten)]
        target: client::Target,
    },
    /// Diagnostics.
    Doctor {
        #[command(subcommand)]
        command: DoctorCommand,
        #[command(flatten)]
        target: client::Target,
    },
    /// Write the rendered tenant state, one deterministic file per tenant.
    Export {
        /// Directory to write into.
        #[arg(long)]
        dir: PathBuf,
        /// Commit the change in that directory (a Git repository, created if needed).
        #[arg(long)]
        git: bool,
        #[command(flatten)]
        target: client::Target,
    },
    /// The internal CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
        #[command(flatten)]
        target: client::Target,
    },
}

#[derive(Debug, Subcommand)]
enum DoctorCommand {
    /// What DNS-01 sees for NAME: zone, nameservers, their _acme-challenge TXT answers, CNAME and A records.
    Dns {
        /// The name a certificate is wanted for.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Print the internal CA's root certificate (PEM), for clients to trust.
    Export,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config.as_deref()),
        Command::CheckConfig { file } => check_config(&file),
        Command::Certs { command, target } => {
            client_runtime().and_then(|rt| rt.block_on(certs_cmd::run(command, &target)))
        }
        Command::Expose { args, target } => {
            client_runtime().and_then(|rt| rt.block_on(plans_cmd::expose(args, &target)))
        }
        Command::Plans { command, target } => {
            client_runtime().and_then(|rt| rt.block_on(plans_cmd::plans(command, &target)))
        }
        Command::Routes { target } => {
            client_runtime().and_then(|rt| rt.block_on(plans_cmd::routes(&target)))
        }
        Command::Token { command, target } => {
            client_runtime().and_then(|rt| rt.block_on(plans_cmd::token(command, &target)))
        }
        Command::DnsCredentials { command, target } => {
            client_runtime().and_then(|rt| rt.block_on(dns_cmd::credentials(command, &target)))
        }
        Command::Doctor {
            command: DoctorCommand::Dns { name },
            target,
        } => target
            .settings()
            .and_then(|mut settings| {
                apply_environment(&mut settings)?;
                Ok(settings)
            })
            .and_then(|settings| {
                client_runtime().and_then(|rt| rt.block_on(dns_cmd::doctor_dns(&name, &settings)))
            }),
        Command::Export { dir, git, target } => {
            client_runtime().and_then(|rt| rt.block_on(export(&dir, git, &target)))
        }
        Command::Ca {
            command: CaCommand::Export,
            target,
        } => client_runtime().and_then(|rt| rt.block_on(certs_cmd::export_ca(&target))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(file)?;
    println!(
        "{}: ok (web {}, websecure {}, admin {}, dynamic {})",
        file.display(),
        settings.web_address,
        settings.websecure_address,
        settings.admin_address,
        settings.dynamic_dir.display()
    );
    Ok(())
}

fn serve(config: Option<&Path>) -> anyhow::Result<()> {
    let mut settings = match config {
        Some(path) => Settings::load(path)?,
        None => Settings::embedded(),
    };
    apply_environment(&mut settings)?;
    init_logging(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(serve::run(settings))
}

async fn export(dir: &Path, git: bool, target: &client::Target) -> anyhow::Result<()> {
    let settings = target.settings()?;
    let tenants = settings
        .tenants
        .clone()
        .context("tenant domains are not configured (tenants.canonical_base); nothing to export")?;
    let store = serve::open_store(&settings)?;
    let changed = portcullis_admin::tenants::export::export(store.as_ref(), &tenants, dir, git)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    if changed.is_empty() {
        println!("{}: up to date", dir.display());
    } else {
        println!("{}: {}", dir.display(), changed.join(", "));
    }
    Ok(())
}

/// Environment overrides, for containers and split-horizon hosts.
fn apply_environment(settings: &mut Settings) -> anyhow::Result<()> {
    if let Ok(value) = std::env::var("PORTCULLIS_ACME_DNS_RESOLVERS") {
        let entries: Vec<&str> = value.split(',').collect();
        settings.acme.dns_resolvers = portcullis_config::settings::acme::parse_resolvers(&entries)
            .map_err(|e| anyhow::anyhow!("PORTCULLIS_ACME_DNS_RESOLVERS: {e}"))?;
    }
    if let Ok(value) = std::env::var("PORTCULLIS_ACME_DISABLE_PROPAGATION_CHECK") {
        settings.acme.disable_propagation_check = match value.as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => anyhow::bail!(
                "PORTCULLIS_ACME_DISABLE_PROPAGATION_CHECK: \"{other}\" is not true or false"
            ),
        };
    }
    Ok(())
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) => EnvFilter::try_new(filter).context("RUST_LOG is not a valid log filter")?,
        Err(_) => EnvFilter::try_new(&settings.log_filter).with_context(|| {
            format!(
                "log.filter \"{}\" is not a valid filter",
                settings.log_filter
            )
        })?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if settings.log_json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    Ok(())
}
