//! The fake services' metrics, for `GET /metrics` in the Prometheus text
//! format (version 0.0.4), through the `prometheus-client` crate.
//!
//! Counters are counted at one place, where a call goes into the call log
//! ([`FakeServices`](crate::FakeServices)'s `finish`), from the words the call log
//! keeps: what the provider did ([`ProviderDid`]), what the client was told
//! ([`Told`]) and the fault that fired. They are per [`Metrics`] (each
//! `FakeServices` has its own, no global registry), so tests running several
//! servers in one process do not mix their counts. As Prometheus expects of
//! counters, they only go up: `POST /reset` forgets the ledgers and the log,
//! not the counts.
//!
//! Gauges (the ledger sizes) are read when scraped, into a registry made for
//! that scrape: nothing is kept twice, and a simulated run that is never
//! scraped pays for no registry.

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::call_log::ProviderDid;
use crate::ledger::Told;
use crate::service::Service;

/// The `Content-Type` of the answer: the Prometheus text format, 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The prefix of every family's name.
const PREFIX: &str = "idemlab_fakes";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    /// `charge`, `send`, `request`, `notify`, `search`, `status`, `clear`.
    operation: &'static str,
    /// What the provider did: [`ProviderDid::name`].
    outcome: &'static str,
    /// What the client was told: `2xx`, `4xx`, `5xx` or `dropped`.
    told: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    service: &'static str,
    /// The fault's mode: `crash`, `throttle`, `slow`, `send-then-crash`,
    /// `drop-before`, `drop-after`.
    mode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

/// The counters of one `FakeServices`.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Family<CallLabels, Counter>,
    faults: Family<FaultLabels, Counter>,
    replays: Family<ServiceLabels, Counter>,
}

/// A service's ledger as the gauges show it: records kept, and records
/// `--keep` dropped.
pub type LedgerSize = (usize, u64);

impl Metrics {
    /// Counts one answered call: its operation's name, what the provider
    /// did, what the client was told, and the mode of the fault that acted
    /// on it, if one did.
    pub fn count_call(
        &self,
        service: Service,
        operation: &'static str,
        provider: &ProviderDid,
        told: &Told,
        fault_mode: Option<&'static str>,
    ) {
        let service = service.name();
        self.calls
            .get_or_create(&CallLabels {
                service,
                operation,
                outcome: provider.name(),
                told: told_class(told),
            })
            .inc();
        if *provider == ProviderDid::Replayed {
            self.replays.get_or_create(&ServiceLabels { service }).inc();
        }
        if let Some(mode) = fault_mode {
            self.faults
                .get_or_create(&FaultLabels { service, mode })
                .inc();
        }
    }

    /// The metrics in the Prometheus text format: the counters so far, and
    /// each service's ledger size as `ledger_size` reads it now.
    pub fn render(&self, ledger_size: impl Fn(Service) -> LedgerSize) -> String {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "calls",
            "Calls answered, by service, operation, what the provider did (outcome) and what the client was told",
            self.calls.clone(),
        );
        registry.register(
            "faults_fired",
            "Calls a fault rule or a fault header acted on, by service and the fault's mode",
            self.faults.clone(),
        );
        registry.register(
            "idempotent_replays",
            "Effects answered again from an Idempotency-Key or a metadata.idempotency_key, without a new effect",
            self.replays.clone(),
        );
        let kept = Family::<ServiceLabels, Gauge>::default();
        let dropped = Family::<ServiceLabels, Gauge>::default();
        for service in Service::ALL {
            let labels = ServiceLabels {
                service: service.name(),
            };
            let (records, gone) = ledger_size(service);
            kept.get_or_create(&labels)
                .set(saturating_i64(records as u64));
            dropped.get_or_create(&labels).set(saturating_i64(gone));
        }
        registry.register(
            "ledger_records",
            "Records in the service's ledger now (with --keep, the ones kept)",
            kept,
        );
        registry.register(
            "ledger_dropped_records",
            "Records --keep dropped from the service's ledger since the last reset",
            dropped,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

/// What the client was told, as a label: the status class, or `dropped`.
fn told_class(told: &Told) -> &'static str {
    match told {
        Told::Dropped => "dropped",
        Told::Response { status, .. } => match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_counts_in_every_family_it_belongs_to() {
        let metrics = Metrics::default();
        let crashed = Told::Response {
            status: 503,
            fault: Some("send-then-crash (rule 0)".into()),
        };
        metrics.count_call(
            Service::Email,
            "send",
            &ProviderDid::Performed {
                record: "em_1".into(),
            },
            &crashed,
            Some("send-then-crash"),
        );
        let ok = Told::Response {
            status: 201,
            fault: None,
        };
        metrics.count_call(Service::Email, "send", &ProviderDid::Replayed, &ok, None);
        let text = metrics.render(|s| if s == Service::Email { (1, 2) } else { (0, 0) });
        for line in [
            "# TYPE idemlab_fakes_calls_total counter",
            "idemlab_fakes_calls_total{service=\"email\",operation=\"send\",outcome=\"performed\",told=\"5xx\"} 1",
            "idemlab_fakes_calls_total{service=\"email\",operation=\"send\",outcome=\"replayed\",told=\"2xx\"} 1",
            "idemlab_fakes_faults_fired_total{service=\"email\",mode=\"send-then-crash\"} 1",
            "idemlab_fakes_idempotent_replays_total{service=\"email\"} 1",
            "# TYPE idemlab_fakes_ledger_records gauge",
            "idemlab_fakes_ledger_records{service=\"email\"} 1",
            "idemlab_fakes_ledger_records{service=\"payments\"} 0",
            "idemlab_fakes_ledger_dropped_records{service=\"email\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(text.matches("faults_fired_total{").count(), 1, "{text}");
    }

    #[test]
    fn told_classes() {
        assert_eq!(told_class(&Told::Dropped), "dropped");
        for (status, class) in [(200, "2xx"), (409, "4xx"), (429, "4xx"), (504, "5xx")] {
            let told = Told::Response {
                status,
                fault: None,
            };
            assert_eq!(told_class(&told), class);
        }
    }
}
