//! The `keystone-proxy` command.
#![deny(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use keystone_proxy::config::{self, ConfigSource, Overrides};
use keystone_proxy::{clients, commands, connector, demo, server, session_keys};

/// Every request allocates a little (headers, futures, buffers); glibc's
/// malloc was a seventh of the proxy's instructions per request, mimalloc's
/// thread-local free lists make those allocations cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
        config: Option<PathBuf>,
    },
    /// Print a new random local key and the sha256 to put in the config.
    GenKey,
    /// Rotate the session keys in DIR (`token.session_keys`) as
    /// `keystone-manage fernet_rotate` does: the staged key 0 becomes the
    /// sealing key, a new staged 0 is written (mode 0600). Made if missing.
    GenSessionKey {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Log in once and print the token (like `openstack token issue`).
    Token(OneShotArgs),
    /// Print the service catalog as a table (like `openstack catalog list`).
    Catalog(OneShotArgs),
    /// Exit 0 if the proxy answers 200 on /healthz (a HEALTHCHECK for
    /// images without curl): on the admin listener of the configuration
    /// `serve` would read, else on its proxy listener; or at --url.
    Healthcheck {
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        #[arg(long, value_name = "FILE", env = CONFIG_ENV, conflicts_with = "url")]
        config: Option<PathBuf>,
    },
    /// Run the proxy against a fake Keystone and upstream started in the same
    /// process (config/demo.toml), to try it without a cloud.
    Demo {
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
        log_format: LogFormat,
    },
}

/// `--config` may also come from the environment (handy in containers).
const CONFIG_ENV: &str = "KEYSTONE_PROXY_CONFIG";

#[derive(clap::Args)]
struct OneShotArgs {
    #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
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
    #[arg(long, value_name = "FILE", env = CONFIG_ENV)]
    config: Option<PathBuf>,
    /// Listen address, overriding `listen.address` (IP:PORT or unix:/path).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum LogFormat {
    Json,
    #[default]
    Pretty,
}

/// The `--config` flag as a configuration source.
fn from_flag(config: Option<PathBuf>) -> ConfigSource<'static> {
    config.map_or(ConfigSource::Default, ConfigSource::File)
}

/// The demo's configuration, compiled in.
fn demo_config(_: Option<PathBuf>) -> ConfigSource<'static> {
    ConfigSource::Embedded {
        name: "config/demo.toml",
        text: demo::CONFIG,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keystone-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => serve(cli.serve, from_flag),
        Some(Command::Serve(args)) => serve(args, from_flag),
        Some(Command::Demo { listen, log_format }) => serve(
            ServeArgs {
                config: None,
                listen,
                log_format,
            },
            demo_config,
        ),
        Some(Command::CheckConfig { config }) => {
            let settings = config::load(from_flag(config), &Overrides::default())?;
            if let Some(keys) = &settings.token.session_keys {
                session_keys::SessionKeys::load(keys)?;
            }
            for warning in &settings.warnings {
                eprintln!("keystone-proxy: warning: {warning}");
            }
            println!("{settings:#?}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::GenKey) => {
            let (key, hash) = clients::generate_key();
            println!("key:        {key}");
            println!("key_sha256: {hash}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::GenSessionKey { dir }) => {
            let rotated = session_keys::rotate(&dir)?;
            match rotated.promoted {
                Some(promoted) => {
                    println!("sealing key: {}", promoted.display());
                    println!("staged key:  {}", rotated.staged.display());
                }
                None => println!("staged key:  {}", rotated.staged.display()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Token(args)) => {
            one_shot(args, |issued| print!("{}", commands::token_table(issued)))
        }
        Some(Command::Catalog(args)) => {
            one_shot(args, |issued| print!("{}", commands::catalog_table(issued)))
        }
        Some(Command::Healthcheck { url, config }) => {
            connector::install_crypto_provider();
            let probe = match url {
                Some(url) => commands::Probe::Url(url),
                None => {
                    commands::own_probe(&config::load(from_flag(config), &Overrides::default())?)
                }
            };
            let runtime = current_thread_runtime()?;
            match runtime.block_on(commands::healthcheck(&probe)) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(problem) => {
                    let problem = keystone_proxy::error::with_causes(&problem);
                    eprintln!("keystone-proxy: {probe}: {problem}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Log in once, show the result.
fn one_shot(
    args: OneShotArgs,
    show: impl FnOnce(&keystone_proxy::keystone::IssuedToken),
) -> anyhow::Result<ExitCode> {
    connector::install_crypto_provider();
    let settings = config::load(from_flag(args.config), &Overrides::default())?;
    let issued = current_thread_runtime()?.block_on(commands::issue(
        &settings,
        args.cloud.as_deref(),
        args.project.as_deref(),
    ))?;
    show(&issued);
    Ok(ExitCode::SUCCESS)
}

fn serve(
    args: ServeArgs,
    source: impl FnOnce(Option<PathBuf>) -> ConfigSource<'static>,
) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    connector::install_crypto_provider();
    let source = source(args.config);
    let overrides = Overrides {
        listen: args.listen,
    };
    let settings = config::load(source.clone(), &overrides)?;
    let runtime = serving_runtime()?;
    runtime.block_on(async move {
        // Only the demo's configuration is compiled in.
        let demo = matches!(source, ConfigSource::Embedded { .. });
        let _fakes = match demo {
            true => Some(demo::start_fakes().await.context(
                "starting the demo's fake Keystone (127.0.0.1:15000) and upstream (127.0.0.1:15001)",
            )?),
            false => None,
        };
        let reload: server::Reload = Box::new(move || config::load(source.clone(), &overrides));
        server::run(settings, reload, |listening| {
            tracing::info!(proxy = %listening.proxy, admin = ?listening.admin, "listening");
            // Tests and scripts wait for these lines on stdout (the admin
            // one first, so the proxy line always comes last).
            if let Some(admin) = listening.admin {
                println!("keystone-proxy admin listening on http://{admin}");
            }
            println!("keystone-proxy listening on {}", listening.proxy);
            if demo {
                println!(
                    "try: curl -H 'Authorization: Bearer {}' {}/compute/servers",
                    demo::KEY,
                    listening.proxy
                );
            }
        })
        .await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// One worker thread per CPU the process may run on; on a single CPU (a
/// pinned sidecar, say) a current-thread runtime, which spares the
/// cross-thread wake-ups a one-worker multi-thread runtime still pays.
fn serving_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build().context("starting the runtime")
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
