//! `stb-app`: the box. `ui` is the TV screen driven by the remote; `headless` plays channels
//! without a screen and prints a JSON report; `register` is the registration desk's command;
//! `screenshots` renders every screen to PNG; `bench-ui` times the channel list scrolling.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use stb_app::config::BoxConfig;
use stb_protocol::Password;
use std::io::BufRead;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "stb-app",
    version,
    about = "STB set-top box: login by EKE, decrypting player"
)]
struct Cli {
    /// Box configuration (TOML).
    #[arg(
        long,
        short,
        env = "STB_APP_CONFIG",
        default_value = "/etc/stb-app/config.toml"
    )]
    config: PathBuf,
    /// Key server URL (overrides the configuration).
    #[arg(long, global = true)]
    keyserver_url: Option<String>,
    /// PEM to trust for the key server (overrides the configuration).
    #[arg(long, global = true)]
    keyserver_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The TV screen: login, registration, channel list, player, driven by the remote.
    /// `SLINT_BACKEND` picks the display: winit (desktop, Xvfb) or linuxkms (the box).
    Ui {
        /// Window size (desktop only), e.g. 1920x1080.
        #[arg(long, value_parser = parse_size)]
        size: Option<(u32, u32)>,
        /// Keymap file (overrides the configuration).
        #[arg(long)]
        keymap: Option<PathBuf>,
        /// Remote device or raw-event FIFO to read, repeatable (overrides the configuration).
        #[arg(long)]
        input: Vec<PathBuf>,
    },
    /// Renders every screen to PNG (software renderer), for the documentation.
    Screenshots {
        /// Output directory.
        #[arg(long, default_value = "docs/screenshots")]
        out: PathBuf,
        /// MPEG-TS file whose first picture fills the player screens.
        #[arg(long)]
        video: Option<PathBuf>,
        /// MPEG-TS file with subtitles (`media-fixtures/ch3.ts`): a picture with its first
        /// ones shown fills the subtitles screen.
        #[arg(long)]
        subtitles: Option<PathBuf>,
        /// Sizes to render.
        #[arg(long, value_parser = parse_size, value_delimiter = ',', default_value = "1280x720,1920x1080")]
        sizes: Vec<(u32, u32)>,
        /// Only these screens (comma-separated names; default all).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Frame times of scrolling a 200-channel list over video (software renderer), as JSON.
    BenchUi {
        /// MPEG-TS file whose first picture plays under the list.
        #[arg(long)]
        video: Option<PathBuf>,
        /// Window size.
        #[arg(long, value_parser = parse_size, default_value = "1920x1080")]
        size: (u32, u32),
        /// Frames to draw (one row down each).
        #[arg(long, default_value_t = 400)]
        frames: usize,
    },
    /// Log in (password on stdin), play channels, log out, print a JSON report.
    Headless {
        /// Subscriber identifier.
        #[arg(long)]
        identifier: String,
        /// Channels to play, in order.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        channels: Vec<u16>,
        /// Seconds on each channel.
        #[arg(long, default_value_t = 5.0)]
        dwell_secs: f64,
        /// Video sink (default: fakesink, nothing shown).
        #[arg(long, default_value = "fakesink")]
        video_sink: String,
        /// Audio sink (default: fakesink).
        #[arg(long, default_value = "fakesink")]
        audio_sink: String,
        /// Save the picture at the end of the first channel as PNG.
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// Record the first channel into the locker while it plays, then play it back:
        /// upload, open and seek times in the report (it stays in the locker).
        #[arg(long)]
        record: bool,
        /// Play this recording of the locker (its name, as `stb-app locker ls` shows it)
        /// after the channels: open and seek times in the report.
        #[arg(long)]
        play_recording: Option<String>,
    },
    /// The subscriber's locker from a desktop: log in (password on stdin), then list, put,
    /// get, move or remove files. Everything is sealed here; the server sees no name.
    Locker {
        /// Subscriber identifier.
        #[arg(long)]
        identifier: String,
        #[command(subcommand)]
        op: LockerOp,
    },
    /// Registration: enrollment code, then identifier and password (twice, on stdin).
    Register {
        /// Code from the registration desk.
        #[arg(long)]
        code: String,
        /// Identifier to choose.
        #[arg(long)]
        identifier: String,
        /// Enrollment URL (overrides the configuration).
        #[arg(long)]
        enroll_url: Option<String>,
        /// Operator CA PEM for enrollment (overrides the configuration).
        #[arg(long)]
        enroll_ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LockerOp {
    /// Lists the files, and the quota.
    Ls,
    /// Stores a file (pictures, by their extension, open full screen on the TV).
    Put {
        /// The file to store.
        file: PathBuf,
        /// Its name in the locker (default: the file's name); `/` separates folders.
        #[arg(long)]
        name: Option<String>,
        /// Replace a file of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// Writes a file out (`-` for stdout).
    Get {
        /// Its name in the locker.
        name: String,
        /// Where to write it (default: its name's last part, in the current directory).
        out: Option<PathBuf>,
    },
    /// Renames a file.
    Mv {
        /// Its name now.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Removes a file.
    Rm {
        /// Its name.
        name: String,
    },
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT")?;
    let n = |v: &str| v.parse::<u32>().map_err(|e| e.to_string());
    Ok((n(w)?, n(h)?))
}

fn read_secret_line(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    what: &str,
) -> Result<Password> {
    let line = Zeroizing::new(
        lines
            .next()
            .with_context(|| format!("{what} expected on stdin"))??,
    );
    Ok(Password::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

fn main() -> Result<()> {
    stb_app::harden::harden_process();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Declared before everything it must outlive: dropped last, after the runtime.
    let tls_warm_up = stb_app::config::warm_up_tls();
    let mut config = if cli.config.exists() {
        BoxConfig::load(&cli.config)?
    } else {
        BoxConfig::default()
    };
    if let Some(u) = cli.keyserver_url {
        config.keyserver_url = u;
    }
    if let Some(ca) = cli.keyserver_ca {
        config.keyserver_ca = Some(ca);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    match cli.command {
        Command::Ui {
            size,
            keymap,
            input,
        } => {
            if keymap.is_some() {
                config.keymap = keymap;
            }
            if !input.is_empty() {
                config.input_devices = input;
            }
            stb_app::ui::controller::run(config, &rt, size)?;
        }
        Command::Screenshots {
            out,
            video,
            subtitles,
            sizes,
            only,
        } => {
            let files = stb_app::ui::screenshots::render_all(
                &out,
                video.as_deref(),
                subtitles.as_deref(),
                &sizes,
                &only,
            )?;
            for file in files {
                println!("{}", out.join(file).display());
            }
        }
        Command::BenchUi {
            video,
            size,
            frames,
        } => {
            let mut ms: Vec<f64> =
                stb_app::ui::screenshots::bench_list_scroll(video.as_deref(), size, frames)?
                    .iter()
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .collect();
            ms.sort_by(f64::total_cmp);
            let at =
                |q: f64| ms.get(((ms.len() as f64 * q) as usize).min(ms.len().saturating_sub(1)));
            println!(
                "{}",
                serde_json::json!({
                    "what": "channel list scrolling over video, software renderer, full repaint",
                    "size": format!("{}x{}", size.0, size.1),
                    "frames": ms.len(),
                    "p50_ms": at(0.5),
                    "p95_ms": at(0.95),
                    "max_ms": ms.last(),
                })
            );
        }
        Command::Headless {
            identifier,
            channels,
            dwell_secs,
            video_sink,
            audio_sink,
            snapshot,
            record,
            play_recording,
        } => {
            config.video_sink = video_sink;
            config.audio_sink = audio_sink;
            let password = read_secret_line(&mut lines, "the password")?;
            let dwell = std::time::Duration::from_secs_f64(dwell_secs.max(0.1));
            let report = rt.block_on(stb_app::headless::run(
                &config,
                &identifier,
                password,
                &stb_app::headless::Plan {
                    channels: &channels,
                    dwell,
                    snapshot: snapshot.as_deref(),
                    record,
                    play_recording: play_recording.as_deref(),
                },
            ))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.login_error.is_some() {
                // exit() skips destructors: the warm-up thread is joined first.
                drop(tls_warm_up);
                std::process::exit(2);
            }
        }
        Command::Locker { identifier, op } => {
            let password = read_secret_line(&mut lines, "the password")?;
            rt.block_on(locker(&config, &identifier, password, op))?;
        }
        Command::Register {
            code,
            identifier,
            enroll_url,
            enroll_ca,
        } => {
            if let Some(u) = enroll_url {
                config.enroll_url = u;
            }
            if let Some(ca) = enroll_ca {
                config.enroll_ca = Some(ca);
            }
            let password = read_secret_line(&mut lines, "the password")?;
            let again = read_secret_line(&mut lines, "the password again")?;
            let account = rt.block_on(stb_app::register::enroll_and_register(
                &config,
                &code,
                &identifier,
                password,
                again,
            ))?;
            println!("registered {identifier} for {account}");
        }
    }
    Ok(())
}

/// `stb-app locker`: one login, one operation.
async fn locker(
    config: &BoxConfig,
    identifier: &str,
    password: Password,
    op: LockerOp,
) -> Result<()> {
    use stb_protocol::locker::Kind;
    let keyserver = stb_app::keyserver_client::KeyServer::new(config)?;
    let session = stb_app::session::login(&keyserver, identifier, password).await?;
    let locker = session.locker()?;
    match op {
        LockerOp::Ls => {
            let (_, index) = locker.index().await?;
            let usage = locker.usage().await?;
            let mut entries = index.entries;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for e in &entries {
                let when = chrono::DateTime::from_timestamp_millis(e.modified_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                let kind = format!("{:?}", e.kind).to_lowercase();
                println!("{:>12}  {when}  {kind:<9}  {}", e.size, e.name);
            }
            println!(
                "{} files; {} of {} MiB used",
                entries.len(),
                usage.used_bytes.div_ceil(1 << 20),
                usage.quota_bytes >> 20
            );
        }
        LockerOp::Put {
            file,
            name,
            replace,
        } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("give the file a name with --name")?
                    .to_owned(),
            };
            let extension = file
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let kind = match extension.as_deref() {
                Some("jpg" | "jpeg" | "png") => Kind::Picture,
                _ => Kind::File,
            };
            let mut source = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let started = std::time::Instant::now();
            let entry = locker
                .put(
                    stb_app::locker::NewFile {
                        name,
                        kind,
                        recording: None,
                        replace,
                    },
                    &mut source,
                )
                .await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "stored {} ({} bytes, {:.1} MB/s)",
                entry.name,
                entry.size,
                entry.size as f64 / 1e6 / secs.max(1e-6)
            );
        }
        LockerOp::Get { name, out } => {
            let out =
                out.unwrap_or_else(|| PathBuf::from(name.rsplit('/').next().unwrap_or(&name)));
            if out.as_os_str() == "-" {
                locker.get(&name, &mut tokio::io::stdout()).await?;
            } else {
                // Written beside the target and renamed: a refused file leaves nothing.
                let mut part = out.clone().into_os_string();
                part.push(".part");
                let part = PathBuf::from(part);
                let mut sink = tokio::fs::File::create(&part)
                    .await
                    .with_context(|| format!("creating {}", part.display()))?;
                let started = std::time::Instant::now();
                let entry = match locker.get(&name, &mut sink).await {
                    Ok(entry) => entry,
                    Err(e) => {
                        drop(sink);
                        let _ = std::fs::remove_file(&part);
                        return Err(e.into());
                    }
                };
                sink.sync_all().await?;
                std::fs::rename(&part, &out)?;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "wrote {} ({} bytes, {:.1} MB/s)",
                    out.display(),
                    entry.size,
                    entry.size as f64 / 1e6 / secs.max(1e-6)
                );
            }
        }
        LockerOp::Mv { from, to } => locker.rename(&from, &to).await?,
        LockerOp::Rm { name } => locker.remove(&name).await?,
    }
    session.logout();
    Ok(())
}
