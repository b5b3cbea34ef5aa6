//! The `keystone-proxy` command.
#![deny(clippy::unwrap_used)]

use std::net::SocketAddr;
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
    /// `keystone-proxy` with no subcommand serves.
    #[command(subcommand)]
    command: Option<Command>,
    /// Options every subcommand takes, before or after its name.
    #[command(flatten)]
    global: GlobalArgs,
}

/// Options given before or after the subcommand alike (`keystone-proxy
/// --config F check-config` and `keystone-proxy check-config --config F`).
#[derive(clap::Args, Default)]
struct GlobalArgs {
    /// TOML configuration (default: config/keystone-proxy.toml if present).
    #[arg(long, value_name = "FILE", env = CONFIG_ENV, global = true)]
    config: Option<PathBuf>,
    /// Listen address for serve and demo, overriding `listen.address`
    /// (IP:PORT or unix:/path).
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<String>,
    /// The cloud of clouds.yaml to use, as `openstack --os-cloud` (it beats
    /// `OS_CLOUD`); for token and catalog, also one of several configured.
    #[arg(long, value_name = "NAME", global = true)]
    cloud: Option<String>,
    /// Log format of serve and demo.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Serve,
    /// Validate the configuration and print it resolved, secrets redacted.
    CheckConfig,
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
    },
    /// Run the proxy against a fake Keystone and upstream started in the same
    /// process (config/demo.toml), to try it without a cloud.
    Demo(DemoArgs),
}

/// Where the demo's fakes listen (port 0: any free port).
#[derive(clap::Args)]
struct DemoArgs {
    /// The fake Keystone's address.
    #[arg(long, value_name = "ADDR", default_value = demo::KEYSTONE_ADDR)]
    keystone: SocketAddr,
    /// The fake upstream's address (the catalog's endpoints).
    #[arg(long, value_name = "ADDR", default_value = demo::UPSTREAM_ADDR)]
    upstream: SocketAddr,
}

/// `--config` may also come from the environment (handy in containers).
const CONFIG_ENV: &str = "KEYSTONE_PROXY_CONFIG";

#[derive(clap::Args)]
struct OneShotArgs {
    /// A project name or id (default: the cloud's own project).
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// Output format, as `openstack -f`.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = commands::Format::Table)]
    format: commands::Format,
    /// Only this column (repeatable), as `openstack -c`.
    #[arg(short = 'c', long = "column", value_name = "COLUMN")]
    column: Vec<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader has what it wanted (`gen-key | head -1`).
        Err(error) if error.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keystone-proxy: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    let serving = matches!(cli.command, None | Some(Command::Serve | Command::Demo(_)));
    if global.listen.is_some() && !serving {
        anyhow::bail!("--listen is an option of serve and demo only");
    }
    let reads_clouds = !matches!(
        cli.command,
        Some(Command::Demo(_) | Command::GenKey | Command::GenSessionKey { .. })
    );
    if global.cloud.is_some() && !reads_clouds {
        anyhow::bail!("--cloud is an option of the commands that read the configuration");
    }
    let config = global.config.clone();
    let overrides = Overrides {
        cloud: global.cloud.clone(),
        ..Overrides::default()
    };
    match cli.command {
        None | Some(Command::Serve) => serve(global, None),
        Some(Command::Demo(fakes)) => serve(global, Some(fakes)),
        Some(Command::CheckConfig) => {
            let settings = config::load(from_flag(config), &overrides)?;
            if let Some(keys) = &settings.token.session_keys {
                session_keys::SessionKeys::load(keys)?;
            }
            connector::check_clouds(&settings)?;
            for warning in &settings.warnings {
                eprintln!("keystone-proxy: warning: {warning}");
            }
            print_out(config::to_toml(&settings))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::GenKey) => {
            let (key, hash) = clients::generate_key();
            print_out(format_args!("key:        {key}\nkey_sha256: {hash}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::GenSessionKey { dir }) => {
            let rotated = session_keys::rotate(&dir)?;
            match rotated.promoted {
                Some(promoted) => print_out(format_args!(
                    "sealing key: {}\nstaged key:  {}\n",
                    promoted.display(),
                    rotated.staged.display()
                ))?,
                None => print_out(format_args!("staged key:  {}\n", rotated.staged.display()))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Token(args)) => one_shot(config, &overrides, args, commands::token_listing),
        Some(Command::Catalog(args)) => {
            one_shot(config, &overrides, args, commands::catalog_listing)
        }
        Some(Command::Healthcheck { url }) => {
            connector::install_crypto_provider();
            let probe = match url {
                Some(url) => commands::Probe::Url(url),
                None => commands::own_probe(&config::load(from_flag(config), &overrides)?),
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
    config: Option<PathBuf>,
    overrides: &Overrides,
    args: OneShotArgs,
    listing: fn(&keystone_proxy::keystone::IssuedToken) -> commands::Listing,
) -> anyhow::Result<ExitCode> {
    connector::install_crypto_provider();
    let settings = config::load(from_flag(config), overrides)?;
    let issued = current_thread_runtime()?.block_on(commands::issue(
        &settings,
        overrides.cloud.as_deref(),
        args.project.as_deref(),
    ))?;
    let listing = listing(&issued).select(&args.column)?;
    print_out(listing.render(args.format))?;
    Ok(ExitCode::SUCCESS)
}

/// Serve the configuration `--config` names, or the demo's with its fakes.
fn serve(args: GlobalArgs, demo: Option<DemoArgs>) -> anyhow::Result<ExitCode> {
    let _flush = init_logging(args.log_format);
    connector::install_crypto_provider();
    let overrides = Overrides {
        listen: args.listen,
        cloud: args.cloud,
    };
    let runtime = serving_runtime()?;
    runtime.block_on(async move {
        let (source, fakes) = match &demo {
            Some(at) => {
                let fakes =
                    (demo::start_fakes(at.keystone, at.upstream).await).with_context(|| {
                        format!(
                            "starting the demo's fake Keystone ({}) and upstream ({}); move them \
                         with demo --keystone ADDR --upstream ADDR",
                            at.keystone, at.upstream
                        )
                    })?;
                // The demo's configuration lives as long as the process.
                let text: &'static str = fakes.config().leak();
                let name = "config/demo.toml";
                (ConfigSource::Embedded { name, text }, Some(fakes))
            }
            None => (from_flag(args.config), None),
        };
        let settings = config::load(source.clone(), &overrides)?;
        let reload: server::Reload = Box::new(move || config::load(source.clone(), &overrides));
        server::run(settings, reload, |listening| {
            match listening.admin {
                Some(admin) => tracing::info!(proxy = %listening.proxy, %admin, "listening"),
                None => tracing::info!(proxy = %listening.proxy, "listening"),
            }
            // Tests and scripts wait for these lines on stdout (the admin
            // one first, so the proxy line always comes last). A closed
            // stdout does not stop a server.
            if let Some(admin) = listening.admin {
                let _ = print_out(format_args!(
                    "keystone-proxy admin listening on http://{admin}\n"
                ));
            }
            let _ = print_out(format_args!(
                "keystone-proxy listening on {}\n",
                listening.proxy
            ));
            if fakes.is_some() {
                let _ = print_out(format_args!(
                    "try: curl -H 'Authorization: Bearer {}' {}/compute/servers\n",
                    demo::KEY,
                    listening.proxy
                ));
            }
        })
        .await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The control thread's runtime: signals, reloads, the admin listener and
/// the demo's fakes. The proxy listener's workers run their own (see
/// `server::run`).
fn serving_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    current_thread_runtime()
}

/// stdout was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
struct StdoutClosed;

/// Write `text` to stdout. A closed stdout ends a one-shot command quietly
/// with exit 0, as ripgrep does: its reader has what it wanted.
fn print_out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match write!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => other.context("writing to stdout"),
    }
}

/// Logging for serve and demo; the returned guard writes what is queued
/// when the command ends.
fn init_logging(format: LogFormat) -> keystone_proxy::logging::Flush {
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    keystone_proxy::logging::init(matches!(format, LogFormat::Json), colour)
}
