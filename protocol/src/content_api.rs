//! JSON bodies of the content server's HTTP API (docs/protocol.md section 12a), shared by the
//! server and the box.

use serde::{Deserialize, Serialize};

/// Enrollment request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The code printed at the registration desk.
    pub code: String,
    /// PKCS#10 CSR, PEM, for a P-256 key made on the box.
    pub csr_pem: String,
}

/// Enrollment answer: what the box seals into its personal data.
#[derive(Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Subscriber name (certificate CN).
    pub account: String,
    /// Certificate A, PEM.
    pub certificate_pem: String,
    /// The operator CA, PEM (trust anchor for the content server).
    pub operator_ca_pem: String,
    /// KS, base64 (wiped when the answer is dropped).
    pub ks_base64: zeroize::Zeroizing<String>,
    /// Content server URL.
    pub content_server_url: String,
    /// Key server URL.
    pub keyserver_url: String,
}

impl std::fmt::Debug for EnrollResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollResponse")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A programme placed on the wall clock. The optional parts come from the operator's guide
/// where it has them, and are left out of the JSON when it does not.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Programme {
    /// Title.
    pub title: String,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// Episode title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Synopsis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Genres, as the guide names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Age rating (for example `12` or `TV-PG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
}

impl Programme {
    /// A programme with a title only.
    pub fn titled(title: impl Into<String>, start_ms: i64, end_ms: i64) -> Self {
        Self {
            title: title.into(),
            start_ms,
            end_ms,
            subtitle: None,
            description: None,
            categories: Vec::new(),
            rating: None,
        }
    }
}

/// One entry of the channel list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Number.
    pub number: u16,
    /// Name.
    pub name: String,
    /// In the subscription.
    pub entitled: bool,
    /// Programme on air, when the guide has one.
    #[serde(default)]
    pub now: Option<Programme>,
    /// Next programme, when the guide has one.
    #[serde(default)]
    pub next: Option<Programme>,
}

/// The channel list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelList {
    /// Subscriber name.
    pub account: String,
    /// Package.
    pub package: String,
    /// Every channel of the operator, entitled or not.
    pub channels: Vec<ChannelInfo>,
    /// The subscriber's favourite channels, in their order (absent from older servers).
    #[serde(default)]
    pub favourites: Vec<u16>,
}

/// A subscriber's favourite channels (`PUT /v1/favourites`), in their order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Favourites {
    /// Channel numbers.
    pub channels: Vec<u16>,
}

/// The live edge of a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveEdge {
    /// Global sequence of the segment on air.
    pub sequence: u64,
    /// Its key epoch.
    pub epoch: u32,
    /// Its start, Unix ms.
    pub start_ms: i64,
    /// Its duration, ms.
    pub duration_ms: u64,
    /// Where to fetch this channel's segments instead of streaming them from the content
    /// server, when the operator runs an edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeAccess>,
}

/// A signed way to this channel's segments on the operator's edge (an HTTP cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeAccess {
    /// Segment S is at `{segments_url}{S}?{query}`.
    pub segments_url: String,
    /// The token, for this box's address only.
    pub query: String,
    /// When the token stops working, Unix ms: ask `/live` again before.
    pub expires_ms: i64,
}

/// Programmes of some channels over a time range (`GET /v1/guide`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Guide {
    /// Channels asked for that exist, by number.
    pub channels: Vec<ChannelGuide>,
}

/// One channel's programmes, by start time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelGuide {
    /// Channel number.
    pub number: u16,
    /// Programmes overlapping the range asked for.
    pub programmes: Vec<Programme>,
}

/// What is on every channel now and next (`GET /v1/guide/now`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OnAir {
    /// Every channel, by number.
    pub channels: Vec<NowNext>,
}

/// Now and next on one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NowNext {
    /// Channel number.
    pub number: u16,
    /// Programme on air.
    #[serde(default)]
    pub now: Option<Programme>,
    /// Next programme.
    #[serde(default)]
    pub next: Option<Programme>,
}
