//! `content-server`: the operator's command line (init, serve, subscribers, channels).

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use content_server::catalogue::{Catalogue, Source};
use content_server::codes;
use content_server::config::Config;
use content_server::keys::OperatorKeys;
use content_server::store::{Status, Store};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "content-server",
    version,
    about = "STB operator service: CA, enrollment, entitlements, licenses, live channels"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, short, env = "CONTENT_SERVER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory (CA, TLS key pair, master key, SQLite database).
    #[arg(long, env = "CONTENT_SERVER_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "CONTENT_SERVER_DATABASE", global = true)]
    database: Option<String>,
    /// Channel manifest (TOML).
    #[arg(long, env = "CONTENT_SERVER_CHANNELS", global = true)]
    channels: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the operator CA, the server certificate, the master key and the database.
    Init {
        /// Extra DNS names or IP addresses for the server certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Serve until SIGTERM or Ctrl-C.
    Serve {
        /// Mutual-TLS listen address (channels, licenses, streams).
        #[arg(long, env = "CONTENT_SERVER_LISTEN")]
        listen: Option<SocketAddr>,
        /// Enrollment listen address (server-authenticated TLS).
        #[arg(long, env = "CONTENT_SERVER_ENROLL_LISTEN")]
        enroll_listen: Option<SocketAddr>,
        /// URL boxes use for this server.
        #[arg(long)]
        public_url: Option<String>,
        /// Key server URL handed to boxes.
        #[arg(long)]
        keyserver_url: Option<String>,
        /// The edge boxes fetch segments from (https://host:port).
        #[arg(long)]
        edge_url: Option<String>,
    },
    /// Subscribers and their enrollment codes.
    Subscriber {
        #[command(subcommand)]
        action: SubscriberAction,
    },
    /// The channel catalogue.
    Channel {
        #[command(subcommand)]
        action: ChannelAction,
    },
    /// The edge (nginx as an HTTP cache in front of this server).
    Edge {
        #[command(subcommand)]
        action: EdgeAction,
    },
}

#[derive(Subcommand)]
enum EdgeAction {
    /// Write the edge's nginx site and token check into a directory (they hold edge keys:
    /// written mode 0600); then `include DIR/stb-edge.conf;` in nginx's http block and set
    /// `edge_url` here.
    Nginx {
        /// Where boxes reach the edge, host:port.
        #[arg(long, default_value = "0.0.0.0:8446")]
        listen: String,
        /// The edge's TLS certificate chain (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its key.
        #[arg(long)]
        key: PathBuf,
        /// The cache directory.
        #[arg(long, default_value = "/var/cache/nginx/stb-edge")]
        cache_dir: PathBuf,
        /// This server's enrollment listener as the edge reaches it, https://host:port.
        #[arg(long)]
        origin: String,
        /// The operator CA as the edge finds it (default: this server's DATA_DIR/ca/ca.crt).
        #[arg(long)]
        origin_ca: Option<PathBuf>,
        /// Output directory.
        #[arg(long, default_value = "/etc/nginx/stb")]
        out_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum SubscriberAction {
    /// Add a subscriber with a package; prints a one-time enrollment code.
    Add {
        /// Unique subscriber name.
        name: String,
        /// Package of channels.
        #[arg(long)]
        package: String,
    },
    /// A new enrollment code for an existing subscriber (another box, a lost code).
    Code { name: String },
    /// List subscribers.
    List {
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Refuse service until resumed.
    Suspend { name: String },
    /// Undo a suspension.
    Resume { name: String },
    /// Refuse service for good and revoke every certificate.
    Revoke { name: String },
    /// Set a subscriber's locker quota, MiB, or `default` for the configured `locker_quota_mb`
    /// (a quota under what is stored refuses new writes; nothing is deleted).
    Quota {
        name: String,
        /// MiB, or `default`.
        size_mb: String,
    },
    /// Remove a subscriber's parental PIN and age limit (a forgotten PIN): the subscriber
    /// sets a new one from the box.
    ClearParental { name: String },
}

#[derive(Subcommand)]
enum ChannelAction {
    /// List channels with their packages and segments.
    List,
    /// Print a manifest of many channels looping the test fixtures (load tests).
    Generate {
        /// Number of channels.
        #[arg(long, default_value_t = 200)]
        count: u16,
        /// Directory of ch1.ts..ch4.ts.
        #[arg(long, default_value = "media-fixtures")]
        fixtures: PathBuf,
    },
}

fn main() -> Result<()> {
    stb_server_common::init_tracing();
    let cli = Cli::parse();
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = cli.data_dir {
        config.data_dir = d;
    }
    if let Some(db) = cli.database {
        config.database = db;
    }
    if let Some(c) = cli.channels {
        config.channels = c;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Init { names } => rt.block_on(init(&config, names)),
        Command::Serve {
            listen,
            enroll_listen,
            public_url,
            keyserver_url,
            edge_url,
        } => {
            if let Some(u) = edge_url {
                config.edge_url = u;
            }
            if let Some(l) = listen {
                config.listen = l;
            }
            if let Some(l) = enroll_listen {
                config.enroll_listen = l;
            }
            if let Some(u) = public_url {
                config.public_url = u;
            }
            if let Some(u) = keyserver_url {
                config.keyserver_url = u;
            }
            rt.block_on(serve(config))
        }
        Command::Subscriber { action } => rt.block_on(subscriber(&config, action)),
        Command::Channel {
            action: ChannelAction::List,
        } => channel_list(&config),
        Command::Edge {
            action:
                EdgeAction::Nginx {
                    listen,
                    cert,
                    key,
                    cache_dir,
                    origin,
                    origin_ca,
                    out_dir,
                },
        } => {
            let keys = OperatorKeys::load(&config.master_key_path())?;
            let site = content_server::edge::EdgeSite {
                listen,
                cert,
                key,
                cache_dir,
                origin,
                origin_ca: origin_ca.unwrap_or_else(|| config.ca_dir().join("ca.crt")),
            };
            content_server::edge::write_nginx_files(&keys.edge_keys(), &site, &out_dir)?;
            println!(
                "written {0}/stb-edge.conf and {0}/stb_edge.js; add `include {0}/stb-edge.conf;` to nginx's http block",
                out_dir.display()
            );
            Ok(())
        }
        Command::Channel {
            action: ChannelAction::Generate { count, fixtures },
        } => {
            print!(
                "{}",
                content_server::catalogue::generate_manifest(count, &fixtures)?
            );
            Ok(())
        }
    }
}

async fn init(config: &Config, names: Vec<String>) -> Result<()> {
    for line in content_server::admin::init(config, &names).await? {
        println!("{line}");
    }
    Ok(())
}

async fn serve(config: Config) -> Result<()> {
    let running = content_server::server::start(&config).await?;
    stb_server_common::shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

fn print_code(name: &str, (code, expires): (String, i64)) -> Result<()> {
    let expiry = time::OffsetDateTime::from_unix_timestamp(expires / 1000)?;
    println!("enrollment code for {name}: {}", codes::display(&code));
    println!("valid until {expiry} (single use)");
    Ok(())
}

async fn subscriber(config: &Config, action: SubscriberAction) -> Result<()> {
    let store = Store::open(&config.database_url()).await?;
    let keys = OperatorKeys::load(&config.master_key_path())?;
    let set = |status| {
        let store = store.clone();
        async move |name: String| -> Result<()> {
            if !store.set_status(&name, status).await? {
                bail!("no subscriber {name}");
            }
            println!("{name}: {status:?}");
            Ok(())
        }
    };
    match action {
        SubscriberAction::Add { name, package } => {
            let packages = content_server::catalogue::manifest_packages(&config.channels)?;
            let code = content_server::admin::add_subscriber(
                config, &store, &keys, &packages, &name, &package,
            )
            .await?;
            println!("subscriber {name} added with package {package}");
            print_code(&name, code)
        }
        SubscriberAction::Code { name } => match store.subscriber(&name).await? {
            Some(s) if s.status == Status::Active => print_code(
                &name,
                content_server::admin::new_code(config, &store, &keys, &name).await?,
            ),
            Some(s) => bail!("{name} is {:?}", s.status),
            None => bail!("no subscriber {name}"),
        },
        SubscriberAction::List { json } => {
            let lockers: std::collections::HashMap<_, _> = store
                .locker_accounts(None)
                .await?
                .into_iter()
                .map(|a| (a.subscriber.clone(), a))
                .collect();
            for s in store.subscribers(None).await? {
                let (used, quota) = lockers.get(&s.name).map_or((0, 0), |a| {
                    (
                        a.used_bytes,
                        a.quota_bytes.unwrap_or_else(|| config.locker_quota_bytes()),
                    )
                });
                if json {
                    let mut line = serde_json::to_value(&s)?;
                    line["locker_used_bytes"] = used.into();
                    line["locker_quota_bytes"] = quota.into();
                    println!("{line}");
                } else {
                    println!(
                        "{:<24} {:<10} {:<10} {} certificate(s), locker {} of {}",
                        s.name,
                        s.package,
                        format!("{:?}", s.status),
                        s.certificates,
                        mib(used),
                        mib(quota),
                    );
                }
            }
            Ok(())
        }
        SubscriberAction::Quota { name, size_mb } => {
            let quota = match size_mb.as_str() {
                "default" => None,
                mb => Some(
                    mb.parse::<u64>()
                        .ok()
                        .and_then(|mb| mb.checked_mul(1 << 20))
                        .filter(|&b| i64::try_from(b).is_ok())
                        .ok_or_else(|| anyhow::anyhow!("SIZE_MB: a number of MiB, or `default`"))?,
                ),
            };
            if !store.set_locker_quota(&name, quota).await? {
                bail!("no subscriber {name}");
            }
            let account = store
                .locker_accounts(Some(&name))
                .await?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no subscriber {name}"))?;
            let quota = quota.unwrap_or_else(|| config.locker_quota_bytes());
            println!(
                "{name}: locker quota {}{}, {} used",
                mib(quota),
                if account.quota_bytes.is_none() {
                    " (default)"
                } else {
                    ""
                },
                mib(account.used_bytes)
            );
            Ok(())
        }
        SubscriberAction::ClearParental { name } => {
            if store.clear_parental(&name).await? {
                println!("{name}: parental PIN and age limit removed");
            } else {
                println!("{name}: no parental PIN was set");
            }
            Ok(())
        }
        SubscriberAction::Suspend { name } => set(Status::Suspended)(name).await,
        SubscriberAction::Resume { name } => set(Status::Active)(name).await,
        SubscriberAction::Revoke { name } => set(Status::Revoked)(name).await,
    }
}

/// Bytes as MiB for people.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn channel_list(config: &Config) -> Result<()> {
    let catalogue = Catalogue::load(&config.channels)?;
    for c in catalogue.channels.values() {
        let source = match &c.source {
            Source::Looped(l) => {
                let total: u64 = l.segments.iter().map(|s| s.duration_ms).sum();
                format!(
                    "{} segments, {:.1} s loop",
                    l.segments.len(),
                    total as f64 / 1000.0
                )
            }
            Source::Live(feed) => format!("live from {}", feed.input.uri()),
        };
        println!(
            "{:>3}  {:<20} packages: {:<24} {source}",
            c.number,
            c.name,
            c.packages.join(","),
        );
    }
    Ok(())
}
