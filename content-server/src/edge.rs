//! The edge: an ordinary HTTP cache (nginx `proxy_cache` with its JavaScript module) that
//! serves the encrypted segments to boxes, so the origin encrypts and sends each segment once
//! per edge instead of once per viewer.
//!
//! Entitlement stays with the origin: a box asks the origin (mutual TLS, package checked) for
//! its channel's live edge, and gets with it a token for that channel, its own address and a
//! short expiry. The edge checks the token by itself (HMAC-SHA256 under a key derived from the
//! master key, which the edge holds and the boxes never see) and refuses a token that expired,
//! names another channel, was altered, or comes from another address. A revoked or suspended
//! subscriber gets no new token, so it loses the edge at the latest when its token expires.
//!
//! The edge fetches from the origin's enrollment listener (server-authenticated TLS), on a
//! route that wants a second derived key in a header: segments are encrypted for everybody, so
//! this protects the origin's work, not the content.

use crate::config::Config;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use stb_protocol::SecretArray;
use std::net::IpAddr;

/// The keys the origin and the edge share.
#[derive(Debug)]
pub struct EdgeKeys {
    token: SecretArray<32>,
    origin: SecretArray<32>,
}

impl EdgeKeys {
    /// From the two keys derived from the master key (`OperatorKeys::edge_keys`).
    pub fn new(token: SecretArray<32>, origin: SecretArray<32>) -> Self {
        Self { token, origin }
    }

    /// The token letting `address` fetch segments of `channel` until `expires_secs` (Unix):
    /// base64url of HMAC-SHA256 over `expires:channel:address`.
    pub fn token(&self, channel: u16, expires_secs: i64, address: IpAddr) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.token.expose())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{expires_secs}:{channel}:{address}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// What the edge sends the origin in `X-Edge-Key`, hex.
    pub fn origin_key(&self) -> String {
        hex::encode(self.origin.expose())
    }

    /// Whether `presented` is the origin key. Compared as digests, so the time a comparison
    /// takes says nothing about the key.
    pub fn is_origin_key(&self, presented: &str) -> bool {
        Sha256::digest(presented.as_bytes()) == Sha256::digest(self.origin_key().as_bytes())
    }
}

/// Where and how an edge runs.
#[derive(Debug, Clone)]
pub struct EdgeSite {
    /// `host:port` boxes reach it at.
    pub listen: String,
    /// TLS certificate chain (PEM) boxes see: issued by the operator CA (`content-server init
    /// --name`) or by any CA the boxes trust.
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
    /// The cache directory.
    pub cache_dir: std::path::PathBuf,
    /// The origin's enrollment listener, `https://name:port`, by a DNS name its certificate
    /// holds (nginx checks names, not IP addresses).
    pub origin: String,
    /// The CA the origin's certificate is checked against (the operator CA).
    pub origin_ca: std::path::PathBuf,
}

/// Writes the edge's nginx files into `dir`: `stb-edge.conf` (a site for nginx's `http`
/// context: `include DIR/stb-edge.conf;` in the system's nginx, which on Debian loads the
/// JavaScript module of `libnginx-mod-http-js` by itself), `stb_edge.js`, and `nginx.conf`, a
/// whole configuration to run the edge as its own nginx (`nginx -c DIR/nginx.conf`: pid, logs
/// with the cache status, in `dir`; temporary files under the cache directory). The site
/// embeds the two edge keys, so every file is written readable by its owner only (nginx reads
/// them as root at start; its workers run as `www-data`).
pub fn write_nginx_files(
    keys: &EdgeKeys,
    site: &EdgeSite,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let (d, cache) = (dir.display(), site.cache_dir.display());
    let standalone = format!(
        "# The STB edge as its own nginx: nginx -c {d}/nginx.conf\n\
         load_module modules/ngx_http_js_module.so;\nuser www-data;\nworker_processes auto;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n    log_format stb_edge '$remote_addr $status $upstream_cache_status $uri';\n\
         \x20   access_log {d}/access.log stb_edge;\n\
         \x20   client_body_temp_path {cache}-tmp/body;\n    proxy_temp_path {cache}-tmp/proxy;\n\
         \x20   fastcgi_temp_path {cache}-tmp/fastcgi;\n    uwsgi_temp_path {cache}-tmp/uwsgi;\n\
         \x20   scgi_temp_path {cache}-tmp/scgi;\n    include {d}/stb-edge.conf;\n}}\n"
    );
    std::fs::create_dir_all(format!("{cache}-tmp"))?;
    for (name, text) in [
        ("stb-edge.conf", nginx_site(keys, site, dir)),
        ("stb_edge.js", EDGE_JS.to_owned()),
        ("nginx.conf", standalone),
    ] {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // `mode` applies only to a new file: an older copy readable by others is closed too,
        // before the keys are written into it.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
    }
    Ok(())
}

/// Starts nginx in the foreground on the standalone configuration [`write_nginx_files`]
/// wrote into `dir`, and waits until it listens on `listen`; a failure names nginx's error
/// log. Stop it with SIGTERM (its master takes the workers down; SIGKILL would orphan them).
pub fn start_nginx(
    bin: &std::path::Path,
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<std::process::Child> {
    use anyhow::Context;
    let log = dir.join("error.log");
    let mut child = std::process::Command::new(bin)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .args(["-g", "daemon off; worker_rlimit_nofile 65535;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    stb_server_common::listener::wait_for_server(
        &mut child,
        listen,
        std::time::Duration::from_secs(10),
    )
    .map_err(|e| {
        let errors = std::fs::read_to_string(&log).unwrap_or_default();
        anyhow::anyhow!("the edge did not come up: {e}\n{errors}")
    })?;
    Ok(child)
}

/// The nginx site; [`EDGE_JS`] is expected in `js_dir`.
pub fn nginx_site(keys: &EdgeKeys, site: &EdgeSite, js_dir: &std::path::Path) -> String {
    let authority = site
        .origin
        .trim_start_matches("https://")
        .trim_end_matches('/');
    format!(
        r#"# STB edge: encrypted segments from the origin, cached; boxes need a token from the
# origin for each channel (content-server edge nginx-site).
js_path "{js_dir}";
js_import stb_edge.js;
js_set $stb_token_ok stb_edge.verify;
proxy_cache_path {cache_dir} levels=1:2 keys_zone=stb_segments:32m max_size=4g inactive=10m use_temp_path=off;

upstream stb_origin {{
    server {origin_authority};
    keepalive 16;
}}

server {{
    listen {listen} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    set $stb_token_key "{token_key}";

    location ~ "^/v1/channels/[0-9]+/segments/[0-9]+$" {{
        if ($stb_token_ok != "1") {{
            return 403 "segment token refused\n";
        }}
        proxy_pass https://stb_origin/v1/edge$uri;
        proxy_set_header X-Edge-Key "{origin_key}";
        proxy_ssl_server_name on;
        proxy_ssl_name {origin_host};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {origin_ca};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_cache stb_segments;
        # The token is not part of the segment: one cached copy serves every box.
        proxy_cache_key $uri;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 5s;
        proxy_ignore_headers Set-Cookie;
        add_header X-Cache-Status $upstream_cache_status always;
    }}
    location / {{
        return 404;
    }}
}}
"#,
        js_dir = js_dir.display(),
        cache_dir = site.cache_dir.display(),
        listen = site.listen,
        cert = site.cert.display(),
        key = site.key.display(),
        origin_authority = authority,
        origin_host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
        origin_ca = site.origin_ca.display(),
        token_key = hex::encode(keys.token.expose()),
        origin_key = keys.origin_key(),
    )
}

/// The edge's token check (njs 0.7, `libnginx-mod-http-js`), the same computation as
/// [`EdgeKeys::token`].
pub const EDGE_JS: &str = r#"// STB edge: checks the origin's segment tokens (content-server edge nginx-site).
const crypto = require('crypto');

function verify(r) {
    const m = r.uri.match(/^\/v1\/channels\/([0-9]+)\/segments\/[0-9]+$/);
    const e = r.args.e, t = r.args.t;
    if (!m || !e || !t || !/^[0-9]+$/.test(e)) {
        return '0';
    }
    if (Number(e) * 1000 <= Date.now()) {
        return '0';
    }
    const key = Buffer.from(r.variables.stb_token_key, 'hex');
    const mac = crypto.createHmac('sha256', key)
        .update(e + ':' + m[1] + ':' + r.remoteAddress)
        .digest('base64url');
    // Compared through a second HMAC: how long the comparison takes says nothing about the
    // expected token.
    const blind = (v) => crypto.createHmac('sha256', key).update('cmp:' + v).digest('hex');
    return blind(mac) === blind(t) ? '1' : '0';
}

export default { verify };
"#;

/// What a box is told about the edge for `channel`, when the operator runs one.
pub fn access(
    config: &Config,
    keys: &EdgeKeys,
    channel: u16,
    box_address: IpAddr,
    now_ms: i64,
) -> Option<stb_protocol::content_api::EdgeAccess> {
    if config.edge_url.is_empty() {
        return None;
    }
    let expires_secs = now_ms / 1000 + config.edge_token_secs.max(1) as i64;
    Some(stb_protocol::content_api::EdgeAccess {
        segments_url: format!(
            "{}/v1/channels/{channel}/segments/",
            config.edge_url.trim_end_matches('/')
        ),
        query: format!(
            "e={expires_secs}&t={}",
            keys.token(channel, expires_secs, box_address)
        ),
        expires_ms: expires_secs * 1000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> EdgeKeys {
        EdgeKeys::new(SecretArray::new([7; 32]), SecretArray::new([9; 32]))
    }

    #[test]
    fn tokens_bind_channel_expiry_and_address() {
        let k = keys();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let t = k.token(1, 1_800_000_000, a);
        assert_eq!(t.len(), 43, "32 bytes, base64url without padding");
        assert_ne!(t, k.token(2, 1_800_000_000, a));
        assert_ne!(t, k.token(1, 1_800_000_001, a));
        assert_ne!(
            t,
            k.token(1, 1_800_000_000, "192.0.2.2".parse().expect("ip"))
        );
        assert!(k.is_origin_key(&k.origin_key()));
        assert!(!k.is_origin_key("00"));
    }

    #[test]
    fn the_files_are_closed_to_others_even_over_an_older_copy() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let site = EdgeSite {
            listen: "127.0.0.1:8446".into(),
            cert: "c".into(),
            key: "k".into(),
            cache_dir: dir.path().join("cache"),
            origin: "https://localhost:8445".into(),
            origin_ca: "ca".into(),
        };
        let conf = dir.path().join("stb-edge.conf");
        std::fs::write(&conf, "old").expect("write");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_nginx_files(&keys(), &site, dir.path()).expect("written");
        for name in ["stb-edge.conf", "stb_edge.js", "nginx.conf"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn the_site_names_both_keys_and_the_origin() {
        let site = nginx_site(
            &keys(),
            &EdgeSite {
                listen: "127.0.0.1:8446".into(),
                cert: "/etc/ssl/edge.crt".into(),
                key: "/etc/ssl/edge.key".into(),
                cache_dir: "/var/cache/stb-edge".into(),
                origin: "https://origin.example.net:8445/".into(),
                origin_ca: "/etc/stb/ca.crt".into(),
            },
            std::path::Path::new("/etc/nginx/stb"),
        );
        assert!(site.contains(&hex::encode([7u8; 32])) && site.contains(&hex::encode([9u8; 32])));
        assert!(site.contains("server origin.example.net:8445;"));
        assert!(site.contains("proxy_ssl_name origin.example.net;"));
    }
}
