//! Connection exhaustion (issue 18, finding 1): with their open-file limit at 1,024, both
//! servers are held under 2,000 idle and slow connections from 40 loopback addresses, kept up
//! by reconnecting, while a box logs in and plays. Before the caps and timeouts, 235 idle
//! TLS connections at a limit of 256 made `/healthz` time out for everyone.
#![allow(missing_docs)]

use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use stb_e2e::{PASSWORD, Stack};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SOURCES: u8 = 40;
const PER_SOURCE: usize = 50;
const LIMITS: &str = "[connections]\nhandshake_timeout_secs = 3\nheader_timeout_secs = 3\n\
                      idle_timeout_secs = 10\nmax_connections_per_source = 10\n";

#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    /// Closed by the server within 100 ms, before any TLS byte came back: a cap.
    refused: AtomicU64,
    /// Closed by the server later: a timeout.
    timed_out: AtomicU64,
    /// Could not connect at all.
    failed: AtomicU64,
}

#[derive(Clone, Copy)]
enum Kind {
    /// TCP, then nothing.
    Silent,
    /// A TLS record header, then one byte a second.
    SlowHello,
    /// A full TLS handshake, then a request head one byte a second.
    SlowHeaders,
}

async fn connect_from(source: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Drips `bytes` one a second until the server closes; returns whether it did.
async fn drip<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    until: Instant,
) -> bool {
    let mut buf = [0u8; 512];
    for &b in bytes.iter().cycle() {
        if Instant::now() >= until {
            return false;
        }
        if stream.write_all(&[b]).await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            _ => {}
        }
    }
    false
}

/// One attacker connection, reopened whenever the server closes it, until `until`.
async fn attacker(
    source: IpAddr,
    port: u16,
    kind: Kind,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    counts: Arc<Counts>,
    until: Instant,
) {
    while Instant::now() < until {
        let Ok(mut tcp) = connect_from(source, port).await else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        counts.connects.fetch_add(1, Ordering::Relaxed);
        let opened = Instant::now();
        let closed = match (kind, &tls) {
            (Kind::Silent, _) => {
                let mut buf = [0u8; 64];
                let left = until.saturating_duration_since(Instant::now());
                matches!(
                    tokio::time::timeout(left, tcp.read(&mut buf)).await,
                    Ok(Ok(0) | Err(_))
                )
            }
            (Kind::SlowHello, _) => {
                drip(&mut tcp, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01], until).await
            }
            (Kind::SlowHeaders, Some((connector, name))) => {
                match connector.connect(name.clone(), tcp).await {
                    Ok(mut tls) => {
                        drip(
                            &mut tls,
                            b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Slow: ",
                            until,
                        )
                        .await
                    }
                    Err(_) => true,
                }
            }
            (Kind::SlowHeaders, None) => unreachable!("TLS kinds have a connector"),
        };
        if closed {
            if opened.elapsed() < Duration::from_millis(100) {
                counts.refused.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn connector(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

fn healthz_ms(stack: &Stack) -> f64 {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(stack.dir.path().join("keyserver/tls/server.crt"))
        .arg(format!("https://127.0.0.1:{}/healthz", stack.key_port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, secs) = text.split_once(' ').expect("curl output");
    assert_eq!(code, "200", "healthz under flood: {text}");
    secs.parse::<f64>().expect("time") * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_logs_in_and_plays_under_2000_idle_and_slow_connections() {
    let dir = tempfile::tempdir().expect("dir");
    let limits = dir.path().join("limits.toml");
    std::fs::write(&limits, LIMITS).expect("limits");
    let limits = limits.display().to_string();
    let (stack, code) = tokio::task::spawn_blocking(move || {
        Stack::start_with(
            "Flo",
            "basic",
            &["--config", &limits],
            &["--config", &limits],
            &["prlimit", "--nofile=1024:1024", "--"],
        )
    })
    .await
    .expect("join")
    .expect("stack");
    let stack = Arc::new(stack);
    let s = stack.clone();
    let registered = tokio::task::spawn_blocking(move || s.register(&code, "flo"))
        .await
        .expect("join")
        .expect("register");
    assert!(registered.status.success());

    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(25);
    let key_tls = (
        connector(&stack.dir.path().join("keyserver/tls/server.crt")),
        ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    );
    let enroll_tls = (
        connector(&stack.dir.path().join("content/ca/ca.crt")),
        ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    );
    let mut tasks = Vec::new();
    for s in 0..SOURCES {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + s));
        for i in 0..PER_SOURCE {
            let (port, tls) = match i % 3 {
                0 => (stack.key_port, Some(key_tls.clone())),
                1 => (stack.content_port, None),
                _ => (stack.enroll_port, Some(enroll_tls.clone())),
            };
            let kind = match (i / 3) % 3 {
                0 => Kind::Silent,
                1 => Kind::SlowHello,
                _ if tls.is_some() => Kind::SlowHeaders,
                _ => Kind::SlowHello,
            };
            tasks.push(tokio::spawn(attacker(
                source,
                port,
                kind,
                tls,
                counts.clone(),
                until,
            )));
        }
    }
    // Let the flood fill every place it can take.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let health_ms = healthz_ms(&stack);
    let started = Instant::now();
    let s = stack.clone();
    let report = tokio::task::spawn_blocking(move || s.headless("flo", PASSWORD, "1,2", 3.0))
        .await
        .expect("join")
        .expect("headless");
    let box_secs = started.elapsed().as_secs_f64();
    let health_after_ms = healthz_ms(&stack);
    for t in tasks {
        t.await.expect("attacker");
    }
    let figures = format!(
        "flood: {} connections opened by 2,000 attackers in 25 s, {} refused at once by a cap, \
         {} closed by a timeout, {} connects failed; /healthz {health_ms:.0} ms and \
         {health_after_ms:.0} ms under flood; box login + 2 channels in {box_secs:.1} s \
         (login {}, first frame ch1 {} ms, ch2 {} ms)",
        counts.connects.load(Ordering::Relaxed),
        counts.refused.load(Ordering::Relaxed),
        counts.timed_out.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        report["login"],
        report["channels"][0]["first_frame_ms"],
        report["channels"][1]["first_frame_ms"],
    );
    eprintln!("{figures}");
    for i in 0..2 {
        assert!(
            report["channels"][i]["video_frames"].as_u64().unwrap_or(0) >= 25,
            "channel {i}: {report}\n{figures}"
        );
    }
    assert!(counts.refused.load(Ordering::Relaxed) > 0, "{figures}");
    assert!(counts.timed_out.load(Ordering::Relaxed) > 0, "{figures}");
    for log in ["keyserver.log", "content.log"] {
        let text = std::fs::read_to_string(stack.dir.path().join(log)).expect("log");
        assert!(!text.contains("Too many open files"), "{log}: {text}");
    }
}
