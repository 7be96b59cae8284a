//! The per-order effects — charges, confirmation emails, fulfillment
//! requests — counted from a provider's ledger alone.
//!
//! A ledger record names its order inside the request the provider was sent
//! (an [`OrderMatch`]: where, and for an email which template). Counting
//! needs nothing else: no order rows, no job history. That is what lets the
//! same counts judge an app the lab did not build, where the ledgers are all
//! there is; the checks against the lab's own order rows (a declined order
//! wants none, the id an order records must be one of its successes) are a
//! layer on top, in [`per_order`](super::per_order).

use fake_services::{Record, Service};

use super::expect::Invariant;
use super::records::{request_text, template};
use crate::pipeline::jobs::CONFIRMATION_TEMPLATE;

/// Where a ledger record names the order it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderMatch<'a> {
    /// The JSON pointer into the request that holds the order id
    /// (`/metadata/order_id`); a number or a string.
    pub order_at: &'a str,
    /// Only records sent with this `template_id` are the effect (the email
    /// service also sends reminders); `None`: every record.
    pub template: Option<&'a str>,
}

impl OrderMatch<'_> {
    /// The order a record is for, if it is this effect at all.
    pub fn order_of(&self, record: &Record) -> Option<String> {
        if self.template.is_some() && template(record) != self.template {
            return None;
        }
        request_text(record, self.order_at)
    }
}

/// One order's effect in a ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectCount<'a> {
    /// The order, as the ledger names it.
    pub order: String,
    /// Every record of the effect for the order, successful or not (a
    /// declined charge is listed, not counted), in ledger order.
    pub records: Vec<&'a Record>,
    /// The records that count ([`Record::is_success`]).
    pub successes: Vec<&'a Record>,
}

/// The records of `ledger` for `order`, and how many of them count.
pub fn count<'a>(how: &OrderMatch, ledger: &'a [Record], order: &str) -> EffectCount<'a> {
    let records: Vec<&Record> = ledger
        .iter()
        .filter(|r| how.order_of(r).as_deref() == Some(order))
        .collect();
    let successes = records.iter().copied().filter(|r| r.is_success()).collect();
    EffectCount {
        order: order.to_string(),
        records,
        successes,
    }
}

/// Every order the ledger names, once each, in the order first seen: the
/// orders there are, when there are no order rows to list them.
pub fn orders_named(how: &OrderMatch, ledger: &[Record]) -> Vec<String> {
    let mut orders: Vec<String> = Vec::new();
    for order in ledger.iter().filter_map(|r| how.order_of(r)) {
        if !orders.contains(&order) {
            orders.push(order);
        }
    }
    orders
}

/// The counts of every order the ledger names.
pub fn count_all<'a>(how: &OrderMatch, ledger: &'a [Record]) -> Vec<EffectCount<'a>> {
    orders_named(how, ledger)
        .iter()
        .map(|order| count(how, ledger, order))
        .collect()
}

/// One of the per-order effects, and the words its violations use.
pub struct Effect {
    pub invariant: Invariant,
    pub service: Service,
    /// How a record of the service's ledger names its order.
    pub names_order: OrderMatch<'static>,
    /// What an id of it names: "charge", "email", "fulfillment request".
    pub id_noun: &'static str,
    /// Counted, singular and plural: "successful charge(s)".
    pub counted: (&'static str, &'static str),
    /// "order 1 was charged 2 times".
    pub said: fn(&str, usize) -> String,
}

/// Successful charges, in the payments ledger.
pub const CHARGES: Effect = Effect {
    invariant: Invariant::ChargesPerOrder,
    service: Service::Payments,
    names_order: OrderMatch {
        order_at: "/metadata/order_id",
        template: None,
    },
    id_noun: "charge",
    counted: ("successful charge", "successful charges"),
    said: |who, n| match n {
        0 => format!("{who} was never charged"),
        1 => format!("{who} was charged once"),
        n => format!("{who} was charged {n} times"),
    },
};

/// Confirmation emails (not reminders), in the email ledger.
pub const EMAILS: Effect = Effect {
    invariant: Invariant::EmailsPerOrder,
    service: Service::Email,
    names_order: OrderMatch {
        order_at: "/template_data/order_id",
        template: Some(CONFIRMATION_TEMPLATE),
    },
    id_noun: "confirmation email",
    counted: ("confirmation email", "confirmation emails"),
    said: |who, n| match n {
        0 => format!("{who} got no confirmation email"),
        1 => format!("{who} got 1 confirmation email"),
        n => format!("{who} got {n} confirmation emails"),
    },
};

/// Fulfillment requests, in the fulfillment ledger.
pub const FULFILLMENTS: Effect = Effect {
    invariant: Invariant::FulfillmentsPerOrder,
    service: Service::Fulfillment,
    names_order: OrderMatch {
        order_at: "/metadata/order_id",
        template: None,
    },
    id_noun: "fulfillment request",
    counted: ("fulfillment request", "fulfillment requests"),
    said: |who, n| match n {
        0 => format!("{who} was never sent to fulfillment"),
        1 => format!("{who} was sent to fulfillment once"),
        n => format!("{who} was sent to fulfillment {n} times"),
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::fixtures::{
        charge, declined_charge, email, fulfillment, reminder_email, told_fault, told_ok,
    };

    fn ids(records: &[&Record]) -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn counts_come_from_the_ledger_alone() {
        let ledger = vec![
            declined_charge("ch_0", 1),
            charge("ch_1", 1, told_ok(201)),
            charge("ch_1b", 1, told_fault(503, "send-then-crash")),
            charge("ch_2", 2, told_ok(201)),
        ];
        let one = count(&CHARGES.names_order, &ledger, "1");
        assert_eq!(ids(&one.records), ["ch_0", "ch_1", "ch_1b"]);
        assert_eq!(
            ids(&one.successes),
            ["ch_1", "ch_1b"],
            "a decline is listed, not counted"
        );
        let none = count(&CHARGES.names_order, &ledger, "3");
        assert!(none.records.is_empty() && none.successes.is_empty());
    }

    #[test]
    fn the_orders_a_ledger_names_are_counted_without_order_rows() {
        let ledger = vec![
            charge("ch_2", 2, told_ok(201)),
            charge("ch_1", 1, told_ok(201)),
            charge("ch_2b", 2, told_ok(201)),
        ];
        assert_eq!(orders_named(&CHARGES.names_order, &ledger), ["2", "1"]);
        let counts: Vec<(String, usize)> = count_all(&CHARGES.names_order, &ledger)
            .into_iter()
            .map(|c| (c.order, c.successes.len()))
            .collect();
        assert_eq!(counts, [("2".to_string(), 2), ("1".to_string(), 1)]);
    }

    #[test]
    fn a_template_narrows_the_records_that_are_the_effect() {
        let ledger = vec![
            email("em_1", 1, told_ok(202)),
            reminder_email("em_r", 1),
            fulfillment("fr_1", 1),
        ];
        let emails = count(&EMAILS.names_order, &ledger, "1");
        assert_eq!(
            ids(&emails.records),
            ["em_1"],
            "a reminder is no confirmation"
        );
        assert_eq!(orders_named(&EMAILS.names_order, &ledger), ["1"]);
        let how = OrderMatch {
            order_at: "/template_data/reminder_id",
            template: None,
        };
        assert_eq!(
            orders_named(&how, &ledger),
            ["1"],
            "any path a target names"
        );
    }

    #[test]
    fn each_effect_says_how_often_it_happened() {
        assert_eq!((CHARGES.said)("order 1", 0), "order 1 was never charged");
        assert_eq!((CHARGES.said)("order 1", 1), "order 1 was charged once");
        assert_eq!(
            (FULFILLMENTS.said)("order 1", 1),
            "order 1 was sent to fulfillment once"
        );
        assert_eq!(
            (FULFILLMENTS.said)("order 1", 3),
            "order 1 was sent to fulfillment 3 times"
        );
        assert_eq!(
            (EMAILS.said)("order 1", 1),
            "order 1 got 1 confirmation email"
        );
    }
}
