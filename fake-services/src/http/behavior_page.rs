//! `GET /{service}/behavior` for a browser: the rules in order, each in
//! words with what it has used up and its own Remove, Move up and Move down
//! buttons (small forms, no JavaScript), a form to add one rule that says
//! what each field means (for the mode chosen with `?mode=`, or for every
//! mode), the search lag, and a button to clear everything. Editing one
//! rule leaves the others' counters alone; only "Behave well again"
//! replaces the whole behaviour.

use std::fmt::Write;

use super::pages::{escape, page, token_field, with_token};
use super::AppState;
use crate::fault_rules::{Field, Mode, RuleError};
use crate::rule_words;
use crate::service::Service;
use crate::style::relative;

/// What the add-rule form shows besides the rules in force: the mode it is
/// for, and the fields a rejected submission had (so nothing typed is lost).
#[derive(Default)]
pub(super) struct Draft<'a> {
    pub mode: Option<Mode>,
    pub form: &'a [(String, String)],
}

impl Draft<'_> {
    /// The submitted value of `name_N` (whatever row N the form had).
    fn value<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        self.values(name).next()
    }

    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.form.iter().filter_map(move |(k, v)| {
            let (key, row) = k.rsplit_once('_')?;
            (key == name && row.parse::<usize>().is_ok()).then_some(v.as_str())
        })
    }
}

/// The whole page; `problem` is why the last change was refused.
pub(super) fn behavior_page(
    app: &AppState,
    service: Service,
    token: Option<&str>,
    problem: Option<&RuleError>,
    draft: &Draft<'_>,
) -> String {
    let view = app.fakes.behavior(service);
    let now_ms = app.fakes.clock().now_ms();
    let n = service.name();
    let mut body = String::new();
    match problem {
        Some(RuleError::Invalid(err)) => {
            let _ = writeln!(
                body,
                "<p class=\"error\">Not saved: <code>{}</code>: {}</p>",
                escape(&err.field),
                escape(&err.error)
            );
        }
        Some(err) => {
            let _ = writeln!(
                body,
                "<p class=\"error\">Not saved: {}</p>",
                escape(&err.to_string())
            );
        }
        None => {}
    }
    let _ = writeln!(
        body,
        "<p>Rules are looked at in order for each <code>{}</code> or <code>search</code> call; the first that applies decides (a <code>slow</code> rule holds the call and lets the next decide). Adding, removing or moving a rule leaves the other rules' counters as they are.</p>",
        service.effect_name()
    );
    body.push_str("<h2>Rules in force</h2>\n<table id=\"rules\"><thead><tr><th>#</th><th>mode</th><th>in words</th><th>hits</th><th>calls left</th><th>spent</th><th>expires</th><th></th></tr></thead><tbody>\n");
    if view.faults.is_empty() {
        body.push_str(
            "<tr><td colspan=\"8\">No rules: every call is answered as it should be.</td></tr>\n",
        );
    }
    let last = view.faults.len().saturating_sub(1);
    for (i, rule) in view.faults.iter().enumerate() {
        let expires = rule
            .state
            .expires_at_ms
            .map_or_else(|| "never".to_string(), |at| relative(at, now_ms));
        let _ = write!(
            body,
            "<tr id=\"rule-{i}\"{}><td>{i}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            if rule.state.spent { " class=\"spent\"" } else { "" },
            rule.spec.mode.name(),
            escape(&rule_words::rule(service, rule)),
            rule.state.hits,
            escape(&rule_words::calls_left(&rule.spec, &rule.state)),
            if rule.state.spent { "yes" } else { "no" },
            escape(&expires),
        );
        let button = |path: &str, hidden: &str, label: &str| {
            format!(
                "<form method=\"post\" action=\"/{n}/behavior/rules/{i}/{path}\" class=\"inline\">{}{hidden}<button>{label}</button></form>",
                token_field(app, token)
            )
        };
        if i > 0 {
            body.push_str(&button(
                "move",
                &format!("<input type=\"hidden\" name=\"to\" value=\"{}\">", i - 1),
                "Move up",
            ));
        }
        if i < last {
            body.push_str(&button(
                "move",
                &format!("<input type=\"hidden\" name=\"to\" value=\"{}\">", i + 1),
                "Move down",
            ));
        }
        body.push_str(&button("remove", "", "Remove"));
        body.push_str("</td></tr>\n");
    }
    body.push_str("</tbody></table>\n");
    body.push_str(&add_rule_form(
        app,
        service,
        token,
        view.faults.len(),
        draft,
    ));
    let lag = draft
        .form
        .iter()
        .find(|(k, _)| k == "search_lag_ms")
        .map_or_else(|| view.search_lag_ms.to_string(), |(_, v)| v.clone());
    let _ = writeln!(
        body,
        "<h2>Search lag</h2>\n<form method=\"post\" action=\"/{n}/behavior/search_lag\">{}\
         <label for=\"search_lag_ms\">search_lag_ms</label><input id=\"search_lag_ms\" name=\"search_lag_ms\" value=\"{}\" inputmode=\"numeric\">\
         <p class=\"help\">a new record becomes visible to search only this many milliseconds after it is made, as with a provider's search index (0: at once); the rules are left as they are</p>\
         <button>Set the search lag</button></form>",
        token_field(app, token),
        escape(&lag),
    );
    let _ = writeln!(
        body,
        "<h2>Behave well again</h2>\n<form method=\"post\" action=\"/{n}/behavior\">{}<input type=\"hidden\" name=\"search_lag_ms\" value=\"0\"><button>Behave well again (clear every rule)</button></form>",
        token_field(app, token)
    );
    let _ = writeln!(
        body,
        "<p><a href=\"{}\">{} ledger</a></p>",
        escape(&with_token(&format!("/{n}/ui"), token)),
        service.title()
    );
    page(
        &format!("{} — make it behave badly", service.title()),
        &body,
        token,
    )
}

/// "Add a rule": links that show one mode's fields (`GET ?mode=`), then
/// the rule's fields named `mode_N`, `calls_N`, … (N: where the rule will
/// stand), each with what it means, and a Save button.
fn add_rule_form(
    app: &AppState,
    service: Service,
    token: Option<&str>,
    row: usize,
    draft: &Draft<'_>,
) -> String {
    let n = service.name();
    let chosen = draft.mode;
    let mut out = String::from("<h2>Add a rule</h2>\n");
    // Choosing a mode first shows only the fields it uses, each said for it.
    let links: Vec<String> = Mode::ALL
        .iter()
        .map(|mode| {
            let href = with_token(&format!("/{n}/behavior"), token);
            let sep = if href.contains('?') { '&' } else { '?' };
            format!(
                "<a href=\"{}\">{}</a>",
                escape(&format!("{href}{sep}mode={}", mode.name())),
                mode.name()
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "<p>Show only the fields a mode uses: {} · <a href=\"{}\">every field</a></p>",
        links.join(" · "),
        escape(&with_token(&format!("/{n}/behavior"), token)),
    );

    let _ = write!(
        out,
        "<form method=\"post\" action=\"/{n}/behavior/rules\"><fieldset><legend>Rule {row}</legend>{}",
        token_field(app, token)
    );
    let _ = write!(
        out,
        "<label for=\"mode_{row}\">mode</label><select id=\"mode_{row}\" name=\"mode_{row}\">"
    );
    if chosen.is_none() {
        out.push_str("<option value=\"\" selected>(choose one)</option>");
    }
    for mode in Mode::ALL {
        let _ = write!(
            out,
            "<option value=\"{m}\"{s}>{m}</option>",
            m = mode.name(),
            s = if chosen == Some(mode) {
                " selected"
            } else {
                ""
            }
        );
    }
    out.push_str("</select>\n");
    match chosen {
        Some(mode) => {
            let _ = writeln!(
                out,
                "<p class=\"help\">{}: {}</p>",
                mode.name(),
                escape(&rule_words::action(
                    service,
                    &crate::fault_rules::FaultSpec::new(mode)
                ))
            );
        }
        None => {
            out.push_str("<ul class=\"help\">");
            for mode in Mode::ALL {
                let _ = write!(
                    out,
                    "<li><code>{}</code>: {}</li>",
                    mode.name(),
                    escape(&rule_words::action(
                        service,
                        &crate::fault_rules::FaultSpec::new(mode)
                    ))
                );
            }
            out.push_str("</ul>\n");
        }
    }
    let mut unused = Vec::new();
    for field in Field::ALL {
        let Some(meaning) = rule_words::field(service, chosen, field) else {
            unused.push(field.name());
            continue;
        };
        let name = field.name();
        if field == Field::Operations {
            let _ = write!(out, "<label>{name}</label>");
            let ticked: Vec<&str> = draft.values(name).collect();
            for op in service.faultable_operations() {
                let checked = draft.form.is_empty() || ticked.contains(&op);
                let _ = write!(
                    out,
                    "<label class=\"check\"><input type=\"checkbox\" name=\"{name}_{row}\" value=\"{op}\"{}> {op}</label>",
                    if checked { " checked" } else { "" }
                );
            }
        } else {
            let _ = write!(
                out,
                "<label for=\"{name}_{row}\">{name}</label><input id=\"{name}_{row}\" name=\"{name}_{row}\" value=\"{}\" inputmode=\"decimal\">",
                escape(draft.value(name).unwrap_or(""))
            );
        }
        let modes = if chosen.is_some() {
            String::new()
        } else {
            format!("{}: ", rule_words::field_modes(field))
        };
        let _ = writeln!(out, "<p class=\"help\">{modes}{}</p>", escape(&meaning));
    }
    if let (Some(mode), false) = (chosen, unused.is_empty()) {
        let _ = writeln!(
            out,
            "<p class=\"help\">Not used by <code>{}</code>: {}.</p>",
            mode.name(),
            unused.join(", ")
        );
    }
    out.push_str("<button>Save</button></fieldset></form>\n");
    out
}
