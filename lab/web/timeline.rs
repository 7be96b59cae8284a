//! One order's timeline: every attempt at its jobs (the runner's history)
//! and every call those jobs made to the fake services (their call log,
//! `GET /calls?order_id=…`), on one time axis, so that one look tells why
//! the order was charged twice: attempt 1 charged, the email crashed, the
//! retry charged again.
//!
//! Both sources stamp times with the same wall clock (or, in tests, the
//! same manual clock), so a call belongs to the attempt whose start and
//! finish enclose it. Drawn on the server as rows of a list, each with a
//! lane where attempts are bars and calls are ticks on a shared scale: HTML
//! and CSS only.

use std::collections::HashMap;
use std::fmt::Write as _;

use fake_services::call_log::{LoggedCall, ProviderDid};
use fake_services::Service;
use serde_json::{json, Value};

use super::layout::{escape, time};
use crate::runner::{Attempt, AttemptOutcome};

/// One moment of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Event {
    Attempt(Attempt),
    Call {
        call: LoggedCall,
        /// The attempt that made it; `None` when no attempt encloses it (a
        /// request of the web form, another process's job).
        made_by: Option<MadeBy>,
        /// For a performed effect: which of the order's effects of its
        /// service it is (1 for the first). More than one is a duplicate.
        effect: Option<u32>,
    },
}

impl Event {
    fn at_ms(&self) -> u64 {
        match self {
            Event::Attempt(a) => a.started_ms,
            Event::Call { call, .. } => call.started_ms,
        }
    }

    fn end_ms(&self) -> u64 {
        match self {
            Event::Attempt(a) => a.finished_ms,
            Event::Call { call, .. } => call.answered_ms,
        }
    }
}

/// Which attempt made a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(super) struct MadeBy {
    jid: String,
    class: String,
    attempt: u32,
}

/// The order's attempts and calls in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Timeline {
    pub(super) events: Vec<Event>,
}

impl Timeline {
    /// Interleaves `attempts` (oldest first) and `calls` (in the order they
    /// were answered): by start time, an attempt before the calls that
    /// start in the same millisecond (it made them), calls by their start.
    pub(super) fn new(attempts: &[Attempt], calls: &[LoggedCall]) -> Self {
        let mut effects: HashMap<Service, u32> = HashMap::new();
        let mut by_start: Vec<&LoggedCall> = calls.iter().collect();
        by_start.sort_by_key(|c| (c.started_ms, c.seq));
        let mut call_events = Vec::with_capacity(calls.len());
        for call in by_start {
            let effect = matches!(call.provider, ProviderDid::Performed { .. }).then(|| {
                let n = effects.entry(call.service).or_default();
                *n += 1;
                *n
            });
            // The latest-started attempt that encloses the call: a retry
            // runs after the attempt before it has finished.
            let made_by = attempts
                .iter()
                .filter(|a| a.started_ms <= call.started_ms && call.started_ms <= a.finished_ms)
                .max_by_key(|a| a.started_ms)
                .map(|a| MadeBy {
                    jid: a.jid.clone(),
                    class: a.class.clone(),
                    attempt: a.attempt,
                });
            call_events.push(Event::Call {
                call: call.clone(),
                made_by,
                effect,
            });
        }
        let mut events: Vec<Event> = attempts.iter().cloned().map(Event::Attempt).collect();
        events.extend(call_events);
        // Stable: attempts keep their order, calls theirs.
        events.sort_by_key(|e| (e.at_ms(), matches!(e, Event::Call { .. })));
        Self { events }
    }

    /// The first moment and the last, in epoch ms.
    fn span(&self) -> Option<(u64, u64)> {
        let start = self.events.iter().map(Event::at_ms).min()?;
        let end = self.events.iter().map(Event::end_ms).max()?.max(start);
        Some((start, end))
    }

    /// Each moment as JSON: `kind` (`attempt` or `call`), `at_ms`,
    /// `offset_ms` (from the first moment), and the attempt's or the call's
    /// own fields; a call also has `made_by` (the attempt's jid and number,
    /// or null), `effect` (1, 2, … for a performed effect) and `says` (the
    /// call in words).
    pub(super) fn to_json(&self) -> Value {
        let origin = self.span().map_or(0, |(start, _)| start);
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|event| {
                let (kind, mut value) = match event {
                    Event::Attempt(a) => ("attempt", json!(a)),
                    Event::Call {
                        call,
                        made_by,
                        effect,
                    } => {
                        let mut value = json!(call);
                        if let Some(map) = value.as_object_mut() {
                            map.insert("made_by".into(), json!(made_by));
                            map.insert("effect".into(), json!(effect));
                            map.insert("says".into(), json!(call.describe()));
                        }
                        ("call", value)
                    }
                };
                if let Some(map) = value.as_object_mut() {
                    let at = event.at_ms();
                    let mut head = serde_json::Map::new();
                    head.insert("kind".into(), json!(kind));
                    head.insert("at_ms".into(), json!(at));
                    head.insert("offset_ms".into(), json!(at.saturating_sub(origin)));
                    head.append(map);
                    value = Value::Object(head);
                }
                value
            })
            .collect();
        Value::from(events)
    }

    /// The timeline as a `<section id="timeline">`: one `<li>` a moment, a
    /// `li.attempt` (`data-class`, `data-outcome`) or a `li.call`
    /// (`data-service`, `data-operation`, `data-provider`: what the
    /// provider did), with a duplicate effect marked `dup`.
    pub(super) fn to_html(&self) -> String {
        let mut out = String::from("<section id=\"timeline\">\n");
        let Some((start, end)) = self.span() else {
            out.push_str("<p>Nothing has happened to this order yet.</p>\n</section>\n");
            return out;
        };
        let span = (end - start).max(1) as f64;
        let pct = |ms: u64| (ms.saturating_sub(start)) as f64 * 100.0 / span;
        let _ = writeln!(
            out,
            "<p class=\"axis\">From {} (+0.000 s) to +{}: attempts are bars, calls are ticks, on one scale.</p>\n<ol class=\"timeline\">",
            escape(&time(start)),
            seconds(end - start)
        );
        for event in &self.events {
            let at = event.at_ms();
            let offset = format!(
                "<span class=\"t\" title=\"{}\">+{}</span>",
                escape(&time(at)),
                seconds(at - start)
            );
            match event {
                Event::Attempt(a) => {
                    let (outcome, what) = attempt_words(a);
                    let width = (pct(a.finished_ms) - pct(a.started_ms)).max(0.4);
                    let _ = writeln!(
                        out,
                        "<li class=\"attempt {outcome}\" data-class=\"{}\" data-outcome=\"{outcome}\" data-jid=\"{}\">{offset}\
                         <span class=\"lane\"><span class=\"bar\" style=\"left:{:.2}%;width:{width:.2}%\"></span></span>\
                         <span class=\"what\"><strong>{}</strong> attempt {} · {} · {} · took {} → {what}</span></li>",
                        escape(&a.class),
                        escape(&a.jid),
                        pct(a.started_ms).min(99.6),
                        escape(&a.class),
                        a.attempt,
                        escape(&a.process),
                        escape(&a.code_version),
                        seconds(a.finished_ms.saturating_sub(a.started_ms)),
                    );
                }
                Event::Call {
                    call,
                    made_by,
                    effect,
                } => {
                    let did = provider_word(&call.provider);
                    let duplicate =
                        call.service != Service::ErrorCatcher && effect.is_some_and(|n| n > 1);
                    let mut classes = format!("call {did}");
                    if call.fault.is_some() {
                        classes.push_str(" fault");
                    }
                    if duplicate {
                        classes.push_str(" dup");
                    }
                    let warning = match effect {
                        Some(n) if duplicate => format!(
                            "<strong class=\"bad\">⚠ {} {} for this order</strong> ",
                            ordinal(*n),
                            call.service.record_name()
                        ),
                        _ => String::new(),
                    };
                    let by = made_by.as_ref().map_or_else(String::new, |a| {
                        format!(
                            " <span class=\"by\">(attempt {} of {})</span>",
                            a.attempt,
                            escape(&a.class)
                        )
                    });
                    let _ = writeln!(
                        out,
                        "<li class=\"{classes}\" data-service=\"{}\" data-operation=\"{}\" data-provider=\"{did}\">{offset}\
                         <span class=\"lane\"><span class=\"tick\" style=\"left:{:.2}%\"></span></span>\
                         <span class=\"what\">{warning}{}{by}</span></li>",
                        call.service.name(),
                        escape(&call.operation),
                        pct(at).min(99.6),
                        escape(&call.describe()),
                    );
                }
            }
        }
        out.push_str("</ol>\n</section>\n");
        out
    }
}

/// `data-provider`'s word for what the provider did (the call log's own).
fn provider_word(did: &ProviderDid) -> &'static str {
    match did {
        ProviderDid::Performed { .. } => "performed",
        ProviderDid::Replayed => "replayed",
        ProviderDid::Refused { .. } => "refused",
        ProviderDid::Answered { .. } => "answered",
        ProviderDid::NotReached => "not-reached",
    }
}

/// An attempt's outcome: its `data-outcome` (also its CSS class) and its
/// words, as HTML.
fn attempt_words(a: &Attempt) -> (&'static str, String) {
    match &a.outcome {
        AttemptOutcome::Done => ("done", "<span class=\"good\">done</span>".to_string()),
        AttemptOutcome::Failed {
            error_class,
            error_message,
            transient,
            then,
        } => (
            "failed",
            format!(
                "<span class=\"bad\">failed: <strong>{}</strong>: {}</span> → {then}{}",
                escape(error_class),
                escape(error_message),
                if *transient { " (transient)" } else { "" }
            ),
        ),
        AttemptOutcome::Died { error_message } => (
            "died",
            format!(
                "<span class=\"bad\">the process died: {}</span>",
                escape(error_message)
            ),
        ),
    }
}

/// `1.234 s`.
fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// `2nd`, `3rd`, `11th`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use fake_services::Told;

    use super::*;

    fn attempt(n: u32, started_ms: u64, finished_ms: u64, done: bool) -> Attempt {
        Attempt {
            jid: format!("jid{n}"),
            class: "OrderJob".into(),
            args: vec![json!(1)],
            attempt: n,
            process: "web".into(),
            code_version: "v1".into(),
            started_ms,
            finished_ms,
            outcome: if done {
                AttemptOutcome::Done
            } else {
                AttemptOutcome::Failed {
                    error_class: "Email::ServerError".into(),
                    error_message: "503 <crash>".into(),
                    transient: true,
                    then: "retry",
                }
            },
        }
    }

    fn call(seq: u64, service: Service, at: u64, provider: ProviderDid) -> LoggedCall {
        LoggedCall {
            seq,
            service,
            operation: service.effect_name().into(),
            started_ms: at,
            answered_ms: at + 2,
            client_gave_up_ms: None,
            order_id: Some("1".into()),
            idempotency_key: None,
            fault: matches!(provider, ProviderDid::NotReached).then(|| "crash (rule 0)".into()),
            told: Told::Response {
                status: if matches!(provider, ProviderDid::NotReached) {
                    503
                } else {
                    201
                },
                fault: None,
            },
            provider,
        }
    }

    fn performed(id: &str) -> ProviderDid {
        ProviderDid::Performed { record: id.into() }
    }

    /// The README's walkthrough: charge, email crash, retry, charge again.
    fn double_charge() -> (Vec<Attempt>, Vec<LoggedCall>) {
        let attempts = vec![
            attempt(1, 1_000, 1_010, false),
            attempt(2, 1_300, 1_320, true),
        ];
        let calls = vec![
            call(1, Service::Payments, 1_002, performed("ch_a")),
            call(2, Service::Email, 1_005, ProviderDid::NotReached),
            call(3, Service::Payments, 1_302, performed("ch_b")),
            call(4, Service::Email, 1_305, performed("em_a")),
            // A call no attempt made (another process, a web request).
            call(5, Service::ErrorCatcher, 1_200, performed("err_a")),
        ];
        (attempts, calls)
    }

    #[test]
    fn interleaves_attempts_and_the_calls_they_made() {
        let (attempts, calls) = double_charge();
        let timeline = Timeline::new(&attempts, &calls);
        let order: Vec<String> = timeline
            .events
            .iter()
            .map(|e| match e {
                Event::Attempt(a) => format!("attempt {}", a.attempt),
                Event::Call {
                    call,
                    made_by,
                    effect,
                } => {
                    let by = made_by.as_ref().map(|m| m.attempt);
                    format!("{} by {by:?} effect {effect:?}", call.seq)
                }
            })
            .collect();
        assert_eq!(
            order,
            [
                "attempt 1",
                "1 by Some(1) effect Some(1)",
                "2 by Some(1) effect None",
                "5 by None effect Some(1)",
                "attempt 2",
                "3 by Some(2) effect Some(2)",
                "4 by Some(2) effect Some(1)",
            ]
        );
    }

    #[test]
    fn the_second_charge_is_marked_and_text_is_escaped() {
        let (attempts, calls) = double_charge();
        let html = Timeline::new(&attempts, &calls).to_html();
        let dups: Vec<&str> = html.lines().filter(|l| l.contains(" dup\"")).collect();
        assert_eq!(dups.len(), 1, "{html}");
        assert!(dups[0].contains("data-service=\"payments\""), "{}", dups[0]);
        assert!(
            dups[0].contains("⚠ 2nd charge for this order"),
            "{}",
            dups[0]
        );
        assert!(dups[0].contains("ch_b"), "{}", dups[0]);
        // Escaped once: the error message's markup shows as text.
        assert!(html.contains("503 &lt;crash&gt;"), "{html}");
        assert!(!html.contains("&amp;lt;"), "{html}");
        assert!(html.contains("data-provider=\"not-reached\""), "{html}");
        assert!(html.contains("(fault: crash (rule 0))"), "{html}");
    }

    #[test]
    fn json_says_who_made_each_call_and_which_effect_it_was() {
        let (attempts, calls) = double_charge();
        let json = Timeline::new(&attempts, &calls).to_json();
        let events = json.as_array().unwrap();
        assert_eq!(events.len(), 7);
        assert_eq!(events[0]["kind"], "attempt");
        assert_eq!(events[0]["offset_ms"], 0);
        assert_eq!(events[0]["outcome"], "failed");
        let second_charge = &events[5];
        assert_eq!(second_charge["kind"], "call");
        assert_eq!(second_charge["offset_ms"], 302);
        assert_eq!(second_charge["effect"], 2);
        assert_eq!(
            second_charge["made_by"],
            json!({"jid": "jid2", "class": "OrderJob", "attempt": 2})
        );
        assert_eq!(events[3]["made_by"], Value::Null);
        assert_eq!(
            second_charge["says"],
            "payments charge without an idempotency key: performed ch_b, told 201"
        );
    }

    #[test]
    fn an_empty_timeline_says_so() {
        let html = Timeline::new(&[], &[]).to_html();
        assert!(html.contains("Nothing has happened"), "{html}");
        assert_eq!(Timeline::new(&[], &[]).to_json(), json!([]));
    }

    #[test]
    fn ordinals() {
        let words: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            words,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st",
                "111th"
            ]
        );
    }
}
