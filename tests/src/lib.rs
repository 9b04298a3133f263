//! Harness for the end-to-end tests: runs the real `content-server`, `keyserver` and
//! `stb-app` binaries (from this workspace's target directory) on loopback, each in its own
//! temporary directory, the way an operator and a box would.

use anyhow::{Context, Result, bail};
use stb_server_common::listener::wait_for_server;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The demo subscriber's password in these tests.
pub const PASSWORD: &str = "Sofa-Remote#2026!";

fn bin(name: &str) -> PathBuf {
    // target/debug/deps/e2e-xxxx -> target/debug/<name>
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name)
}

/// A running server process, killed when dropped.
#[derive(Debug)]
pub struct Server(Child);

impl Server {
    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The operator's edge (nginx), stopped when dropped.
#[derive(Debug)]
pub struct Edge {
    child: Child,
    dir: PathBuf,
}

impl Edge {
    /// `status cache-status request` per request served.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        // TERM, not KILL: the master takes its workers down with it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// The whole stack.
#[derive(Debug)]
pub struct Stack {
    /// Work directory (content/, keyserver/, box.toml).
    pub dir: tempfile::TempDir,
    /// Content server (mutual TLS) port.
    pub content_port: u16,
    /// Enrollment port.
    pub enroll_port: u16,
    /// Key server port.
    pub key_port: u16,
    /// Key server flags (guess limits) used at every (re)start.
    pub key_flags: Vec<String>,
    /// Content server flags used at every (re)start.
    pub content_flags: Vec<String>,
    /// A command both servers run under (e.g. `prlimit --nofile=1024 --`), or empty.
    pub server_wrapper: Vec<String>,
    /// The content server's channel manifest.
    pub channels: PathBuf,
    /// The content server process.
    pub content: Option<Server>,
    /// The key server process.
    pub keyserver: Option<Server>,
}

/// Runs an operator command; its stderr is the error when it fails.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// The `1234-5678-9012` code an operator command printed.
fn enrollment_code(out: &Output) -> Result<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split_whitespace()
        .find(|w| w.len() == 14 && w.matches('-').count() == 2)
        .context("enrollment code in the output")?
        .to_owned())
}

impl Stack {
    /// A new enrollment code for `subscriber` from the registration desk.
    pub fn new_code(&self, subscriber: &str) -> Result<String> {
        enrollment_code(&run(self.content_cmd().args([
            "subscriber",
            "code",
            subscriber,
        ]))?)
    }

    /// Initialises the operator, adds `subscriber` with `package` and starts both servers.
    /// Returns the stack and the subscriber's enrollment code.
    pub fn start(subscriber: &str, package: &str, key_flags: &[&str]) -> Result<(Self, String)> {
        Self::start_with(subscriber, package, key_flags, &[], &[])
    }

    /// [`Stack::start`] with content server flags and a wrapper command for both servers.
    pub fn start_with(
        subscriber: &str,
        package: &str,
        key_flags: &[&str],
        content_flags: &[&str],
        server_wrapper: &[&str],
    ) -> Result<(Self, String)> {
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-fixtures/channels.toml");
        Self::start_with_channels(
            subscriber,
            package,
            key_flags,
            content_flags,
            server_wrapper,
            &fixtures,
        )
    }

    /// [`Stack::start_with`] with the operator's own channel manifest.
    pub fn start_with_channels(
        subscriber: &str,
        package: &str,
        key_flags: &[&str],
        content_flags: &[&str],
        server_wrapper: &[&str],
        channels: &Path,
    ) -> Result<(Self, String)> {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let dir = tempfile::tempdir()?;
        let mut stack = Self {
            dir,
            content_port: stb_server_common::listener::free_loopback_port()?,
            enroll_port: stb_server_common::listener::free_loopback_port()?,
            key_port: stb_server_common::listener::free_loopback_port()?,
            key_flags: owned(key_flags),
            content_flags: owned(content_flags),
            server_wrapper: owned(server_wrapper),
            channels: channels.to_owned(),
            content: None,
            keyserver: None,
        };
        run(stack.content_cmd().arg("init"))?;
        let out =
            run(stack
                .content_cmd()
                .args(["subscriber", "add", subscriber, "--package", package]))?;
        let code = enrollment_code(&out)?;
        run(stack.key_cmd().arg("init"))?;
        // The content server first: the key server takes the operator's CRL from it.
        stack.start_content()?;
        stack.start_keyserver()?;
        std::fs::write(
            stack.dir.path().join("box.toml"),
            format!(
                "keyserver_url = \"https://127.0.0.1:{}\"\nkeyserver_ca = \"{}\"\n\
                 enroll_url = \"https://127.0.0.1:{}\"\nenroll_ca = \"{}\"\n",
                stack.key_port,
                stack.dir.path().join("keyserver/tls/server.crt").display(),
                stack.enroll_port,
                stack.ca().display(),
            ),
        )?;
        Ok((stack, code))
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("content/ca/ca.crt")
    }

    fn server_cmd(&self, name: &str) -> Command {
        match self.server_wrapper.split_first() {
            None => Command::new(bin(name)),
            Some((wrapper, args)) => {
                let mut c = Command::new(wrapper);
                c.args(args).arg(bin(name));
                c
            }
        }
    }

    /// `content-server` with this stack's data directory and channels.
    pub fn content_cmd(&self) -> Command {
        let mut c = self.server_cmd("content-server");
        c.arg("--data-dir").arg(self.dir.path().join("content"));
        c.arg("--channels").arg(&self.channels);
        c
    }

    /// `keyserver` with this stack's data directory.
    pub fn key_cmd(&self) -> Command {
        let mut c = self.server_cmd("keyserver");
        c.arg("--data-dir").arg(self.dir.path().join("keyserver"));
        c
    }

    /// Waits until the server just started accepts connections on each of `ports` (it
    /// binds them once its database, keys and certificates are loaded); fails at once,
    /// with its log, when it exits.
    fn wait_listening(server: &mut Server, ports: &[u16], log: &Path) -> Result<()> {
        for &port in ports {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            wait_for_server(&mut server.0, addr, Duration::from_secs(20)).map_err(|e| {
                anyhow::anyhow!(
                    "server on {port}: {e}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })?;
        }
        Ok(())
    }

    /// Starts (or restarts) the content server.
    pub fn start_content(&mut self) -> Result<()> {
        let log = self.dir.path().join("content.log");
        let child = self
            .content_cmd()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.content_port),
            ])
            .args([
                "--enroll-listen",
                &format!("127.0.0.1:{}", self.enroll_port),
            ])
            .args([
                "--public-url",
                &format!("https://127.0.0.1:{}", self.content_port),
            ])
            .args([
                "--keyserver-url",
                &format!("https://127.0.0.1:{}", self.key_port),
            ])
            .args(&self.content_flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let server = self.content.insert(Server(child));
        Self::wait_listening(server, &[self.content_port, self.enroll_port], &log)
    }

    /// Starts the operator's edge on 127.0.0.1:`port`: nginx as `content-server edge nginx`
    /// sets it up (this stack's TLS pair, in front of its enrollment listener).
    pub fn start_edge(&self, port: u16) -> Result<Edge> {
        let dir = self.dir.path().join("edge");
        std::fs::create_dir_all(&dir)?;
        // nginx's workers (www-data) keep their cache under it.
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let tls = self.dir.path().join("content/tls");
        run(self
            .content_cmd()
            .args(["edge", "nginx", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--cert")
            .arg(tls.join("server.crt"))
            .arg("--key")
            .arg(tls.join("server.key"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .args([
                "--origin",
                &format!("https://localhost:{}", self.enroll_port),
            ])
            .arg("--out-dir")
            .arg(dir.join("conf")))?;
        let log = dir.join("conf/error.log");
        let mut child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(dir.join("conf/nginx.conf"))
            .arg("-e")
            .arg(&log)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("nginx (scripts/install-deps.sh installs it)")?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Err(e) = wait_for_server(&mut child, addr, Duration::from_secs(10)) {
            anyhow::bail!(
                "edge: {e}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok(Edge {
            child,
            dir: dir.join("conf"),
        })
    }

    /// Starts (or restarts) the key server.
    pub fn start_keyserver(&mut self) -> Result<()> {
        let log = self.dir.path().join("keyserver.log");
        let child = self
            .key_cmd()
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.key_port),
                "--admin-listen",
                "none",
            ])
            .arg("--operator-ca")
            .arg(self.ca())
            .args([
                "--operator-crl",
                &format!("https://127.0.0.1:{}/v1/crl", self.enroll_port),
                "--crl-refresh-secs",
                "1",
            ])
            .args(&self.key_flags)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let server = self.keyserver.insert(Server(child));
        Self::wait_listening(server, &[self.key_port], &log)
    }

    /// `stb-app` with this stack's box configuration, `stdin` written to it.
    pub fn stb_app(&self, args: &[&str], stdin: &str) -> Result<Child> {
        let mut child = Command::new(bin("stb-app"))
            .arg("--config")
            .arg(self.dir.path().join("box.toml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(stdin.as_bytes())?;
        Ok(child)
    }

    /// Registers `identifier` with the code (password twice on stdin).
    pub fn register(&self, code: &str, identifier: &str) -> Result<Output> {
        let child = self.stb_app(
            &["register", "--code", code, "--identifier", identifier],
            &format!("{PASSWORD}\n{PASSWORD}\n"),
        )?;
        Ok(child.wait_with_output()?)
    }

    /// Headless run; returns the JSON report.
    pub fn headless(
        &self,
        identifier: &str,
        password: &str,
        channels: &str,
        dwell: f64,
    ) -> Result<serde_json::Value> {
        let child = self.stb_app(
            &[
                "headless",
                "--identifier",
                identifier,
                "--channels",
                channels,
                "--dwell-secs",
                &dwell.to_string(),
            ],
            &format!("{password}\n"),
        )?;
        let out = child.wait_with_output()?;
        serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "report: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}
