//! A run's story in time order: each provider call's record, each fault
//! that fired, each kill and restart, each job that waits to retry or died —
//! so a person reading a failed run's report sees at a glance why an order
//! was charged twice.
//!
//! A run against a target fills it (its report has nothing else that says
//! when things happened); the moments are relative to the run's start.

use std::fmt::Write as _;

use serde::Serialize;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moment {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The order it concerns, when it concerns one (a kill concerns all).
    pub order: Option<String>,
    /// What happened, in a few words: "payments ch_2a charged, told 503
    /// (send-then-crash)".
    pub what: String,
}

/// Every moment of a run, in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub moments: Vec<Moment>,
}

impl Timeline {
    /// Adds a moment, keeping time order (equal times keep insertion order).
    pub fn add(&mut self, at_ms: u64, order: Option<String>, what: impl Into<String>) {
        let at = self.moments.partition_point(|m| m.at_ms <= at_ms);
        self.moments.insert(
            at,
            Moment {
                at_ms,
                order,
                what: what.into(),
            },
        );
    }

    pub fn is_empty(&self) -> bool {
        self.moments.is_empty()
    }

    /// The moments of one order, and those of no order (kills, restarts),
    /// as lines: `  +1.204 s  payments ch_2a charged, told 201`.
    pub fn render_for(&self, order: &str) -> String {
        let mut out = String::new();
        for m in self
            .moments
            .iter()
            .filter(|m| m.order.as_deref().is_none_or(|o| o == order))
        {
            let _ = writeln!(out, "    +{:>7.3} s  {}", m.at_ms as f64 / 1000.0, m.what);
        }
        out
    }

    /// Every moment, as lines with the order named.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in &self.moments {
            let whose = m
                .order
                .as_deref()
                .map_or_else(String::new, |o| format!("order {o}: "));
            let _ = writeln!(
                out,
                "    +{:>7.3} s  {whose}{}",
                m.at_ms as f64 / 1000.0,
                m.what
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_stay_in_time_order_and_an_orders_view_keeps_the_shared_ones() {
        let mut t = Timeline::default();
        t.add(300, Some("1".into()), "email em_1 sent, told 503");
        t.add(100, Some("1".into()), "payments ch_1 charged, told 201");
        t.add(200, None, "worker processes killed");
        t.add(200, Some("2".into()), "payments ch_2 charged, told 201");
        let whats: Vec<&str> = t.moments.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "payments ch_1 charged, told 201",
                "worker processes killed",
                "payments ch_2 charged, told 201",
                "email em_1 sent, told 503"
            ]
        );
        assert_eq!(
            t.render_for("1"),
            "    +  0.100 s  payments ch_1 charged, told 201\n    +  0.200 s  worker processes killed\n    +  0.300 s  email em_1 sent, told 503\n"
        );
        assert!(t.render().contains("order 2: payments ch_2"));
    }
}
