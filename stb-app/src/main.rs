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
            sizes,
            only,
        } => {
            let files =
                stb_app::ui::screenshots::render_all(&out, video.as_deref(), &sizes, &only)?;
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
        } => {
            config.video_sink = video_sink;
            config.audio_sink = audio_sink;
            let password = read_secret_line(&mut lines, "the password")?;
            let dwell = std::time::Duration::from_secs_f64(dwell_secs.max(0.1));
            let report = rt.block_on(stb_app::headless::run(
                &config,
                &identifier,
                password,
                &channels,
                dwell,
                snapshot.as_deref(),
            ))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.login_error.is_some() {
                // exit() skips destructors: the warm-up thread is joined first.
                drop(tls_warm_up);
                std::process::exit(2);
            }
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
