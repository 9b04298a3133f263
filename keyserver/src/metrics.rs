//! Prometheus metrics: requests by endpoint and outcome, locks, and a latency histogram.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `register`, `recover`, `confirm`.
    pub endpoint: &'static str,
    /// Outcome, as in the audit log.
    pub outcome: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `register`, `recover`, `confirm`.
    pub endpoint: &'static str,
}

/// Labels of a refused connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `global` or `per_source`.
    pub reason: &'static str,
}

/// The metrics of one instance.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    locks: Counter,
    tls_failures: Counter,
    connections_open: Gauge,
    connections_max: Gauge,
    connections_refused: Family<RefusalLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyserver");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 14))
        });
        let locks = Counter::default();
        let tls_failures = Counter::default();
        registry.register(
            "requests",
            "Requests by endpoint and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Handler latency",
            latency.clone(),
        );
        registry.register(
            "locks",
            "Identifiers locked by the guess limit",
            locks.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "Failed or timed-out TLS handshakes",
            tls_failures.clone(),
        );
        let connections_open = Gauge::default();
        let connections_max = Gauge::default();
        let connections_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "connections_max",
            "Connections this instance admits at once (its global cap)",
            connections_max.clone(),
        );
        registry.register(
            "connections_open",
            "TLS connections open now",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections turned away by a connection cap",
            connections_refused.clone(),
        );
        // Series that alert rules watch exist from the start at 0, so their first event is
        // an increase Prometheus can see.
        for reason in ["global", "per_source"] {
            let _ = connections_refused.get_or_create(&RefusalLabels { reason });
        }
        for outcome in [
            "other_subject",
            "probing_limited",
            "revoked",
            "suspended",
            "standing_unknown",
        ] {
            let _ = requests.get_or_create(&RequestLabels {
                endpoint: "register",
                outcome,
            });
        }
        for outcome in ["answered", "rate_limited", "too_soon", "locked"] {
            let _ = requests.get_or_create(&RequestLabels {
                endpoint: "recover",
                outcome,
            });
        }
        let _ = requests.get_or_create(&RequestLabels {
            endpoint: "confirm",
            outcome: "confirmed",
        });
        Self {
            registry,
            requests,
            latency,
            locks,
            tls_failures,
            connections_open,
            connections_max,
            connections_refused,
        }
    }
}

impl Metrics {
    /// Counts a request and observes its latency.
    pub fn request(&self, endpoint: &'static str, outcome: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// Counts a lock.
    pub fn lock(&self) {
        self.locks.inc();
    }

    /// Records the connection cap in force.
    pub fn connections_max(&self, max: usize) {
        self.connections_max.set(max as i64);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl stb_server_common::listener::ConnObserver for Metrics {
    fn tls_failure(&self) {
        self.tls_failures.inc();
    }

    fn refused(&self, why: stb_server_common::gate::Refusal) {
        self.connections_refused
            .get_or_create(&RefusalLabels {
                reason: why.as_str(),
            })
            .inc();
    }

    fn open_connections(&self, open: usize) {
        self.connections_open.set(open as i64);
    }
}
