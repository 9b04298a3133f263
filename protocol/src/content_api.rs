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

    /// Whether it is on air at `ms` (Unix ms).
    pub fn airs_at(&self, ms: i64) -> bool {
        self.start_ms <= ms && ms < self.end_ms
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
    /// Parental control: programmes rated above this age are locked until the subscriber's
    /// PIN is typed. None: off (or an older server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parental_age: Option<u8>,
    /// Whether the subscriber has set a parental PIN (the box then asks for it before a
    /// change, else for a new one, twice).
    #[serde(default)]
    pub parental_pin: bool,
}

/// `PUT /v1/parental`: sets the parental PIN and the age above which programmes are
/// locked. The first time, `pin` becomes the PIN; after that it must be the PIN, and
/// `new_pin` replaces it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentalSettings {
    /// The PIN (4 digits).
    pub pin: String,
    /// A new PIN (4 digits), to change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_pin: Option<String>,
    /// Lock programmes rated above this age; None: no lock.
    pub max_age: Option<u8>,
}

/// `POST /v1/parental/check`: is this the subscriber's parental PIN?
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinCheck {
    /// The PIN as typed.
    pub pin: String,
}

// PINs are never printed (a `{:?}` in a log line would give them away).
impl std::fmt::Debug for ParentalSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentalSettings")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PinCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinCheck(****)")
    }
}

/// The age a programme's rating stands for, from the rating systems the guide carries:
/// a number (`12`, CSA `-16`, `12A`) is that age; letter ratings of the common systems map
/// to the age they advise (`U` 0, `PG` 8, `TV-14` 14, `R` 17, `TV-MA` 17, `NC-17` 18).
/// None: no rating, or one this does not know (never locked).
pub fn rating_age(rating: &str) -> Option<u8> {
    let r = rating.trim().to_ascii_uppercase();
    let letters = match r.as_str() {
        "U" | "G" | "TV-Y" | "TV-G" | "E" | "ALL" | "TP" => Some(0),
        "TV-Y7" | "UC" => Some(7),
        "PG" | "TV-PG" => Some(8),
        "PG-13" => Some(13),
        "TV-14" => Some(14),
        "R" | "TV-MA" => Some(17),
        "NC-17" | "X" | "R18" => Some(18),
        _ => None,
    };
    letters.or_else(|| {
        let digits: String = r
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// Whether a PIN is well formed: exactly four ASCII digits.
pub fn pin_is_valid(pin: &str) -> bool {
    pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod parental_tests {
    use super::*;

    #[test]
    fn ratings_of_the_usual_systems_map_to_ages() {
        for (rating, age) in [
            ("12", Some(12)),
            ("-16", Some(16)),
            ("12A", Some(12)),
            ("18", Some(18)),
            ("U", Some(0)),
            ("PG", Some(8)),
            ("TV-14", Some(14)),
            ("tv-ma", Some(17)),
            ("NC-17", Some(18)),
            ("", None),
            ("Unrated", None),
        ] {
            assert_eq!(rating_age(rating), age, "{rating:?}");
        }
        assert!(pin_is_valid("0420") && !pin_is_valid("042") && !pin_is_valid("04a0"));
        assert!(!pin_is_valid("\u{0664}\u{0662}\u{0660}\u{0660}"));
    }
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
