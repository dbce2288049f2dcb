//! Prometheus metrics: what the operators watch. Served in the text format on a port of its
//! own (`--metrics-listen`), apart from the gRPC API, so a scraper needs no API key.
//!
//! Labels take only bounded values (RPC names the API defines, status codes, line statuses):
//! nothing a caller sends becomes a label, and no label ever carries personal data.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::storage::remittance::LineCounts;
use crate::storage::OpenTotals;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LineLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MatchLabels {
    matched_from: &'static str,
}

type HistogramFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s: a payment is a few ms, a million-line file a few seconds.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The gateway's metrics, shared by every request.
pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_seconds: HistogramFamily,
    lines_ingested: Family<LineLabels, Counter>,
    distribution_seconds: Histogram,
    suspense_dollars: Gauge<f64, AtomicU64>,
    unapplied_dollars: Gauge<f64, AtomicU64>,
    conflict_retries: Family<OperationLabels, Counter>,
    batches_matched: Family<MatchLabels, Counter>,
    registry_index_generation: Gauge,
    registry_index_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("gateway");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register("rpc_requests", "gRPC calls answered, by RPC and status code", rpc_requests.clone());
        let rpc_seconds = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register("rpc_duration_seconds", "Time to answer a gRPC call (streams: to their end)", rpc_seconds.clone());
        let lines_ingested = Family::<LineLabels, Counter>::default();
        registry.register("remittance_lines", "Remittance lines of accepted files, by outcome", lines_ingested.clone());
        let distribution_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("distribution_run_duration_seconds", "Time a distribution run took", distribution_seconds.clone());
        let suspense_dollars = Gauge::<f64, AtomicU64>::default();
        registry.register("suspense_open_dollars", "Money held in suspense, open items", suspense_dollars.clone());
        let unapplied_dollars = Gauge::<f64, AtomicU64>::default();
        registry.register("unapplied_dollars", "Money allocated as unapplied credit, reversals netted", unapplied_dollars.clone());
        let conflict_retries = Family::<OperationLabels, Counter>::default();
        registry.register(
            "store_conflict_retries",
            "Transactions run again after a serialization failure or a deadlock, by operation",
            conflict_retries.clone(),
        );
        let batches_matched = Family::<MatchLabels, Counter>::default();
        registry.register(
            "remittance_line_batches_matched",
            "Batches of a file's lines matched against the registry held in memory, or read from the database (while it is read again)",
            batches_matched.clone(),
        );
        let registry_index_generation = Gauge::default();
        registry.register(
            "registry_index_generation",
            "The registry's generation the index in memory holds (0: none)",
            registry_index_generation.clone(),
        );
        let registry_index_bytes = Gauge::default();
        registry.register("registry_index_bytes", "Memory the registry index holds", registry_index_bytes.clone());
        Metrics {
            registry,
            rpc_requests,
            rpc_seconds,
            lines_ingested,
            distribution_seconds,
            suspense_dollars,
            unapplied_dollars,
            conflict_retries,
            batches_matched,
            registry_index_generation,
            registry_index_bytes,
        }
    }
}

impl Metrics {
    /// One answered call. `rpc` is a name from the API (or `unknown`), `code` a gRPC code name.
    pub fn observe_rpc(&self, rpc: &str, code: &str, elapsed: Duration) {
        let labels = RpcLabels { rpc: rpc.to_owned(), code: code.to_owned() };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The lines of a file just accepted.
    pub fn observe_lines(&self, counts: &LineCounts) {
        for (status, count) in [
            ("APPLIED", counts.applied),
            ("APPLIED_BY_SSN", counts.applied_by_ssn),
            ("SUSPENSE", counts.suspense),
            ("REJECTED", counts.rejected),
        ] {
            self.lines_ingested.get_or_create(&LineLabels { status }).inc_by(count);
        }
    }

    /// A transaction of `operation` run again after a serialization failure or a deadlock.
    pub fn observe_conflict_retry(&self, operation: &'static str) {
        self.conflict_retries.get_or_create(&OperationLabels { operation }).inc();
    }

    /// A batch of lines matched against the registry in memory (`true`) or the database's.
    pub fn observe_batch_matched(&self, in_memory: bool) {
        let matched_from = if in_memory { "memory" } else { "database" };
        self.batches_matched.get_or_create(&MatchLabels { matched_from }).inc();
    }

    /// The registry index now held: its generation and size (none: 0 and 0).
    pub fn set_registry_index(&self, generation: i64, bytes: usize) {
        self.registry_index_generation.set(generation);
        self.registry_index_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn observe_distribution(&self, elapsed: Duration) {
        self.distribution_seconds.observe(elapsed.as_secs_f64());
    }

    /// The money totals, read from the database when scraped.
    pub fn set_open_totals(&self, totals: OpenTotals) {
        self.suspense_dollars.set(totals.suspense.cents() as f64 / 100.0);
        self.unapplied_dollars.set(totals.unapplied.cents() as f64 / 100.0);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;

    #[test]
    fn every_metric_is_exposed_with_its_labels() {
        let metrics = Metrics::default();
        metrics.observe_rpc("PaymentService/SubmitPayment", "Ok", Duration::from_millis(3));
        metrics.observe_lines(&LineCounts { applied: 2, suspense: 1, ..LineCounts::default() });
        metrics.observe_distribution(Duration::from_millis(20));
        metrics.observe_batch_matched(true);
        metrics.observe_batch_matched(false);
        metrics.observe_batch_matched(false);
        metrics.set_registry_index(7, 1024);
        metrics.set_open_totals(OpenTotals { suspense: Money::from_cents(12_50), unapplied: Money::from_cents(100_00) });
        let text = metrics.encode();
        assert!(text.contains(r#"gateway_rpc_requests_total{rpc="PaymentService/SubmitPayment",code="Ok"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_rpc_duration_seconds_count{rpc="PaymentService/SubmitPayment",code="Ok"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_remittance_lines_total{status="APPLIED"} 2"#), "{text}");
        assert!(text.contains("gateway_distribution_run_duration_seconds_count 1"), "{text}");
        assert!(text.contains("gateway_suspense_open_dollars 12.5"), "{text}");
        assert!(text.contains("gateway_unapplied_dollars 100.0"), "{text}");
        assert!(text.contains(r#"gateway_remittance_line_batches_matched_total{matched_from="memory"} 1"#), "{text}");
        assert!(text.contains(r#"gateway_remittance_line_batches_matched_total{matched_from="database"} 2"#), "{text}");
        assert!(text.contains("gateway_registry_index_generation 7"), "{text}");
        assert!(text.contains("gateway_registry_index_bytes 1024"), "{text}");
    }
}
