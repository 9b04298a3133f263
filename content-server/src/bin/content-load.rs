//! `content-load`: how many live viewers can the content server keep on time, compared with
//! nginx serving the same encrypted segments over TLS with client certificates.
//!
//! It sets up a throwaway operator (init, a premium subscriber, a real enrollment), starts
//! `content-server serve` and nginx on loopback, and for each viewer count runs that many
//! viewers for a while. A viewer holds one mutual-TLS connection and fetches each new segment
//! of its channel at the instant the segment goes on air (as HLS-style players do), or, in
//! stream mode, reads `/v1/channels/N/stream`. A segment is late when it is complete more than
//! one segment duration (the player's buffer) after it went on air.

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use clap::Parser;
use content_server::catalogue::{Catalogue, Looped, Position};
use content_server::config::Config;
use content_server::keys::OperatorKeys;
use content_server::routes::{EnrollRequest, EnrollResponse};
use content_server::store::Store;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use stb_server_common::now_ms;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "Live-viewer load test: content-server against nginx")]
struct Args {
    /// Viewer counts to try, in order.
    #[arg(long, value_delimiter = ',', default_value = "50,100,200,400")]
    viewers: Vec<usize>,
    /// Seconds per step.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Channel manifest.
    #[arg(long, default_value = "media-fixtures/channels.toml")]
    channels: PathBuf,
    /// The content-server binary (default: next to this one).
    #[arg(long)]
    content_server: Option<PathBuf>,
    /// nginx binary; "none" to skip the comparison.
    #[arg(long, default_value = "/usr/sbin/nginx")]
    nginx: String,
    /// Subscribers added before the run, spread over the packages (the viewers all use one
    /// premium subscriber's box; the others fill the database as an operator's would).
    #[arg(long, default_value_t = 0)]
    subscribers: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // TERM, not KILL: nginx's master takes its workers down with it (killed, it would
        // leave them serving), and the content server shuts down cleanly.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Poll,
    Stream,
    /// Tokens from the origin (`port`), segments from the edge (`edge_port`).
    Edge {
        origin: u16,
    },
}

#[derive(Default)]
struct Tally {
    /// Milliseconds from a viewer's first request to its first whole segment (a zap).
    join_ms: Vec<i64>,
    segments: usize,
    late: usize,
    errors: usize,
    lateness_ms: Vec<i64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("content-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let channels = std::fs::canonicalize(&args.channels).context("channel manifest")?;
    let (port, enroll_port) = (
        stb_server_common::listener::free_loopback_port()?,
        stb_server_common::listener::free_loopback_port()?,
    );
    let config = Config {
        listen: format!("127.0.0.1:{port}").parse()?,
        enroll_listen: format!("127.0.0.1:{enroll_port}").parse()?,
        data_dir: dir.join("data"),
        channels: channels.clone(),
        ..Config::default()
    };
    content_server::admin::init(&config, &[]).await?;
    let store = Store::open(&config.database_url()).await?;
    let keys = OperatorKeys::load(&config.master_key_path())?;
    let catalogue = Arc::new(Catalogue::load(&channels)?);
    if let Some(c) = catalogue.channels.values().find(|c| c.looped().is_none()) {
        bail!(
            "channel {} is live: content-load measures looped channels",
            c.number
        );
    }
    let (code, _) = content_server::admin::add_subscriber(
        &config,
        &store,
        &keys,
        &catalogue.packages(),
        "viewer",
        "premium",
    )
    .await?;
    let packages = catalogue.packages();
    let started = std::time::Instant::now();
    for i in 0..args.subscribers {
        let package = &packages[i % packages.len()];
        content_server::admin::add_subscriber(
            &config,
            &store,
            &keys,
            &packages,
            &format!("subscriber-{i}"),
            package,
        )
        .await?;
    }
    if args.subscribers > 0 {
        eprintln!(
            "{} subscribers added in {:.1} s",
            args.subscribers,
            started.elapsed().as_secs_f64()
        );
    }
    store.ping().await?;

    let edge_port = stb_server_common::listener::free_loopback_port()?;
    let exe = match &args.content_server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("content-server"),
    };
    // Every viewer comes from 127.0.0.1: the per-source cap that protects a real server from
    // one address would refuse most of them.
    let server_config = dir.join("content-server.toml");
    std::fs::write(
        &server_config,
        "[connections]\nmax_connections_per_source = 1000000\n",
    )?;
    let mut server = Proc(
        Command::new(&exe)
            .arg("--config")
            .arg(&server_config)
            .arg("--data-dir")
            .arg(&config.data_dir)
            .arg("--channels")
            .arg(&channels)
            .args([
                "serve",
                "--listen",
                &config.listen.to_string(),
                "--enroll-listen",
                &config.enroll_listen.to_string(),
                "--edge-url",
                &format!("https://127.0.0.1:{edge_port}"),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?,
    );
    tokio::task::block_in_place(|| {
        stb_server_common::listener::wait_for_server(
            &mut server.0,
            config.enroll_listen,
            Duration::from_secs(20),
        )
    })
    .context("content-server did not come up")?;
    let ca_pem = std::fs::read_to_string(config.ca_dir().join("ca.crt"))?;
    let identity = enroll(&ca_pem, enroll_port, &code).await?;

    // nginx gets the same encrypted bytes as files, for every segment the run can ask for.
    let steps = args.viewers.len() as u64;
    let mut nginx = None;
    let nginx_port = stb_server_common::listener::free_loopback_port()?;
    if args.nginx != "none" {
        // Every step runs four targets, each with a join phase before its measured seconds.
        let until = now_ms() + ((steps * 4 * (args.seconds + 15) + 60) * 1000) as i64;
        export_segments(&config, &keys, &catalogue, &dir.join("www"), until)?;
        nginx = Some(start_nginx(&args.nginx, &dir, &config, nginx_port)?);
    }
    // The edge: nginx as `content-server edge nginx` sets it up, in front of the origin.
    let edge = if args.nginx == "none" {
        None
    } else {
        Some(start_edge(&args.nginx, &dir, &config, &keys, edge_port)?)
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = stb_server_common::process_rss_bytes(server.0.id());
    eprintln!(
        "content-server idle with {} channels: {:.1} MB resident",
        catalogue.channels.len(),
        idle_rss as f64 / 1e6
    );

    let mut rows = Vec::new();
    let targets: Vec<(&str, u16, Mode, u32)> = {
        let mut t = vec![
            ("content-server (poll)", port, Mode::Poll, server.0.id()),
            ("content-server (stream)", port, Mode::Stream, server.0.id()),
        ];
        if let Some(n) = &nginx {
            t.push(("nginx (poll)", nginx_port, Mode::Poll, n.0.id()));
        }
        if let Some(e) = &edge {
            t.push((
                "edge (poll)",
                edge_port,
                Mode::Edge { origin: port },
                e.0.id(),
            ));
        }
        t
    };
    for &viewers in &args.viewers {
        for &(name, port, mode, pid) in &targets {
            // The last target's connections close before this one is measured.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let (tally, cpu) = run_viewers(
                &catalogue,
                (&ca_pem, &identity),
                port,
                mode,
                viewers,
                args.seconds,
                &[pid, server.0.id()],
            )
            .await;
            let (cpu, origin_cpu) = (cpu[0], cpu[1]);
            let mut joins = tally.join_ms.clone();
            joins.sort();
            let join_p50 = joins.get(joins.len() / 2).copied().unwrap_or(0);
            let rss_mb = stb_server_common::process_rss_bytes(pid) as f64 / 1e6;
            let mut l = tally.lateness_ms.clone();
            l.sort();
            let p99 = l
                .get((l.len() as f64 * 0.99) as usize)
                .or(l.last())
                .copied()
                .unwrap_or(0);
            let late_pct =
                100.0 * (tally.late + tally.errors) as f64 / tally.segments.max(1) as f64;
            rows.push((
                name,
                viewers,
                tally.segments,
                tally.late,
                tally.errors,
                late_pct,
                p99,
                cpu,
                rss_mb,
                origin_cpu,
                join_p50,
            ));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"server": name, "viewers": viewers, "segments": tally.segments,
                    "late": tally.late, "errors": tally.errors, "late_pct": late_pct, "p99_lateness_ms": p99,
                    "server_cpu_s": cpu, "server_rss_mb": rss_mb, "origin_cpu_s": origin_cpu, "join_p50_ms": join_p50, "seconds": args.seconds,
                    "channels": catalogue.channels.len(), "subscribers": args.subscribers + 1})
                );
            } else {
                eprintln!(
                    "{name}: {viewers} viewers, {} segments, {} late, {} errors",
                    tally.segments, tally.late, tally.errors
                );
            }
        }
    }
    if !args.json {
        println!(
            "| server | viewers | segments | late (>1 s) | errors | late % | p99 lateness | server CPU s | server RSS MB | origin CPU s | zap p50 |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for (name, v, s, late, e, pct, p99, cpu, rss, origin, join) in rows {
            println!(
                "| {name} | {v} | {s} | {late} | {e} | {pct:.2} | {p99} ms | {cpu:.2} | {rss:.0} | {origin:.2} | {join} ms |"
            );
        }
    }
    drop(edge);
    drop(nginx);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn enroll(ca_pem: &str, port: u16, code: &str) -> Result<String> {
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
        .build()?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
    let url = format!("https://127.0.0.1:{port}/v1/enroll");
    let body = EnrollRequest {
        code: code.into(),
        csr_pem: csr.pem()?,
    };
    let r = client.post(&url).json(&body).send().await?;
    if r.status() != 200 {
        bail!("enrollment refused: {}", r.text().await.unwrap_or_default());
    }
    let e: EnrollResponse = r.json().await?;
    Ok(format!("{}{}", e.certificate_pem, key.serialize_pem()))
}

fn export_segments(
    config: &Config,
    keys: &OperatorKeys,
    catalogue: &Catalogue,
    www: &Path,
    until_ms: i64,
) -> Result<()> {
    for ch in catalogue.channels.values().map(Ch::of) {
        let dir = www.join(format!("v1/channels/{}/segments", ch.number));
        std::fs::create_dir_all(&dir)?;
        let mut seq = ch.live_at(now_ms()).sequence.saturating_sub(2);
        while ch.position(seq).start_ms <= until_ms {
            std::fs::write(
                dir.join(seq.to_string()),
                content_server::packager::encrypt_segment(config, keys, ch.number, ch.looped, seq)?,
            )?;
            seq += 1;
        }
    }
    Ok(())
}

fn start_nginx(bin: &str, dir: &Path, config: &Config, port: u16) -> Result<Proc> {
    let (cert, key) = config.tls_paths();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes auto;\nworker_rlimit_nofile 65535;\npid {pid};\nerror_log {err} warn;\nuser root;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 100000;\n  keepalive_timeout 120s;\n\
               server {{\n    listen 127.0.0.1:{port} ssl http2 backlog=4096;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 ssl_client_certificate {ca};\n    ssl_verify_client on;\n\
                 ssl_protocols TLSv1.2 TLSv1.3;\n    root {www};\n\
                 location / {{ default_type application/octet-stream; }}\n  }}\n}}\n",
            pid = dir.join("nginx.pid").display(),
            err = dir.join("nginx-error.log").display(),
            cert = cert.display(),
            key = key.display(),
            ca = config.ca_dir().join("ca.crt").display(),
            www = dir.join("www").display(),
        ),
    )?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    Ok(Proc(child))
}

/// The edge as `content-server edge nginx` writes it, run as its own nginx.
fn start_edge(
    bin: &str,
    dir: &Path,
    config: &Config,
    keys: &OperatorKeys,
    port: u16,
) -> Result<Proc> {
    use std::os::unix::fs::PermissionsExt;
    let edge = dir.join("edge");
    // nginx's workers (www-data) keep their cache under it.
    for d in [dir, &edge] {
        std::fs::create_dir_all(d)?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let (cert, key) = config.tls_paths();
    let site = content_server::edge::EdgeSite {
        listen: format!("127.0.0.1:{port}"),
        cert,
        key,
        cache_dir: edge.join("cache"),
        origin: format!("https://localhost:{}", config.enroll_listen.port()),
        origin_ca: config.ca_dir().join("ca.crt"),
    };
    content_server::edge::write_nginx_files(&keys.edge_keys(), &site, &edge.join("conf"))?;
    let child = content_server::edge::start_nginx(
        Path::new(bin),
        &edge.join("conf"),
        format!("127.0.0.1:{port}").parse()?,
    )?;
    Ok(Proc(child))
}

async fn run_viewers(
    catalogue: &Arc<Catalogue>,
    (ca_pem, identity): (&str, &str),
    port: u16,
    mode: Mode,
    viewers: usize,
    seconds: u64,
    pids: &[u32],
) -> (Tally, Vec<f64>) {
    let end_ms = now_ms() + (seconds * 1000) as i64;
    let numbers: Vec<u16> = catalogue.channels.keys().copied().collect();
    // Everyone joins (TLS handshake, first segment) before anything is measured: the test is
    // about viewers watching, not about a thousand boxes switched on in the same millisecond.
    // This task waits too, to start counting the servers' CPU then.
    let joined = Arc::new(tokio::sync::Barrier::new(viewers + 1));
    let mut tasks = Vec::new();
    for v in 0..viewers {
        let number = numbers[v % numbers.len()];
        let (catalogue, ca, id) = (catalogue.clone(), ca_pem.to_owned(), identity.to_owned());
        let joined = joined.clone();
        tasks.push(tokio::spawn(async move {
            let builder = reqwest::Client::builder()
                .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca")])
                .identity(reqwest::Identity::from_pem(id.as_bytes()).expect("identity"));
            let client = match builder.build() {
                Ok(c) => c,
                Err(_) => {
                    joined.wait().await;
                    let failed = Tally {
                        errors: 1,
                        ..Tally::default()
                    };
                    return (failed, None);
                }
            };
            let ch = &Ch::of(&catalogue.channels[&number]);
            let tally = viewer(&client, ch, port, mode, end_ms, &joined).await;
            // The client (its connections) lives until the CPU is read: boxes switching off
            // all at once is not what is measured.
            (tally, Some(client))
        }));
    }
    joined.wait().await;
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|&p| stb_server_common::process_cpu_seconds(p))
        .collect();
    let mut total = Tally::default();
    let mut clients = Vec::with_capacity(viewers);
    for t in tasks {
        if let Ok((t, client)) = t.await {
            clients.push(client);
            total.segments += t.segments;
            total.late += t.late;
            total.errors += t.errors;
            total.lateness_ms.extend(t.lateness_ms);
            total.join_ms.extend(t.join_ms);
        }
    }
    let cpu = pids
        .iter()
        .zip(cpu0)
        .map(|(&p, c)| stb_server_common::process_cpu_seconds(p) - c)
        .collect();
    drop(clients);
    (total, cpu)
}

/// A test channel: the load measures looped channels, whose timeline it computes as the
/// server does.
struct Ch<'a> {
    number: u16,
    looped: &'a Looped,
}

impl<'a> Ch<'a> {
    fn of(channel: &'a content_server::catalogue::Channel) -> Self {
        Self {
            number: channel.number,
            looped: channel.looped().expect("checked when loaded"),
        }
    }

    fn live_at(&self, now_ms: i64) -> Position {
        self.looped.live_at(now_ms)
    }

    fn position(&self, sequence: u64) -> Position {
        self.looped.position(sequence)
    }
}

fn record(t: &mut Tally, ch: &Ch<'_>, due_ms: i64, seq: u64) {
    let lateness = now_ms() - due_ms;
    t.segments += 1;
    t.lateness_ms.push(lateness);
    if lateness > ch.position(seq).duration_ms as i64 {
        t.late += 1;
    }
}

/// How a viewer receives its channel after joining.
enum Feed {
    /// Fetches each segment at the instant it goes on air, from `base` (a signed edge URL
    /// prefix and its query) or from the origin.
    Poll {
        next: u64,
        base: Option<(String, String)>,
    },
    /// Reads `/v1/channels/N/stream`; segments on air before `measure_from` are not measured.
    Stream {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        split: stb_protocol::SegmentSplitter,
        measure_from: u64,
    },
}

/// What a viewer got next.
enum Next {
    /// Segment `sequence`, complete now.
    Segment(u64),
    /// A segment that did not come (an error answer, a broken body).
    Missed,
    /// The stream broke: the viewer stops.
    Broken,
    /// The measured time is over.
    Done,
}

impl Feed {
    async fn next(
        &mut self,
        client: &reqwest::Client,
        ch: &Ch<'_>,
        port: u16,
        end_ms: i64,
    ) -> Next {
        match self {
            Feed::Poll { next, base } => {
                let seq = *next;
                let due = ch.position(seq).start_ms;
                if due > end_ms {
                    return Next::Done;
                }
                let wait = due - now_ms();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
                *next += 1;
                let url = match base {
                    Some((prefix, query)) => format!("{prefix}{seq}?{query}"),
                    None => segment_url(port, ch, seq),
                };
                match client.get(url).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => Next::Segment(seq),
                        Err(_) => Next::Missed,
                    },
                    _ => Next::Missed,
                }
            }
            Feed::Stream {
                body,
                split,
                measure_from,
            } => loop {
                while let Ok(Some((h, _))) = split.next_segment() {
                    if h.sequence >= *measure_from {
                        return Next::Segment(h.sequence);
                    }
                }
                if now_ms() >= end_ms {
                    return Next::Done;
                }
                match body.next().await {
                    Some(Ok(chunk)) => split.push(&chunk),
                    _ => return Next::Broken,
                }
            },
        }
    }
}

/// The signed edge prefix and query the origin gives for `channel`.
async fn edge_access(
    client: &reqwest::Client,
    origin: u16,
    channel: u16,
) -> Option<(String, String)> {
    let url = format!("https://127.0.0.1:{origin}/v1/channels/{channel}/live");
    let live: content_server::routes::LiveEdge =
        client.get(url).send().await.ok()?.json().await.ok()?;
    let access = live.edge?;
    Some((access.segments_url, access.query))
}

fn segment_url(port: u16, ch: &Ch<'_>, sequence: u64) -> String {
    format!(
        "https://127.0.0.1:{port}/v1/channels/{}/segments/{sequence}",
        ch.number
    )
}

/// One viewer: joins its channel (connection and first segment, not measured), waits for
/// everyone to have joined, then measures every segment until `end_ms`.
async fn viewer(
    client: &reqwest::Client,
    ch: &Ch<'_>,
    port: u16,
    mode: Mode,
    end_ms: i64,
    joined: &tokio::sync::Barrier,
) -> Tally {
    let mut t = Tally::default();
    let started = std::time::Instant::now();
    let mut feed = match mode {
        Mode::Poll | Mode::Edge { .. } => {
            // Joining: (a token from the origin, then) the segment on air, as a box does.
            let base = match mode {
                Mode::Edge { origin } => match edge_access(client, origin, ch.number).await {
                    Some(a) => Some(a),
                    None => {
                        joined.wait().await;
                        t.errors += 1;
                        return t;
                    }
                },
                _ => None,
            };
            let live = ch.live_at(now_ms()).sequence;
            let url = match &base {
                Some((prefix, query)) => format!("{prefix}{live}?{query}"),
                None => segment_url(port, ch, live),
            };
            let whole = match client.get(url).send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                _ => false,
            };
            if whole {
                t.join_ms.push(started.elapsed().as_millis() as i64);
            } else {
                t.errors += 1;
            }
            joined.wait().await;
            Feed::Poll {
                next: ch.live_at(now_ms()).sequence + 1,
                base,
            }
        }
        Mode::Stream => {
            let url = format!("https://127.0.0.1:{port}/v1/channels/{}/stream", ch.number);
            let response = client.get(&url).send().await;
            joined.wait().await;
            let Ok(mut r) = response else {
                return Tally {
                    errors: 1,
                    segments: 1,
                    ..Tally::default()
                };
            };
            // The stream starts with the whole segment on air: its arrival is the zap.
            let mut split = stb_protocol::SegmentSplitter::default();
            let mut first = None;
            while first.is_none() {
                match r.chunk().await {
                    Ok(Some(chunk)) => split.push(&chunk),
                    _ => break,
                }
                first = split.next_segment().ok().flatten().map(|(h, _)| h.sequence);
            }
            if first.is_some() {
                t.join_ms.push(started.elapsed().as_millis() as i64);
            }
            Feed::Stream {
                body: r.bytes_stream().boxed(),
                split,
                measure_from: ch.live_at(now_ms()).sequence + 1,
            }
        }
    };
    loop {
        match feed.next(client, ch, port, end_ms).await {
            Next::Segment(seq) => record(&mut t, ch, ch.position(seq).start_ms, seq),
            Next::Missed => {
                t.segments += 1;
                t.errors += 1;
            }
            Next::Broken => {
                t.errors += 1;
                return t;
            }
            Next::Done => return t,
        }
    }
}
