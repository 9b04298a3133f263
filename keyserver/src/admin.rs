//! Operator actions shared by the command line and the tests: first-start set-up, and looking
//! after accounts (unlock, delete), each change recorded in the audit log. The command line
//! only parses and prints.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::kek::Kek;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use stb_protocol::Identifier;
use std::path::Path;

/// Creates what a first start needs: the data directory (0700), a self-signed TLS key pair for
/// `names` plus localhost and 127.0.0.1 (an existing one is kept unless `force`), the
/// key-encryption key if there is none, the database and its secrets. Returns what it did,
/// one line each.
pub async fn init(config: &Config, names: &[String], force: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    restrict(&config.data_dir, 0o700)?;
    let (cert, key) = (config.tls_cert_path(), config.tls_key_path());
    if cert.exists() && key.exists() && !force {
        done.push(format!("TLS key pair kept: {}", cert.display()));
    } else {
        let mut names = names.to_vec();
        names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
        let (cert_pem, key_pem) = stb_server_common::tls::self_signed(&names)?;
        for path in [&cert, &key] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        stb_server_common::write_private(&key, key_pem.as_bytes())?;
        std::fs::write(&cert, cert_pem)?;
        done.push(format!(
            "TLS certificate for {}: {}",
            names.join(", "),
            cert.display()
        ));
    }
    let kek_path = config.kek_path();
    let made_kek = !kek_path.exists();
    if made_kek {
        let kek = Kek::create(&kek_path)?;
        done.push(format!(
            "key-encryption key {} made: {} (back it up apart from the database)",
            kek.id(),
            kek_path.display()
        ));
    }
    let store = match open_store(config).await {
        Ok(store) => store,
        Err(e) => {
            if made_kek {
                // A new key for an existing database is never the right key: do not leave it.
                let _ = std::fs::remove_file(&kek_path);
            }
            return Err(e);
        }
    };
    store
        .secret("fake_record_secret", &stb_protocol::random_array())
        .await?;
    store
        .secret("audit_id_key", &stb_protocol::random_array())
        .await?;
    done.push(format!(
        "database ready: {:?} ({} accounts)",
        store.backend(),
        store.count_accounts().await?
    ));
    if config.operator_ca.is_none() {
        done.push("note: set operator_ca (or --operator-ca) to accept registrations".into());
    }
    Ok(done)
}

/// The configured database, opened with the configured key-encryption keys.
pub async fn open_store(config: &Config) -> Result<Store> {
    Store::open(&config.database_url(), config.keyring()?).await
}

/// Clears the lock and the failure counter of `id`.
pub async fn unlock(config: &Config, store: &Store, id: &Identifier) -> Result<()> {
    if !store.unlock(id).await? {
        bail!("{id} has no guess counter (never tried, or unknown)");
    }
    audit(config, store, "unlock", id).await
}

/// Deletes the account `id` and its counters.
pub async fn delete(config: &Config, store: &Store, id: &Identifier) -> Result<()> {
    if !store.delete(id).await? {
        bail!("no account {id}");
    }
    audit(config, store, "delete", id).await
}

/// Records an operator's change in the audit log, with the identifier keyed as the server
/// keys it (so `keyserver monitor` and the server's own events agree).
async fn audit(config: &Config, store: &Store, event: &str, id: &Identifier) -> Result<()> {
    let key = store
        .secret("audit_id_key", &stb_protocol::random_array())
        .await?;
    AuditLog::open(&config.audit_log_path(), key)?.record(event, id, None, None, "operator");
    Ok(())
}

fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn init_keeps_what_exists_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(dir.path());
        let first = init(&config, &["keys.example".into()], false)
            .await
            .expect("init");
        assert!(first[0].starts_with("TLS certificate for keys.example, localhost, 127.0.0.1"));
        assert!(first[1].starts_with("key-encryption key"));
        assert!(first[2].starts_with("database ready: Sqlite (0 accounts)"));
        let cert = std::fs::read(config.tls_cert_path()).expect("cert");
        let kek = std::fs::read(config.kek_path()).expect("kek");

        let again = init(&config, &[], false).await.expect("init again");
        assert!(again[0].starts_with("TLS key pair kept"));
        assert!(again[1].starts_with("database ready"));
        assert_eq!(std::fs::read(config.tls_cert_path()).expect("cert"), cert);
        assert_eq!(std::fs::read(config.kek_path()).expect("kek"), kek);

        init(&config, &[], true).await.expect("forced");
        assert_ne!(std::fs::read(config.tls_cert_path()).expect("cert"), cert);
        assert_eq!(std::fs::read(config.kek_path()).expect("kek"), kek);
    }

    #[tokio::test]
    async fn unknown_accounts_are_refused_and_not_audited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_in(dir.path());
        init(&config, &[], false).await.expect("init");
        let store = open_store(&config).await.expect("store");
        let id = Identifier::parse("nobody").expect("id");
        let unlock = unlock(&config, &store, &id).await.expect_err("unknown");
        assert!(unlock.to_string().contains("no guess counter"));
        let delete = delete(&config, &store, &id).await.expect_err("unknown");
        assert_eq!(delete.to_string(), "no account nobody");
        let audited = std::fs::read_to_string(config.audit_log_path()).unwrap_or_default();
        assert!(audited.is_empty());
    }
}
