//! One order's page: its Payment, Confirmation Email and Fulfillment rows
//! (done with the provider's id, declined with the reason, in progress, or
//! stopped when its job is dead, beside what each provider's ledger holds
//! for it), the jobs waiting to retry it, its timeline of attempts and
//! provider calls, and its job history.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{json, Value};

use super::jobs::entry_json;
use super::layout::{escape, money, time, when};
use super::timeline::Timeline;
use super::Web;
use crate::runner::backend::SetEntry;
use crate::runner::{Attempt, AttemptOutcome, JobSet};
use crate::store::{Order, Product};
use fake_services::call_log::OrderCallsAnswer;
use fake_services::Service;

/// One pipeline step of an order, as its page shows it.
#[derive(Debug, Serialize)]
pub(super) struct StepView {
    /// `done`, `declined`, `skipped`, `in-progress` or `stopped`.
    status: &'static str,
    /// The provider's id, when done.
    id: Option<String>,
    text: String,
}

/// Everything an order's page shows.
pub(super) struct OrderView {
    order: Order,
    product: Option<Product>,
    payment: StepView,
    email: StepView,
    fulfillment: StepView,
    pub(super) in_progress: bool,
    problem: Option<String>,
    history: Vec<Attempt>,
    retries: Vec<SetEntry>,
    dead: Vec<SetEntry>,
    /// Successful effects for this order in each provider's ledger (payments,
    /// email, fulfillment), or `None` when the services could not be asked.
    ledger: [Option<u32>; 3],
    timeline: Timeline,
    /// Why the timeline may lack calls (the services unreachable, or their
    /// call log has forgotten this order's oldest), if it may.
    calls_note: Option<String>,
    now_ms: u64,
}

/// The providers whose ledgers the order page counts, in the order of the
/// steps, with what one effect is called.
const LEDGERS: [(Service, &str); 3] = [
    (Service::Payments, "charge"),
    (Service::Email, "email"),
    (Service::Fulfillment, "request"),
];

/// The order's calls and effect counts, from the fake services' call log
/// (`GET /calls?order_id=…`): what really happened, whatever the order row
/// says. More than one effect is the lab's point.
async fn order_calls(web: &Web, order_id: i64) -> Result<OrderCallsAnswer, String> {
    let url = format!("{}/calls?order_id={order_id}", web.lab.fakes_url);
    let response = web
        .http
        .get(&url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|err| format!("the fake services did not answer {url}: {err}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the fake services answered {url} with {status}"));
    }
    response
        .json()
        .await
        .map_err(|err| format!("the fake services' answer to {url} was not a call log: {err}"))
}

impl OrderView {
    /// The order's columns at the top level, plus its state and steps.
    pub(super) fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(&self.order).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert("state".into(), json!(self.order.state()));
            map.insert("product".into(), json!(self.product));
            map.insert(
                "steps".into(),
                json!({
                    "payment": self.payment,
                    "email": self.email,
                    "fulfillment": self.fulfillment,
                }),
            );
            map.insert("in_progress".into(), json!(self.in_progress));
            map.insert("problem".into(), json!(self.problem));
            map.insert("history".into(), json!(self.history));
            map.insert("timeline".into(), self.timeline.to_json());
            map.insert("calls_note".into(), json!(self.calls_note));
            map.insert(
                "retries".into(),
                Value::from(self.retries.iter().map(entry_json).collect::<Vec<_>>()),
            );
            map.insert(
                "dead".into(),
                Value::from(self.dead.iter().map(entry_json).collect::<Vec<_>>()),
            );
            let ledger: serde_json::Map<String, Value> = LEDGERS
                .iter()
                .zip(self.ledger)
                .map(|((service, _), count)| (service.name().to_string(), json!(count)))
                .collect();
            map.insert("ledger".into(), Value::Object(ledger));
        }
        value
    }
}

/// The jobs of `set` whose first argument is the order's id.
async fn jobs_for(web: &Web, set: JobSet, order_id: i64) -> Vec<SetEntry> {
    let arg = json!(order_id);
    match web.lab.runner.backend().set_entries(set).await {
        Ok(entries) => entries
            .into_iter()
            .filter(|e| e.job.args.first() == Some(&arg))
            .collect(),
        Err(err) => {
            tracing::warn!(%err, "could not read the {} set", set.key());
            Vec::new()
        }
    }
}

pub(super) async fn order_view(web: &Web, order: Order) -> OrderView {
    let product = web
        .lab
        .shop
        .store
        .product(order.product_id)
        .await
        .ok()
        .flatten();
    let retries = jobs_for(web, JobSet::Retry, order.id).await;
    let dead = jobs_for(web, JobSet::Dead, order.id).await;
    let problem = web.problem(order.id);
    let history = web.lab.runner.history().for_first_arg(&json!(order.id));
    let (ledger, timeline, calls_note) = match order_calls(web, order.id).await {
        Ok(answer) => {
            let ledger = LEDGERS.map(|(service, _)| answer.effects.get(&service).copied());
            let note = answer.log.kept_since_ms.map(|since| {
                format!(
                    "The fake services keep their newest calls only: calls before {} are forgotten.",
                    time(since)
                )
            });
            (ledger, Timeline::new(&history, &answer.log.calls), note)
        }
        Err(err) => {
            tracing::warn!(%err, "could not read order {}'s calls", order.id);
            (
                [None; 3],
                Timeline::new(&history, &[]),
                Some(format!("No provider calls shown: {err}.")),
            )
        }
    };

    // Why the order will not move on by itself, if it won't.
    let stopped = if let Some(entry) = dead.last() {
        Some(format!(
            "{} is in the dead set ({})",
            entry.job.class,
            entry
                .job
                .error_message
                .as_deref()
                .unwrap_or("no error message")
        ))
    } else {
        problem
            .as_ref()
            .map(|_| "the job ran inline and failed; nothing will retry it".to_string())
    };
    let pending = || match &stopped {
        Some(reason) => StepView {
            status: "stopped",
            id: None,
            text: format!("Stopped: {reason}"),
        },
        None => StepView {
            status: "in-progress",
            id: None,
            text: "in progress".into(),
        },
    };
    let done = |id: &Option<String>, verb: &str| StepView {
        status: "done",
        id: id.clone(),
        text: match id {
            Some(id) => format!("{verb}: {id}"),
            None => verb.to_string(),
        },
    };
    let skipped = |what: &str| StepView {
        status: "skipped",
        id: None,
        text: format!("{what}: the payment was declined"),
    };
    let payment = match order.charge_successful {
        Some(true) => done(&order.charge_id, "Charged"),
        Some(false) => StepView {
            status: "declined",
            id: order.charge_id.clone(),
            text: match &order.charge_decline_reason {
                Some(reason) => format!("Payment Declined: {reason}"),
                None => "Payment Declined".into(),
            },
        },
        None => pending(),
    };
    let declined = order.is_declined();
    let email = if order.email_id.is_some() {
        done(&order.email_id, "Sent")
    } else if declined {
        skipped("Not sent")
    } else {
        pending()
    };
    let fulfillment = if order.fulfillment_request_id.is_some() {
        done(&order.fulfillment_request_id, "Requested")
    } else if declined {
        skipped("Not requested")
    } else {
        pending()
    };
    let in_progress = [&payment, &email, &fulfillment]
        .iter()
        .any(|s| s.status == "in-progress");
    OrderView {
        order,
        product,
        payment,
        email,
        fulfillment,
        in_progress,
        problem,
        history,
        retries,
        dead,
        ledger,
        timeline,
        calls_note,
        now_ms: web.lab.shop.clock.now_ms(),
    }
}

pub(super) fn ms(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(super) fn order_html(view: &OrderView) -> String {
    let order = &view.order;
    let product = view.product.as_ref().map_or_else(
        || format!("product {}", order.product_id),
        |p| p.name.clone(),
    );
    let mut out = format!(
        "<p id=\"summary\">{} × {} for {} · {} · ships to {} · placed {} · state <strong>{}</strong></p>\n",
        order.quantity,
        escape(&product),
        money(order.amount_cents),
        escape(&order.email),
        escape(&order.address),
        escape(&time(ms(order.created_at_ms))),
        order.state(),
    );
    if let Some(problem) = &view.problem {
        let _ = writeln!(
            out,
            "<div class=\"errors\" id=\"problem\"><strong>Problem:</strong> {}</div>",
            escape(problem)
        );
    }
    out.push_str(
        "<table id=\"steps\"><tr><th>Step</th><th>Status</th><th>In the provider's ledger</th></tr>\n",
    );
    for ((key, name, step), (count, (_, effect))) in [
        ("payment", "Payment", &view.payment),
        ("email", "Confirmation Email", &view.email),
        ("fulfillment", "Fulfillment", &view.fulfillment),
    ]
    .into_iter()
    .zip(view.ledger.iter().zip(LEDGERS))
    {
        let class = match step.status {
            "done" => " class=\"good\"",
            "declined" | "stopped" => " class=\"bad\"",
            _ => "",
        };
        let truth = match count {
            None => "<td>(ledger not readable)</td>".to_string(),
            Some(n) if *n > 1 => {
                format!("<td class=\"bad\"><strong>⚠ {n} × {effect}</strong> for this order</td>")
            }
            Some(n) => format!("<td>{n} × {effect}</td>"),
        };
        let _ = writeln!(
            out,
            "<tr id=\"step-{key}\"><td>{name}</td><td{class}>{}</td>{truth}</tr>",
            escape(&step.text)
        );
    }
    out.push_str("</table>\n");
    if view.in_progress {
        out.push_str("<p><em>In progress: this page reloads every second.</em></p>\n");
    }
    for entry in &view.retries {
        let _ = writeln!(
            out,
            "<p class=\"bad\">{} failed ({}: {}); retry {} is due {}. <a href=\"/jobs\">Jobs…</a></p>",
            escape(&entry.job.class),
            escape(entry.job.error_class.as_deref().unwrap_or("")),
            escape(entry.job.error_message.as_deref().unwrap_or("")),
            entry.job.retry_count.map_or(0, |c| c + 1),
            when(entry.at_ms, view.now_ms),
        );
    }
    out.push_str("<h2>Timeline</h2>\n");
    if let Some(note) = &view.calls_note {
        let _ = writeln!(out, "<p class=\"hint\">{}</p>", escape(note));
    }
    out.push_str(&view.timeline.to_html());
    out.push_str("<h2>Job history</h2>\n");
    if view.history.is_empty() {
        out.push_str("<p>No job has run for this order yet.</p>\n");
        return out;
    }
    out.push_str(
        "<table id=\"history\"><tr><th>attempt</th><th>class</th><th>jid</th><th>process</th>\
         <th>code version</th><th>started</th><th>outcome</th></tr>\n",
    );
    for attempt in &view.history {
        let outcome = match &attempt.outcome {
            AttemptOutcome::Done => "<span class=\"good\">done</span>".to_string(),
            AttemptOutcome::Failed {
                error_class,
                error_message,
                transient,
                then,
            } => format!(
                "<span class=\"bad\"><strong>{}</strong>: {}</span> → {}{}",
                escape(error_class),
                escape(error_message),
                escape(then),
                if *transient { " (transient)" } else { "" }
            ),
            AttemptOutcome::Died { error_message } => format!(
                "<span class=\"bad\">process died: {}</span>",
                escape(error_message)
            ),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td></tr>",
            attempt.attempt,
            escape(&attempt.class),
            escape(&attempt.jid),
            escape(&attempt.process),
            escape(&attempt.code_version),
            when(attempt.started_ms, view.now_ms),
        );
    }
    out.push_str("</table>\n");
    out
}
