//! The key server as the box sees it: one EKE round trip, then the confirmation; and the
//! registration upload. Errors come out as what the person on the sofa must be told.

use crate::config::{BoxConfig, client_trusting};
use crate::register::RegisterError;
use crate::session::identity;
use stb_protocol::eke::RecoverResponse;
use stb_protocol::{
    ClientRecovery, Confirm, PasswordKeys, PersonalData, Recovered, RegisterRequest, SealedData,
    SecretArray,
};
use std::time::Duration;
use thiserror::Error;

/// Why a login did not work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong identifier or password (the two are never told apart).
    #[error("wrong identifier or password")]
    WrongCredentials,
    /// Too soon after the last attempt.
    #[error("too many attempts: try again in {0} s")]
    RetryIn(u64),
    /// Locked by the guess limit.
    #[error("this account is locked: call the operator")]
    Locked,
    /// The identifier is not valid.
    #[error("{0}")]
    BadIdentifier(String),
    /// The operator refused the session (revoked, suspended), with its reason.
    #[error("{0}")]
    Refused(String),
    /// A server could not be reached (after retries).
    #[error("cannot reach {0}")]
    Unreachable(String),
    /// A server answered something unexpected.
    #[error("unexpected answer from {0}")]
    Protocol(String),
    /// The box's own configuration is unusable (a trust file missing or unreadable).
    #[error("this box is not set up correctly: {0}")]
    Configuration(String),
    /// The recovered certificate, key or operator CA cannot be used for TLS.
    #[error("the account's certificate cannot be used: {0}")]
    Identity(String),
    /// Deriving the keys from the password failed on the box (memory, a stopped task).
    #[error("the password could not be processed on this box")]
    KeyDerivation,
    /// The login was stopped before it finished (the box is shutting down).
    #[error("the login was interrupted")]
    Interrupted,
}

/// Client of the key server.
#[derive(Debug, Clone)]
pub struct KeyServer {
    http: reqwest::Client,
    base: String,
    ca: Option<std::path::PathBuf>,
}

impl KeyServer {
    /// Whether the key server answers (`GET /healthz`), and in how many ms.
    pub async fn health(&self) -> Result<u64, String> {
        let started = std::time::Instant::now();
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.without_url().to_string())?;
        Ok(started.elapsed().as_millis() as u64)
    }

    /// From the box configuration.
    pub fn new(config: &BoxConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: client_trusting(config.keyserver_ca.as_deref(), None)?,
            base: config.keyserver_url.trim_end_matches('/').to_owned(),
            ca: config.keyserver_ca.clone(),
        })
    }

    /// [`KeyServer::new`] for a login, whose errors are [`LoginError`]s.
    pub fn for_login(config: &BoxConfig) -> Result<Self, LoginError> {
        Self::new(config).map_err(|e| LoginError::Configuration(format!("{e:#}")))
    }

    /// POSTs `body` (naming the record it replaces, if any), retrying connection failures
    /// with backoff (0.25, 0.5, 1, 2 s).
    async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: Vec<u8>,
        replaces: Option<&SealedData>,
    ) -> Result<reqwest::Response, LoginError> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(250);
        for attempt in 0..5 {
            let mut request = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body.clone());
            if let Some(sealed) = replaces {
                let digest = hex::encode(sealed.digest());
                request = request.header(reqwest::header::IF_MATCH, format!("\"{digest}\""));
            }
            match request.send().await {
                Ok(r) => return Ok(r),
                Err(e) if attempt < 4 && (e.is_connect() || e.is_timeout()) => {
                    tracing::warn!(error = %e, "key server unreachable, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(_) => break,
            }
        }
        Err(LoginError::Unreachable("the key server".into()))
    }

    /// One recovery: sends the EKE request, opens the response, sends the confirmation.
    pub async fn recover(&self, keys: PasswordKeys) -> Result<PersonalData, LoginError> {
        let (state, request) = ClientRecovery::start(keys, &mut stb_protocol::os_rng())
            .map_err(|_| LoginError::Protocol("the key server".into()))?;
        let reply = self
            .post(&self.http, "/v1/recover", request.encode(), None)
            .await?;
        match reply.status().as_u16() {
            200 => {}
            429 => {
                let secs = reply
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(10);
                return Err(LoginError::RetryIn(secs));
            }
            423 => return Err(LoginError::Locked),
            _ => return Err(LoginError::Protocol("the key server".into())),
        }
        let bytes = reply
            .bytes()
            .await
            .map_err(|_| LoginError::Unreachable("the key server".into()))?;
        let response = RecoverResponse::decode(&bytes)
            .map_err(|_| LoginError::Protocol("the key server".into()))?;
        let mut recovered = state.finish_recovery(&response).map_err(|e| match e {
            stb_protocol::Error::AuthenticationFailed => LoginError::WrongCredentials,
            _ => LoginError::Protocol("the key server".into()),
        })?;
        self.confirm(&recovered.confirm).await?;
        if recovered.data.locker_key.is_none() {
            self.add_locker_key(&mut recovered).await;
        }
        Ok(recovered.data)
    }

    /// A record made before the locker existed gets its KL now (docs/protocol.md, section
    /// 6): made here, sealed with the rest of D under the same KP, and stored in place of
    /// the record just recovered, only if that is still the stored one. If another box did
    /// the same meanwhile, its KL stands and this session goes without a locker (the next
    /// login brings that KL); TV works either way.
    async fn add_locker_key(&self, recovered: &mut Recovered) {
        let mut data = recovered.data.clone();
        data.locker_key = Some(SecretArray::new(stb_protocol::random_array()));
        let upload = async {
            let request =
                RegisterRequest::new(&recovered.keys, &data, stb_protocol::random_array())
                    .map_err(|e| e.to_string())?;
            let identity = identity(&data.certificate_der, data.private_key_pkcs8.expose())
                .map_err(|e| e.to_string())?;
            let http = client_trusting(self.ca.as_deref(), Some(identity))
                .map_err(|e| format!("{e:#}"))?;
            let reply = self
                .post(
                    &http,
                    "/v1/register",
                    request.encode(),
                    Some(&recovered.sealed),
                )
                .await
                .map_err(|e| e.to_string())?;
            match reply.status().as_u16() {
                200 => Ok(()),
                status => Err(format!(
                    "{status} {}",
                    reply.text().await.unwrap_or_default().trim()
                )),
            }
        };
        match upload.await {
            Ok(()) => {
                tracing::info!("this account's record now carries its locker key");
                recovered.data = data;
            }
            Err(why) => tracing::warn!(%why, "could not add a locker key; no locker this session"),
        }
    }

    async fn confirm(&self, confirm: &Confirm) -> Result<(), LoginError> {
        let reply = self
            .post(&self.http, "/v1/confirm", confirm.encode(), None)
            .await?;
        if reply.status().as_u16() != 204 {
            // The data is ours anyway; the counter just stays up until the next login.
            tracing::warn!(status = %reply.status(), "key confirmation refused");
        }
        Ok(())
    }

    /// Uploads a registration over mutual TLS with the subscriber's certificate.
    pub async fn register(
        &self,
        identity: reqwest::Identity,
        request: &RegisterRequest,
    ) -> Result<(), RegisterError> {
        let http = client_trusting(self.ca.as_deref(), Some(identity))
            .map_err(|e| RegisterError::Configuration(format!("{e:#}")))?;
        let reply = self
            .post(&http, "/v1/register", request.encode(), None)
            .await
            .map_err(|_| RegisterError::KeyServerUnreachable)?;
        let status = reply.status();
        if !status.is_success() {
            let reason = reply.text().await.unwrap_or_default().trim().to_owned();
            return Err(RegisterError::KeyServerRefused { status, reason });
        }
        Ok(())
    }
}
