//! Prometheus metrics: requests, events by outcome and reason, latency, and what waits.
use std::sync::{atomic::AtomicU64, Mutex};

use assent_protocol::{BatchResponse, RejectCode};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DriftLabels {
    pub recommender: String,
    pub signal: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecommenderLabels {
    pub recommender: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub requests: Family<RouteLabels, Counter>,
    pub events: Family<OutcomeLabels, Counter>,
    pub latency: Family<RouteOnly, Histogram>,
    /// Requests being handled right now.
    pub in_flight: Gauge,
    /// Requests waiting for the writer (group commit queue).
    pub writer_queue: Gauge,
    /// Subjects whose consent records are held in memory (SQLite).
    pub consent_cache: Gauge,
    /// Committed feed items each consumer has yet to take.
    pub feed_lag: Family<ConsumerLabels, Gauge>,
    /// `KL(live ‖ training)` of each recommender's watched signals.
    pub recommendation_drift: Family<DriftLabels, Gauge<f64, AtomicU64>>,
    /// 1 where a recommender's drift calls for retraining.
    pub recommendation_retrain_due: Family<RecommenderLabels, Gauge>,
    /// Recommendation cache lookups by outcome (hit, miss, error).
    pub recommendation_cache: Family<CacheLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RouteLabels, Counter>::default();
        let events = Family::<OutcomeLabels, Counter>::default();
        let latency = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        let in_flight = Gauge::default();
        let writer_queue = Gauge::default();
        let consent_cache = Gauge::default();
        let feed_lag = Family::<ConsumerLabels, Gauge>::default();
        let recommendation_drift = Family::<DriftLabels, Gauge<f64, AtomicU64>>::default();
        let recommendation_retrain_due = Family::<RecommenderLabels, Gauge>::default();
        let recommendation_cache = Family::<CacheLabels, Gauge>::default();
        let mut registry = Registry::with_prefix("assent");
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "events",
            "Events by outcome (accepted, duplicate, rejected) and reason",
            events.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route",
            latency.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being processed",
            in_flight.clone(),
        );
        registry.register(
            "writer_queue_depth",
            "Requests waiting for the writer",
            writer_queue.clone(),
        );
        registry.register(
            "consent_cache_subjects",
            "Subjects whose consent records are held in memory",
            consent_cache.clone(),
        );
        registry.register(
            "feed_lag",
            "Committed feed items each consumer has yet to take (counted up to 1,000,000)",
            feed_lag.clone(),
        );
        registry.register(
            "recommendation_drift",
            "KL divergence (nats) of a recommender's live inputs or scores from its training window",
            recommendation_drift.clone(),
        );
        registry.register(
            "recommendation_retrain_due",
            "1 when a recommender's drift passed the threshold",
            recommendation_retrain_due.clone(),
        );
        registry.register(
            "recommendation_cache_lookups",
            "Recommendation cache lookups since start, by outcome",
            recommendation_cache.clone(),
        );
        Metrics {
            recommendation_drift,
            recommendation_retrain_due,
            recommendation_cache,
            feed_lag,
            registry: Mutex::new(registry),
            requests,
            events,
            latency,
            in_flight,
            writer_queue,
            consent_cache,
        }
    }
}

impl Metrics {
    pub fn record_batch(&self, r: &BatchResponse) {
        let count = |outcome: &str, reason: &str, n: u64| {
            if n > 0 {
                self.events
                    .get_or_create(&OutcomeLabels {
                        outcome: outcome.into(),
                        reason: reason.into(),
                    })
                    .inc_by(n);
            }
        };
        count("accepted", "", u64::from(r.accepted));
        count("duplicate", "", u64::from(r.duplicates));
        for code in RejectCode::ALL {
            let n = r.rejected.iter().filter(|x| x.code == code).count() as u64;
            count("rejected", code.as_str(), n);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics registry"))
            .expect("writing to a String");
        out
    }
}
