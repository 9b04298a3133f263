//! `keyserver-load`: recovery load generator. Starts a `keyserver serve` child on loopback with
//! a throwaway operator CA (SQLite by default, or `--database postgres://...`), registers
//! distinct accounts, then runs recoveries (recover + confirm, each on a fresh TLS connection as
//! a real box would) at a chosen concurrency, and prints throughput, latency percentiles and the
//! server's CPU time per recovery, read from /proc so the generator's own CPU is not counted.

use anyhow::{Context, Result, bail};
use clap::Parser;
use stb_protocol::eke::RecoverResponse;
use stb_protocol::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about = "Load generator for the key server's EKE recovery")]
struct Args {
    /// Distinct registered accounts.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Recoveries to run.
    #[arg(long, default_value_t = 2000)]
    recoveries: usize,
    /// Recoveries in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Database URL for the server (default: SQLite in a temporary directory).
    #[arg(long)]
    database: Option<String>,
    /// The keyserver binary (default: next to this one).
    #[arg(long)]
    keyserver: Option<PathBuf>,
    /// Returning boxes: each account keeps its TLS session cache from one recovery to the
    /// next (as stb-app does between logins), so its later recoveries resume the TLS session
    /// on their new connection. Without it every recovery is a box's first (full handshake).
    #[arg(long)]
    returning: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

fn pki() -> Result<(Pki, String, String, Vec<u8>)> {
    use rcgen::*;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Load Test Operator CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(params, key)?;
    let client_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "load-test-subscriber");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&client_key, &ca)?;
    let identity = format!("{}{}", cert.pem(), client_key.serialize_pem());
    Ok((Pki { ca }, identity, cert.pem(), cert.der().to_vec()))
}

struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(server_cert: &str, identity: Option<&str>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server_cert.as_bytes())?]);
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes())?);
    }
    Ok(b.build()?)
}

/// Client configurations for `boxes` returning boxes, each with a session cache of its own.
fn returning_boxes(server_cert: &str, boxes: usize) -> Result<Vec<rustls::ClientConfig>> {
    use rustls::client::{ClientSessionMemoryCache, Resumption};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_cert.as_bytes()) {
        roots.add(cert?)?;
    }
    let base = rustls::ClientConfig::builder_with_provider(stb_server_common::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((0..boxes)
        .map(|_| {
            let mut config = base.clone();
            config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(4)));
            config
        })
        .collect())
}

fn kp_for(i: usize) -> SecretArray<32> {
    let mut kp = [0u8; 32];
    kp[..8].copy_from_slice(&(i as u64).to_be_bytes());
    SecretArray::new(kp)
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("keyserver-load-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tls"))?;
    let (pki, identity, _cert_pem, cert_der) = pki()?;
    let (server_cert, server_key) = stb_server_common::tls::self_signed(&["127.0.0.1".into()])?;
    std::fs::write(dir.join("tls/server.crt"), &server_cert)?;
    std::fs::write(dir.join("tls/server.key"), server_key)?;
    std::fs::write(dir.join("ca.pem"), pki.ca.pem())?;
    // Where `serve` looks for the key-encryption key by default (DATA_DIR/secrets/kek.key).
    keyserver::kek::Kek::create(&dir.join("secrets/kek.key"))?;
    let port = stb_server_common::listener::free_loopback_port()?;
    let exe = match &args.keyserver {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("keyserver"),
    };
    // A load test from one address with one certificate: every limit that would refuse it
    // (guess spacing and locks, per-source rate, identifiers per subscriber) is lifted.
    std::fs::write(
        dir.join("config.toml"),
        "[limits]\nmin_spacing_secs = 0\nmax_failures = 1000000000\n\
         max_failures_long = 1000000000\nrecover_rate_per_source = 1e9\n\
         recover_burst_per_source = 1000000000\nmax_identifiers_per_subscriber = 1000000000\n",
    )?;
    let mut cmd = Command::new(&exe);
    cmd.arg("--config").arg(dir.join("config.toml"));
    cmd.arg("--data-dir").arg(&dir);
    if let Some(db) = &args.database {
        cmd.arg("--database").arg(db);
    }
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        "none",
    ])
    .arg("--operator-ca")
    .arg(dir.join("ca.pem"))
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null());
    let mut child = ServerChild(
        cmd.spawn()
            .with_context(|| format!("starting {}", exe.display()))?,
    );
    let pid = child.0.id();
    let base = format!("https://127.0.0.1:{port}");
    tokio::task::block_in_place(|| {
        stb_server_common::listener::wait_for_server(
            &mut child.0,
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        )
    })
    .context("keyserver did not start")?;

    // Register the accounts (not measured).
    let registrar = client(&server_cert, Some(&identity))?;
    let data = PersonalData {
        account: "Load Test".into(),
        certificate_der: cert_der,
        private_key_pkcs8: SecretVec::new(vec![1; 138]),
        ks: SecretArray::new([2; 32]),
        content_server_url: "https://127.0.0.1:8443".into(),
        operator_ca_der: pki.ca.der().to_vec(),
        keyserver_url: base.clone(),
        locker_key: None,
    };
    for i in 0..args.accounts {
        let id = Identifier::parse(&format!("load{i}"))?;
        let keys = PasswordKeys::from_kp(Suite::V1, &id, &kp_for(i));
        let req = RegisterRequest::new(&keys, &data, random_array())?;
        let r = registrar
            .post(format!("{base}/v1/register"))
            .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
            .body(req.encode())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("registration {i} failed: {}", r.status());
        }
    }

    // Empty without --returning: every recovery then gets a client with no session cache.
    let boxes = Arc::new(if args.returning {
        returning_boxes(&server_cert, args.accounts)?
    } else {
        Vec::new()
    });
    let cpu_before = stb_server_common::process_cpu_seconds(pid);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (next, base, server_cert) = (next.clone(), base.clone(), server_cert.clone());
        let (total, accounts, boxes) = (args.recoveries, args.accounts, boxes.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let i = n % accounts;
                let t = Instant::now();
                // A new client, hence a new connection, for every recovery either way.
                let http = match boxes.get(i) {
                    Some(tls) => reqwest::Client::builder()
                        .use_preconfigured_tls(tls.clone())
                        .build()
                        .map_err(anyhow::Error::from),
                    None => client(&server_cert, None),
                };
                match async { one_recovery(&http?, &base, i).await }.await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(e) => {
                        failures += 1;
                        if failures < 5 {
                            eprintln!("recovery {n} failed: {e:#}");
                        }
                    }
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = stb_server_common::process_cpu_seconds(pid) - cpu_before;
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);

    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    let ok = latencies.len();
    let backend = if args.database.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "backend": backend, "returning": args.returning,
                "recoveries": ok, "failures": failures,
                "concurrency": args.concurrency, "seconds": elapsed,
                "per_second": ok as f64 / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                "server_cpu_ms_per_recovery": cpu * 1e3 / ok.max(1) as f64,
            })
        );
    } else {
        println!(
            "backend {backend}, {ok} recoveries ({failures} failed), concurrency {}, {}",
            args.concurrency,
            if args.returning {
                "returning boxes (TLS resumed)"
            } else {
                "first logins (full TLS handshake)"
            }
        );
        println!(
            "throughput {:.0} recoveries/s over {elapsed:.2} s",
            ok as f64 / elapsed
        );
        println!(
            "latency p50 {:.2} ms, p99 {:.2} ms (recover + confirm, new connection)",
            pct(0.5),
            pct(0.99)
        );
        println!(
            "server CPU {:.3} ms per recovery ({cpu:.2} s total)",
            cpu * 1e3 / ok.max(1) as f64
        );
    }
    if failures > 0 {
        bail!("{failures} recoveries failed");
    }
    Ok(())
}

/// Recover + confirm for account `i` on `http`'s new connection (the confirmation reuses the
/// connection like a box would).
async fn one_recovery(http: &reqwest::Client, base: &str, i: usize) -> Result<()> {
    let id = Identifier::parse(&format!("load{i}"))?;
    let keys = PasswordKeys::from_kp(Suite::V1, &id, &kp_for(i));
    let (state, request) = ClientRecovery::start(keys, &mut os_rng())?;
    let r = http
        .post(format!("{base}/v1/recover"))
        .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
        .body(request.encode())
        .send()
        .await?;
    if r.status() != 200 {
        bail!("recover: {}", r.status());
    }
    let response = RecoverResponse::decode(&r.bytes().await?)?;
    let (_, confirm) = state.finish(&response)?;
    let r = http
        .post(format!("{base}/v1/confirm"))
        .header(reqwest::header::CONTENT_TYPE, keyserver::routes::MEDIA_TYPE)
        .body(confirm.encode())
        .send()
        .await?;
    if r.status() != 204 {
        bail!("confirm: {}", r.status());
    }
    Ok(())
}
