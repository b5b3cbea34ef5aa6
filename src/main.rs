//! The `keystone-proxy` command.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use keystone_proxy::config::{self, ConfigSource, Overrides, Settings};
use keystone_proxy::{clients, commands, connector, demo, proxy::Proxy, server};

#[derive(Parser)]
#[command(
    name = "keystone-proxy",
    version,
    about = "Authenticating reverse proxy and token broker for OpenStack"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `keystone-proxy` with no subcommand serves.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Serve(ServeArgs),
    /// Validate the configuration and print it resolved, secrets redacted.
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print a new random local key and the sha256 to put in the config.
    GenKey,
    /// Log in once and print the token (like `openstack token issue`).
    Token(OneShotArgs),
    /// Print the service catalog as a table (like `openstack catalog list`).
    Catalog(OneShotArgs),
    /// Run the proxy against a fake Keystone and upstream started in the same
    /// process (config/demo.toml), to try it without a cloud.
    Demo {
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
        log_format: LogFormat,
    },
}

#[derive(clap::Args)]
struct OneShotArgs {
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The cloud (default: the only one configured).
    #[arg(long, value_name = "NAME")]
    cloud: Option<String>,
    /// A project name or id (default: the cloud's own project).
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// TOML configuration (default: config/keystone-proxy.toml if present).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Listen address, overriding `listen.address` (IP:PORT).
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum LogFormat {
    Json,
    #[default]
    Pretty,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keystone-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve, None),
        Some(Command::Serve(args)) => serve(args, None),
        Some(Command::CheckConfig { config }) => {
            let settings = load(config.as_deref(), &Overrides::default())?;
            println!("{settings:#?}");
            Ok(())
        }
        Some(Command::GenKey) => {
            let (key, hash) = clients::generate_key();
            println!("key:        {key}");
            println!("key_sha256: {hash}");
            Ok(())
        }
        Some(Command::Token(args)) => {
            one_shot(args, |issued| print!("{}", commands::token_table(issued)))
        }
        Some(Command::Catalog(args)) => {
            one_shot(args, |issued| print!("{}", commands::catalog_table(issued)))
        }
        Some(Command::Demo { listen, log_format }) => serve(
            ServeArgs {
                config: None,
                listen,
                log_format,
            },
            Some(demo::CONFIG),
        ),
    }
}

/// Log in once, show the result.
fn one_shot(
    args: OneShotArgs,
    show: impl FnOnce(&keystone_proxy::keystone::IssuedToken),
) -> anyhow::Result<()> {
    connector::install_crypto_provider();
    let settings = load(args.config.as_deref(), &Overrides::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let issued = runtime
        .block_on(commands::issue(
            &settings,
            args.cloud.as_deref(),
            args.project.as_deref(),
        ))
        .map_err(anyhow::Error::msg)?;
    show(&issued);
    Ok(())
}

fn load(path: Option<&std::path::Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
    let source = match path {
        Some(path) => ConfigSource::File(path),
        None => ConfigSource::Default,
    };
    Ok(config::load(source, overrides)?)
}

fn serve(args: ServeArgs, embedded: Option<&str>) -> anyhow::Result<()> {
    init_logging(args.log_format);
    connector::install_crypto_provider();
    let overrides = Overrides {
        listen: args.listen,
    };
    let settings = match embedded {
        Some(text) => config::load(
            ConfigSource::Embedded {
                name: "config/demo.toml",
                text,
            },
            &overrides,
        )?,
        None => load(args.config.as_deref(), &overrides)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let _fakes = match embedded {
            Some(_) => Some(demo::start_fakes().await.context(
                "starting the demo's fake Keystone (127.0.0.1:15000) and upstream (127.0.0.1:15001)",
            )?),
            None => None,
        };
        let proxy = Arc::new(Proxy::new(&settings).map_err(anyhow::Error::msg)?);
        let listener = tokio::net::TcpListener::bind(settings.listen.address)
            .await
            .with_context(|| format!("listening on {}", settings.listen.address))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, clouds = settings.clouds.len(), clients = settings.clients.len(), "listening");
        // Tests and scripts wait for this line on stdout to learn the port.
        println!("keystone-proxy listening on http://{addr}");
        if embedded.is_some() {
            println!(
                "try: curl -H 'Authorization: Bearer {}' http://{addr}/compute/servers",
                demo::KEY
            );
        }
        server::serve(listener, proxy, server::stop_signal()).await;
        anyhow::Ok(())
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
