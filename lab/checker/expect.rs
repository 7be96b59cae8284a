//! What a run is held to: a scenario's `[expect]` table, the invariants it
//! names, and the safe values a `violation = X` is checked against.
//!
//! These are the checker's vocabulary, so they live here: the scenario
//! format reads them from a file, the checker evaluates them, and nothing in
//! the checker needs the scenario module.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `[expect]`: what must be true at the end.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub charges_per_order: Option<u32>,
    pub emails_per_order: Option<u32>,
    pub fulfillments_per_order: Option<u32>,
    pub reminders_per_reminder: Option<u32>,
    pub orders: Option<OrdersExpectation>,
    pub dead_jobs: Option<u32>,
    pub notified: Option<u32>,
    pub lost_jobs: Option<u32>,
    /// The scenario documents a broken variant: it passes only if the checker
    /// reports this violation.
    pub violation: Option<Invariant>,
}

impl Expect {
    /// What a safe pipeline ends with: each order charged, emailed and
    /// fulfilled once (a declined one not at all), every order complete or
    /// declined, nothing dead, notified or lost. Reminders are not counted.
    pub fn exactly_once() -> Expect {
        Expect {
            charges_per_order: Some(1),
            emails_per_order: Some(1),
            fulfillments_per_order: Some(1),
            reminders_per_reminder: None,
            orders: Some(OrdersExpectation::AllComplete),
            dead_jobs: Some(0),
            notified: Some(0),
            lost_jobs: Some(0),
            violation: None,
        }
    }
}

/// `orders = "all-complete"` or `"all-settled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrdersExpectation {
    /// Every order charged, emailed and fulfilled (declined ones excepted).
    AllComplete,
    /// Every order complete, declined, or with its job dead and its death notified.
    AllSettled,
}

impl OrdersExpectation {
    /// The `[expect]` value.
    pub fn key(self) -> &'static str {
        match self {
            OrdersExpectation::AllComplete => "all-complete",
            OrdersExpectation::AllSettled => "all-settled",
        }
    }
}

/// The invariants the checker knows, by their `[expect]` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invariant {
    ChargesPerOrder,
    EmailsPerOrder,
    FulfillmentsPerOrder,
    RemindersPerReminder,
    Orders,
    DeadJobs,
    Notified,
    LostJobs,
}

impl Invariant {
    /// The `[expect]` key.
    pub fn key(self) -> &'static str {
        match self {
            Invariant::ChargesPerOrder => "charges_per_order",
            Invariant::EmailsPerOrder => "emails_per_order",
            Invariant::FulfillmentsPerOrder => "fulfillments_per_order",
            Invariant::RemindersPerReminder => "reminders_per_reminder",
            Invariant::Orders => "orders",
            Invariant::DeadJobs => "dead_jobs",
            Invariant::Notified => "notified",
            Invariant::LostJobs => "lost_jobs",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What the run is held to: the keys `[expect]` gives, and for the invariant
/// a `violation` names, its safe value (1 per order or reminder,
/// `all-complete`, 0 dead, notified or lost), so the violation can be found.
pub fn effective(expect: &Expect) -> Expect {
    let mut held = expect.clone();
    match expect.violation {
        None => {}
        Some(Invariant::ChargesPerOrder) => held.charges_per_order = Some(1),
        Some(Invariant::EmailsPerOrder) => held.emails_per_order = Some(1),
        Some(Invariant::FulfillmentsPerOrder) => held.fulfillments_per_order = Some(1),
        Some(Invariant::RemindersPerReminder) => held.reminders_per_reminder = Some(1),
        Some(Invariant::Orders) => held.orders = Some(OrdersExpectation::AllComplete),
        Some(Invariant::DeadJobs) => held.dead_jobs = Some(0),
        Some(Invariant::Notified) => held.notified = Some(0),
        Some(Invariant::LostJobs) => held.lost_jobs = Some(0),
    }
    held
}

/// The expectations the check evaluates, as `key = value`, in invariant order.
pub fn checked(expect: &Expect) -> Vec<(Invariant, String)> {
    let held = effective(expect);
    let counts = [
        (Invariant::ChargesPerOrder, held.charges_per_order),
        (Invariant::EmailsPerOrder, held.emails_per_order),
        (Invariant::FulfillmentsPerOrder, held.fulfillments_per_order),
        (Invariant::RemindersPerReminder, held.reminders_per_reminder),
    ];
    let totals = [
        (Invariant::DeadJobs, held.dead_jobs),
        (Invariant::Notified, held.notified),
        (Invariant::LostJobs, held.lost_jobs),
    ];
    let given = |list: &[(Invariant, Option<u32>)]| -> Vec<(Invariant, String)> {
        list.iter()
            .filter_map(|(invariant, n)| n.map(|n| (*invariant, n.to_string())))
            .collect()
    };
    let mut list = given(&counts);
    if let Some(orders) = held.orders {
        list.push((Invariant::Orders, orders.key().to_string()));
    }
    list.extend(given(&totals));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_lists_the_given_keys_in_invariant_order() {
        let expect = Expect {
            lost_jobs: Some(0),
            charges_per_order: Some(2),
            orders: Some(OrdersExpectation::AllSettled),
            reminders_per_reminder: Some(1),
            ..Expect::default()
        };
        let listed: Vec<String> = checked(&expect)
            .into_iter()
            .map(|(i, v)| format!("{i} = {v}"))
            .collect();
        assert_eq!(
            listed,
            [
                "charges_per_order = 2",
                "reminders_per_reminder = 1",
                "orders = all-settled",
                "lost_jobs = 0"
            ]
        );
    }

    #[test]
    fn exactly_once_is_every_safe_value_but_reminders() {
        let listed: Vec<String> = checked(&Expect::exactly_once())
            .into_iter()
            .map(|(i, v)| format!("{i} = {v}"))
            .collect();
        assert_eq!(
            listed,
            [
                "charges_per_order = 1",
                "emails_per_order = 1",
                "fulfillments_per_order = 1",
                "orders = all-complete",
                "dead_jobs = 0",
                "notified = 0",
                "lost_jobs = 0"
            ]
        );
    }
}
