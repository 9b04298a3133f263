//! `keyserver`: the command-line entry point (serve, init, accounts, monitor).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use keyserver::config::Config;
use keyserver::kek::Kek;
use keyserver::monitor::{Monitor, Thresholds};
use stb_protocol::Identifier;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keyserver",
    version,
    about = "STB key server: sealed subscriber keys, EKE recovery, guess limits, audit"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "KEYSERVER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory (database, TLS key pair, audit log).
    #[arg(long, env = "KEYSERVER_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "KEYSERVER_DATABASE", global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create what a first start needs: data directory, TLS key pair, database, secrets.
    Init {
        /// Extra DNS names or IP addresses for the generated TLS certificate.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Replace an existing TLS key pair.
        #[arg(long)]
        force: bool,
    },
    /// Serve boxes over HTTPS until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Look after accounts.
    Accounts {
        #[command(subcommand)]
        action: AccountsAction,
    },
    /// Follow the audit log and print alerts.
    Monitor(MonitorArgs),
    /// The key-encryption key: make one, see which keys the database uses, re-wrap.
    Kek {
        #[command(subcommand)]
        action: KekAction,
    },
}

#[derive(Subcommand)]
enum KekAction {
    /// Write a new random KEK file (mode 0600) for a rotation; never replaces a file.
    New {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Count the database's wrapped values per KEK id.
    Status,
    /// Re-wrap every value under the current KEK (while serving; `kek_file` is the new key,
    /// `extra_kek_files` holds the old one).
    Rewrap,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// HTTPS listen address.
    #[arg(long, env = "KEYSERVER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Admin (metrics) listen address, or "none".
    #[arg(long, env = "KEYSERVER_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Operator CA certificate (PEM) that subscriber certificates chain to.
    #[arg(long, env = "KEYSERVER_OPERATOR_CA")]
    operator_ca: Option<PathBuf>,
    /// Operator CRL: the content server's `https://HOST:PORT/v1/crl`, or a file.
    #[arg(long, env = "KEYSERVER_OPERATOR_CRL")]
    operator_crl: Option<String>,
    /// How often the operator CRL is fetched again, seconds.
    #[arg(long)]
    crl_refresh_secs: Option<u64>,
    /// Minimum seconds between two evaluated recoveries of one identifier.
    #[arg(long)]
    min_spacing_secs: Option<u64>,
    /// Unconfirmed recoveries that lock an identifier.
    #[arg(long)]
    max_failures: Option<u32>,
}

#[derive(Subcommand)]
enum AccountsAction {
    /// List accounts with their guess counters.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show { identifier: String },
    /// Clear the lock and the failure counter.
    Unlock { identifier: String },
    /// Delete the account and its counters.
    Delete { identifier: String },
}

#[derive(clap::Args)]
struct MonitorArgs {
    /// Audit log to read (default: the configured one).
    file: Option<PathBuf>,
    /// Keep reading as the log grows.
    #[arg(long, short)]
    follow: bool,
    /// Exit with status 1 if any alert was raised (for scripts; without --follow).
    #[arg(long)]
    fail_on_alert: bool,
    /// Sliding window in seconds.
    #[arg(long, default_value_t = Thresholds::default().window_secs)]
    window_secs: i64,
    /// Unconfirmed recoveries of one identifier that raise an alert.
    #[arg(long, default_value_t = Thresholds::default().failures_per_id)]
    failures: usize,
    /// Distinct identifiers from one address that raise an alert.
    #[arg(long, default_value_t = Thresholds::default().ids_per_peer)]
    identifiers: usize,
    /// Refused requests from one address that raise an alert.
    #[arg(long, default_value_t = Thresholds::default().refusals_per_peer)]
    refusals: usize,
    /// Long window in seconds (unconfirmed recoveries a success does not reset).
    #[arg(long, default_value_t = Thresholds::default().long_window_secs)]
    long_window_secs: i64,
    /// Unconfirmed recoveries of one identifier in the long window that raise an alert.
    #[arg(long, default_value_t = Thresholds::default().slow_failures_per_id)]
    slow_failures: usize,
    /// Registrations of taken identifiers by one subscriber that raise an alert.
    #[arg(long, default_value_t = Thresholds::default().taken_per_subject)]
    taken: usize,
}

fn main() -> Result<()> {
    stb_server_common::init_tracing();
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(db) = &cli.database {
        config.database = db.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Init { names, force } => runtime.block_on(async {
            for line in keyserver::admin::init(&config, &names, force).await? {
                println!("{line}");
            }
            Ok(())
        }),
        Command::Serve(args) => {
            apply_serve_args(&mut config, args)?;
            runtime.block_on(serve(config))
        }
        Command::Accounts { action } => runtime.block_on(accounts(&config, action)),
        Command::Monitor(args) => monitor(&config, args),
        Command::Kek { action } => runtime.block_on(kek(&config, action)),
    }
}

fn apply_serve_args(config: &mut Config, args: ServeArgs) -> Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    match args.admin_listen.as_deref() {
        None => {}
        Some("none") => config.admin_listen = None,
        Some(addr) => config.admin_listen = Some(addr.parse().context("--admin-listen")?),
    }
    if let Some(ca) = args.operator_ca {
        config.operator_ca = Some(ca);
    }
    if let Some(crl) = args.operator_crl {
        config.operator_crl = Some(crl);
    }
    if let Some(s) = args.crl_refresh_secs {
        config.limits.crl_refresh_secs = s;
    }
    if let Some(s) = args.min_spacing_secs {
        config.limits.min_spacing_secs = s;
    }
    if let Some(m) = args.max_failures {
        config.limits.max_failures = m;
    }
    Ok(())
}

async fn serve(config: Config) -> Result<()> {
    let running = keyserver::server::start(&config).await?;
    stb_server_common::shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

async fn kek(config: &Config, action: KekAction) -> Result<()> {
    if let KekAction::New { out } = action {
        let kek = Kek::create(&out)?;
        println!("{} {}", kek.id(), out.display());
        return Ok(());
    }
    let store = keyserver::admin::open_store(config).await?;
    let current = store.current_kek_id();
    if let KekAction::Rewrap = action {
        println!(
            "{} value(s) re-wrapped under {current}",
            store.rewrap().await?
        );
    }
    for (id, n) in store.kek_usage().await? {
        let mark = if id == current { " (current)" } else { "" };
        println!("{id}{mark}: {n} value(s)");
    }
    Ok(())
}

async fn accounts(config: &Config, action: AccountsAction) -> Result<()> {
    let store = keyserver::admin::open_store(config).await?;
    let parse = |s: &str| Identifier::parse(s).with_context(|| format!("identifier {s:?}"));
    match action {
        AccountsAction::List { json } => {
            let rows = store.list(None).await?;
            if json {
                for row in rows {
                    println!("{}", serde_json::to_string(&row)?);
                }
            } else {
                println!(
                    "{:<32} {:>8} {:<6} subject",
                    "identifier", "failures", "locked"
                );
                for r in rows {
                    let locked = if r.locked { "yes" } else { "no" };
                    println!(
                        "{:<32} {:>8} {:<6} {}",
                        r.identifier, r.failures, locked, r.subject
                    );
                }
            }
        }
        AccountsAction::Show { identifier } => {
            let id = parse(&identifier)?;
            let Some(row) = store.list(Some(&id)).await?.pop() else {
                bail!("no account {id}");
            };
            println!("{}", serde_json::to_string_pretty(&row)?);
        }
        AccountsAction::Unlock { identifier } => {
            let id = parse(&identifier)?;
            keyserver::admin::unlock(config, &store, &id).await?;
            println!("{id} unlocked");
        }
        AccountsAction::Delete { identifier } => {
            let id = parse(&identifier)?;
            keyserver::admin::delete(config, &store, &id).await?;
            println!("{id} deleted");
        }
    }
    Ok(())
}

fn monitor(config: &Config, args: MonitorArgs) -> Result<()> {
    let path = args.file.unwrap_or_else(|| config.audit_log_path());
    let mut monitor = Monitor::new(Thresholds {
        window_secs: args.window_secs,
        failures_per_id: args.failures,
        ids_per_peer: args.identifiers,
        refusals_per_peer: args.refusals,
        long_window_secs: args.long_window_secs,
        slow_failures_per_id: args.slow_failures,
        taken_per_subject: args.taken,
    });
    let open = || std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()));
    let mut reader = BufReader::new(open()?);
    let mut position = 0u64;
    let mut alerts = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            if !args.follow {
                break;
            }
            // Partial line or end of file: wait, and start over if the log was rotated.
            std::thread::sleep(std::time::Duration::from_millis(500));
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len < position {
                reader = BufReader::new(open()?);
                position = 0;
            } else {
                reader.seek(SeekFrom::Start(position))?;
            }
            continue;
        }
        position += n as u64;
        match serde_json::from_str::<keyserver::audit::Event>(&line) {
            Ok(event) => {
                for alert in monitor.feed(&event) {
                    alerts += 1;
                    println!("ALERT ts_ms={} {alert}", event.ts_ms);
                }
            }
            Err(e) => eprintln!("skipping malformed audit line at byte {position}: {e}"),
        }
    }
    eprintln!("{alerts} alert(s)");
    if args.fail_on_alert && alerts > 0 {
        std::process::exit(1);
    }
    Ok(())
}
