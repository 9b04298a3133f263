//! A logged-in session: the recovered personal data, a mutual-TLS client to the content
//! server built from certificate A and KR, the channel list and the unwrapped channel keys.
//! Dropping it (logout, power key, timeout, exit) wipes every secret it holds.

use crate::channel_keys::{ChannelKeys, KeyUnusable, unix_now};
use crate::keyserver_client::{KeyServer, LoginError};
use crate::locker::{Locker, LockerError};
use base64::Engine;
use stb_protocol::content_api::{ChannelList, Guide, OnAir};
use stb_protocol::locker::LockerKey;
use stb_protocol::{
    ChannelKey, Identifier, KeyId, License, LicenseKey, Password, PasswordKeys, PersonalData, Suite,
};
use std::time::{Duration, Instant};
use thiserror::Error;
use zeroize::Zeroizing;

/// Why the license could not be (re)loaded.
#[derive(Debug, Error)]
pub enum LicenseError {
    /// The content server could not be reached or the connection broke.
    #[error("content server unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The content server refused, with its reason.
    #[error("{0}")]
    Refused(String),
    /// The license did not decode.
    #[error("bad license: {0}")]
    Malformed(#[source] stb_protocol::DecodeError),
    /// An entry did not open under KS (tampered, or another subscriber's).
    #[error("license entry does not open: {0}")]
    Invalid(#[source] stb_protocol::Error),
}

/// How long each login step took (for the headless report and the benchmark).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoginTimings {
    /// Argon2id and HKDF.
    pub kdf_ms: u64,
    /// EKE round trip, unsealing and confirmation.
    pub recover_ms: u64,
    /// Mutual TLS, channel list and license.
    pub content_ms: u64,
}

/// Everything the box knows while a subscriber is logged in.
pub struct Session {
    data: PersonalData,
    http: reqwest::Client,
    keys: std::sync::RwLock<ChannelKeys>,
    /// The operator's channel list for this subscriber.
    pub channels: ChannelList,
    /// Login timings.
    pub timings: LoginTimings,
    favourites_version: std::sync::atomic::AtomicU64,
    favourites_saving: tokio::sync::Mutex<()>,
    locker: Option<Locker>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.data.account)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The subscriber's TLS identity (certificate A + KR) for reqwest.
pub(crate) fn identity(
    certificate_der: &[u8],
    key_pkcs8: &[u8],
) -> Result<reqwest::Identity, reqwest::Error> {
    let mut both = pem("CERTIFICATE", certificate_der);
    both.push_str(&pem("PRIVATE KEY", key_pkcs8));
    reqwest::Identity::from_pem(both.as_bytes())
}

/// Logs in: KP and VP from (N, P), one EKE round trip, then mutual TLS to the content server.
/// A box keeps its `keyserver` from one login to the next, so that the next login resumes
/// the key server's TLS session.
pub async fn login(
    keyserver: &KeyServer,
    identifier: &str,
    password: Password,
) -> Result<Session, LoginError> {
    let id = Identifier::parse(identifier).map_err(|e| LoginError::BadIdentifier(e.to_string()))?;
    let started = Instant::now();
    // Argon2id takes a few hundred ms and 64 MiB: off the async threads.
    let keys =
        tokio::task::spawn_blocking(move || PasswordKeys::derive(Suite::CURRENT, &id, &password))
            .await
            .map_err(|_| LoginError::KeyDerivation)?
            .map_err(|_| LoginError::KeyDerivation)?;
    let kdf_ms = started.elapsed().as_millis() as u64;
    let t = Instant::now();
    let data = keyserver.recover(keys).await?;
    let recover_ms = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    let mut session = Session::open(data).await?;
    session.timings = LoginTimings {
        kdf_ms,
        recover_ms,
        content_ms: t.elapsed().as_millis() as u64,
    };
    Ok(session)
}

impl Session {
    /// Builds the mutual-TLS client from D and fetches the channel list and the license.
    pub async fn open(data: PersonalData) -> Result<Self, LoginError> {
        let unreachable = || LoginError::Unreachable("the content server".into());
        // D came out of the recovery whole (its MAC checked): a certificate, key or CA in it
        // that TLS cannot use is a fault of this account's data, not of a server's answer.
        let unusable = |e: reqwest::Error| LoginError::Identity(e.to_string());
        let http = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_der(&data.operator_ca_der).map_err(unusable)?
            ])
            .identity(
                identity(&data.certificate_der, data.private_key_pkcs8.expose())
                    .map_err(unusable)?,
            )
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(unusable)?;
        let mut session = Self {
            locker: data
                .locker_key
                .as_ref()
                .map(|kl| Locker::new(http.clone(), &data.content_server_url, LockerKey::new(kl))),
            data,
            http,
            keys: std::sync::RwLock::default(),
            channels: ChannelList {
                account: String::new(),
                package: String::new(),
                channels: vec![],
                favourites: vec![],
                parental_age: None,
                parental_pin: false,
            },
            timings: LoginTimings::default(),
            favourites_version: std::sync::atomic::AtomicU64::new(0),
            favourites_saving: tokio::sync::Mutex::new(()),
        };
        let list = match session
            .http
            .get(format!("{}/v1/channels", session.content_url()))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.bytes().await.map_err(|_| unreachable())?,
            Ok(r) if r.status().is_client_error() => {
                return Err(LoginError::Refused(
                    r.text().await.unwrap_or_default().trim().to_owned(),
                ));
            }
            _ => return Err(unreachable()),
        };
        session.channels = serde_json::from_slice(&list)
            .map_err(|_| LoginError::Protocol("the content server".into()))?;
        session.refresh_license().await.map_err(|e| match e {
            LicenseError::Unreachable(_) => unreachable(),
            LicenseError::Refused(reason) => LoginError::Refused(reason),
            LicenseError::Malformed(_) | LicenseError::Invalid(_) => {
                LoginError::Protocol("the content server".into())
            }
        })?;
        Ok(session)
    }

    /// The subscriber's locker, sealed under KL (an account whose record could not be given
    /// a KL yet has none this session).
    pub fn locker(&self) -> Result<&Locker, LockerError> {
        self.locker.as_ref().ok_or(LockerError::NoKey)
    }

    /// The subscriber's display name.
    pub fn account(&self) -> &str {
        &self.data.account
    }

    /// The serial number of the box's certificate, hex (how the operator knows this box).
    pub fn certificate_serial(&self) -> String {
        x509_parser::parse_x509_certificate(&self.data.certificate_der)
            .map(|(_, cert)| cert.raw_serial_as_string().replace(':', ""))
            .unwrap_or_else(|_| "unreadable".into())
    }

    /// Whether the content server answers this box (`GET /v1/guide/now` over its mutual
    /// TLS), and in how many ms.
    pub async fn content_health(&self) -> Result<u64, String> {
        let started = std::time::Instant::now();
        self.http
            .get(format!("{}/v1/guide/now", self.content_url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.without_url().to_string())?;
        Ok(started.elapsed().as_millis() as u64)
    }

    /// Base URL of the content server.
    pub fn content_url(&self) -> &str {
        self.data.content_server_url.trim_end_matches('/')
    }

    /// The mutual-TLS client (for the player's stream).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// What is on every channel now and next, and how long that answer holds (the server's
    /// `max-age`: until the first programme on some channel ends).
    pub async fn on_air(&self) -> anyhow::Result<(OnAir, Duration)> {
        let r = self
            .http
            .get(format!("{}/v1/guide/now", self.content_url()))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .error_for_status()?;
        let max_age = r
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .find_map(|d| d.trim().strip_prefix("max-age=")?.parse().ok())
            })
            .unwrap_or(60);
        Ok((r.json().await?, Duration::from_secs(max_age)))
    }

    /// Numbers the next list of favourites to store: the newest one is what the server
    /// keeps.
    pub fn next_favourites_version(&self) -> u64 {
        self.favourites_version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Stores the subscriber's favourite channels (list `version` of
    /// [`Session::next_favourites_version`]) on the content server: they follow the
    /// subscriber to any box; the box keeps nothing. One request at a time, and a list that
    /// a newer one replaced is not sent: quick presses cannot leave an older list stored.
    pub async fn save_favourites(&self, version: u64, channels: &[u16]) -> anyhow::Result<()> {
        let _one_at_a_time = self.favourites_saving.lock().await;
        if version
            != self
                .favourites_version
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let body = stb_protocol::content_api::Favourites {
            channels: channels.to_vec(),
        };
        self.http
            .put(format!("{}/v1/favourites", self.content_url()))
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Asks the content server whether `pin` is the subscriber's parental PIN.
    pub async fn check_parental_pin(&self, pin: &str) -> Result<(), PinRefusal> {
        let mut body = stb_protocol::content_api::PinCheck {
            pin: pin.to_owned(),
        };
        let url = format!("{}/v1/parental/check", self.content_url());
        let request = self.http.post(url).json(&body);
        zeroize::Zeroize::zeroize(&mut body.pin);
        parental_request(request).await
    }

    /// Sets the parental PIN (`pin`: the PIN, or the first one) and the age limit.
    pub async fn set_parental(&self, pin: &str, max_age: Option<u8>) -> Result<(), PinRefusal> {
        let mut body = stb_protocol::content_api::ParentalSettings {
            pin: pin.to_owned(),
            new_pin: None,
            max_age,
        };
        let url = format!("{}/v1/parental", self.content_url());
        let request = self.http.put(url).json(&body);
        zeroize::Zeroize::zeroize(&mut body.pin);
        parental_request(request).await
    }

    /// The programmes of `channels` over `[from_ms, to_ms)`, for the guide grid.
    pub async fn guide(&self, channels: &[u16], from_ms: i64, to_ms: i64) -> anyhow::Result<Guide> {
        let list: Vec<String> = channels.iter().map(u16::to_string).collect();
        let url = format!(
            "{}/v1/guide?channels={}&from={from_ms}&to={to_ms}",
            self.content_url(),
            list.join(",")
        );
        Ok(self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Fetches the license and unwraps the channel keys with KS (current and next epoch).
    /// The feeder calls it again when a segment names a key it does not have (a new epoch).
    pub async fn refresh_license(&self) -> Result<(), LicenseError> {
        let r = self
            .http
            .get(format!("{}/v1/license", self.content_url()))
            .send()
            .await
            .map_err(LicenseError::Unreachable)?;
        let status = r.status();
        let body = r.bytes().await.map_err(LicenseError::Unreachable)?;
        if !status.is_success() {
            return Err(LicenseError::Refused(
                String::from_utf8_lossy(&body).trim().to_owned(),
            ));
        }
        let license = License::decode(&body).map_err(LicenseError::Malformed)?;
        let keys = ChannelKeys::unwrap(&license, &LicenseKey::from_ks(&self.data.ks))
            .map_err(LicenseError::Invalid)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// The key of a segment, if the license has it and it is valid now (by the box's clock).
    pub fn key(&self, key_id: &KeyId) -> Result<ChannelKey, KeyUnusable> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id, unix_now())
    }

    /// Number of channel keys held.
    pub fn key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Ends the session. Every secret (D, KS, KR, channel keys) is wiped as it is dropped;
    /// the TLS connections close with the client.
    pub fn logout(self) {
        drop(self);
    }
}

/// The box's own address towards `url`'s host (a UDP socket aimed at it: no packet leaves;
/// a host name is resolved, so call it off the async threads), or why it is unknown.
pub fn local_address(url: &str) -> String {
    let target = reqwest::Url::parse(url).ok().and_then(|u| {
        let host = u.host_str()?.trim_matches(['[', ']']).to_owned();
        Some((host, u.port_or_known_default()?))
    });
    let Some((host, port)) = target else {
        return "unknown".into();
    };
    let any = if host.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    std::net::UdpSocket::bind(any)
        .and_then(|s| {
            s.connect((host.as_str(), port))?;
            s.local_addr()
        })
        .map_or_else(|e| format!("unknown ({e})"), |a| a.ip().to_string())
}

/// Why the content server did not take a parental PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRefusal {
    /// It answered that the PIN is not the subscriber's (403).
    pub wrong_pin: bool,
    /// What to show: the server's words ("Wrong PIN, 3 tries left ...", a lock), or that it
    /// does not answer.
    pub message: String,
}

impl From<String> for PinRefusal {
    fn from(message: String) -> Self {
        Self {
            wrong_pin: false,
            message,
        }
    }
}

impl From<&str> for PinRefusal {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

async fn parental_request(request: reqwest::RequestBuilder) -> Result<(), PinRefusal> {
    let r = request
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|_| PinRefusal::from("The content server does not answer; try again."))?;
    if r.status().is_success() {
        return Ok(());
    }
    let wrong_pin = r.status() == reqwest::StatusCode::FORBIDDEN;
    let text = r.text().await.unwrap_or_default();
    Err(PinRefusal {
        wrong_pin,
        message: crate::ui::model::capitalise(text.trim()),
    })
}
