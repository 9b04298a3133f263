//! Operator actions shared by the command line and the tests: first-start set-up, adding
//! subscribers, issuing enrollment codes.

use crate::ca::OperatorCa;
use crate::codes;
use crate::config::Config;
use crate::keys::OperatorKeys;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use stb_protocol::SecretArray;
use stb_server_common::now_ms;

/// Creates what is missing: master key, operator CA, server certificate (for `names` plus
/// localhost and 127.0.0.1), database. Existing files are kept. Returns what it did.
pub async fn init(config: &Config, names: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    if !config.master_key_path().exists() {
        stb_server_common::write_private(
            &config.master_key_path(),
            &stb_protocol::random_array::<32>(),
        )?;
        done.push(format!(
            "master key: {}",
            config.master_key_path().display()
        ));
    }
    if !config.ca_dir().join("ca.key").exists() {
        OperatorCa::create(&config.ca_dir(), "STB Operator CA")?;
        done.push(format!(
            "operator CA: {}",
            config.ca_dir().join("ca.crt").display()
        ));
    }
    let ca = OperatorCa::load(&config.ca_dir())?;
    let (cert, key) = config.tls_paths();
    if !(cert.exists() && key.exists()) {
        let mut all = names.to_vec();
        all.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
        let (chain, key_pem) = ca.server_certificate(&all)?;
        stb_server_common::write_private(&key, key_pem.as_bytes())?;
        std::fs::write(&cert, chain)?;
        done.push(format!(
            "server certificate for {}: {}",
            all.join(", "),
            cert.display()
        ));
    }
    let store = Store::open(&config.database_url()).await?;
    done.push(format!("database ready: {:?}", store.backend()));
    Ok(done)
}

/// A new single-use enrollment code for `name`; returns it (12 digits) and its expiry (ms).
pub async fn new_code(
    config: &Config,
    store: &Store,
    keys: &OperatorKeys,
    name: &str,
) -> Result<(String, i64)> {
    let code = codes::generate();
    let expires = now_ms() + config.code_ttl_hours * 3_600_000;
    store
        .add_code(name, &keys.code_hash(&code), expires)
        .await?;
    Ok((code, expires))
}

/// Adds a subscriber with a fresh KS (its package must be one of `packages`) and returns its first enrollment code and expiry.
pub async fn add_subscriber(
    config: &Config,
    store: &Store,
    keys: &OperatorKeys,
    packages: &[String],
    name: &str,
    package: &str,
) -> Result<(String, i64)> {
    if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        bail!("a subscriber name has 1 to 64 printable characters");
    }
    if !packages.iter().any(|p| p == package) {
        bail!(
            "unknown package {package:?}; packages: {}",
            packages.join(", ")
        );
    }
    let ks = SecretArray::new(stb_protocol::random_array::<32>());
    store
        .add_subscriber(name, package, &keys.seal_ks(name, &ks), now_ms())
        .await
        .with_context(|| format!("adding {name} (does it exist already?)"))?;
    new_code(config, store, keys, name).await
}
