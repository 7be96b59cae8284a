//! The target file: how to run the user's own app under the lab's
//! scenarios. Parsing is strict, as for scenario files — an unknown key, a
//! wrong type, a template where it has no value or an impossible
//! combination is an error naming the file, line and column — because a
//! typo here would otherwise surface as an app that never settles, far from
//! its cause.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::scenario::format::line_column;
use crate::scenario::ScenarioError;
use crate::target::place::IdKind;
use crate::target::template::{Scope, Template, Vars};

/// A parsed, checked target file.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The file's folder, absolute: `{dir}`, and every process's cwd.
    pub dir: PathBuf,
    /// What each order must get (default all three, in this order).
    pub effects: Vec<Effect>,
    /// `[env]`, in file order, for every process and command.
    pub env: Vec<(String, Template)>,
    /// `[[process]]`, in file order (the order they start in).
    pub processes: Vec<ProcessSpec>,
    pub place_order: PlaceOrder,
    /// Where the app's id for a placed order is (`id` in `[place_order]`).
    pub id: IdKind,
    pub settle: Settle,
    pub sidekiq: Option<Sidekiq>,
    pub matches: Matches,
}

/// An effect an order must get, and the fake service that performs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Charge,
    Email,
    Fulfillment,
}

impl Effect {
    /// Every effect, in the order an order gets them.
    pub const ALL: [Effect; 3] = [Effect::Charge, Effect::Email, Effect::Fulfillment];

    /// The fake service that performs it.
    pub fn service(self) -> fake_services::Service {
        match self {
            Effect::Charge => fake_services::Service::Payments,
            Effect::Email => fake_services::Service::Email,
            Effect::Fulfillment => fake_services::Service::Fulfillment,
        }
    }

    /// As the file writes it.
    pub fn name(self) -> &'static str {
        match self {
            Effect::Charge => "charge",
            Effect::Email => "email",
            Effect::Fulfillment => "fulfillment",
        }
    }
}

/// One `[[process]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    /// Unique, `[A-Za-z0-9_-]+` (it names the log file and `{port.NAME}`).
    pub name: String,
    /// argv, never empty, run without a shell.
    pub command: Vec<Template>,
    pub role: Option<Role>,
    /// A URL polled until it answers (any status), 30 s at most.
    pub ready: Option<Template>,
    /// The process's own `env`, after `[env]` (a key here wins).
    pub env: Vec<(String, Template)>,
}

/// What a process is to the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the app's jobs: a worker fault kills and restarts it.
    Worker,
}

/// How the lab places order number `{n}`.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceOrder {
    /// argv, run without a shell in the file's folder.
    Command(Vec<Template>),
    Http(Http),
}

/// `http = { … }` in `[place_order]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    pub method: Method,
    pub url: Template,
    /// Sent as `application/x-www-form-urlencoded`, in file order.
    pub form: Vec<(String, Template)>,
    /// Sent as JSON; never together with `form`.
    pub json: Option<JsonTemplate>,
    pub headers: Vec<(String, Template)>,
}

/// The HTTP methods an order can be placed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    fn parse(text: &str) -> Option<Method> {
        Some(match text.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => return None,
        })
    }
}

/// A JSON body whose strings are templates. (Tables come out with their
/// keys sorted: JSON objects are unordered.)
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Bool(bool),
    Number(serde_json::Number),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// The body for one order.
    pub fn fill(&self, vars: &Vars<'_>) -> serde_json::Value {
        match self {
            JsonTemplate::Bool(b) => serde_json::Value::Bool(*b),
            JsonTemplate::Number(n) => serde_json::Value::Number(n.clone()),
            JsonTemplate::String(t) => serde_json::Value::String(t.fill(vars)),
            JsonTemplate::Array(items) => {
                serde_json::Value::Array(items.iter().map(|i| i.fill(vars)).collect())
            }
            JsonTemplate::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.fill(vars)))
                    .collect(),
            ),
        }
    }

    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonTemplate::String(t) => out.push(t),
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.templates(out)),
            JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.templates(out)),
            JsonTemplate::Bool(_) | JsonTemplate::Number(_) => {}
        }
    }
}

/// `[settle]`: settled = no provider call for `quiet_ms` (and, with
/// `[sidekiq]`, nothing left to run); a run not settled after `timeout_s`
/// fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    pub quiet_ms: u64,
    pub timeout_s: u64,
}

/// `[sidekiq]`: the app's jobs run on Sidekiq.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidekiq {
    /// Its Redis (default `"{redis}"`, the lab's private one).
    pub redis: Template,
    /// Move each retry to its queue at once, as Sidekiq's "Retry now" does.
    pub fast_retries: bool,
    /// A key prefix (`namespace:`) the app's Sidekiq uses, if any.
    pub namespace: Option<String>,
}

/// `[match]`: where a ledger record names its order, as JSON pointers into
/// the request body (`metadata.order_id` is kept as `/metadata/order_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matches {
    pub charge: String,
    pub email: String,
    pub fulfillment: String,
}

impl Matches {
    /// The pointer for `effect`'s ledger.
    pub fn for_effect(&self, effect: Effect) -> &str {
        match effect {
            Effect::Charge => &self.charge,
            Effect::Email => &self.email,
            Effect::Fulfillment => &self.fulfillment,
        }
    }
}

impl Target {
    /// Every template in the file.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out: Vec<&Template> = self.env.iter().map(|(_, t)| t).collect();
        for p in &self.processes {
            out.extend(&p.command);
            out.extend(&p.ready);
            out.extend(p.env.iter().map(|(_, t)| t));
        }
        match &self.place_order {
            PlaceOrder::Command(argv) => out.extend(argv),
            PlaceOrder::Http(http) => {
                out.push(&http.url);
                out.extend(http.form.iter().map(|(_, t)| t));
                out.extend(http.headers.iter().map(|(_, t)| t));
                if let Some(json) = &http.json {
                    json.templates(&mut out);
                }
            }
        }
        if let Some(sidekiq) = &self.sidekiq {
            out.push(&sidekiq.redis);
        }
        out
    }

    /// Whether a run needs a private Redis (some template uses `{redis}`).
    pub fn uses_redis(&self) -> bool {
        self.templates().iter().any(|t| t.uses_redis())
    }

    /// The `role = "worker"` processes, which a worker fault kills.
    pub fn workers(&self) -> impl Iterator<Item = &ProcessSpec> {
        self.processes
            .iter()
            .filter(|p| p.role == Some(Role::Worker))
    }

    /// The file's folder as `{dir}` writes it.
    pub fn dir_text(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Reads and checks a target file.
pub fn load(path: &Path) -> Result<Target, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ScenarioError::at(path, None, format!("cannot read it: {err}")))?;
    parse(&text, path)
}

/// Parses and checks target text; `path` names it in errors and gives
/// `dir` (its folder, made absolute against the current directory).
pub fn parse(text: &str, path: &Path) -> Result<Target, ScenarioError> {
    let at = |span: Option<Range<usize>>, message: String| {
        ScenarioError::at(path, span.map(|s| line_column(text, s.start)), message)
    };
    let raw: RawTarget =
        toml::from_str(text).map_err(|err| at(err.span(), err.message().to_string()))?;
    let fail = |span: Range<usize>, message: String| at(Some(span), message);

    if raw.name.get_ref().trim().is_empty() {
        return Err(fail(raw.name.span(), "`name` must not be empty".into()));
    }

    let effects = match &raw.effects {
        None => Effect::ALL.to_vec(),
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(fail(
                    list.span(),
                    "`effects` must name at least one of \"charge\", \"email\", \"fulfillment\""
                        .into(),
                ));
            }
            let mut effects = Vec::new();
            for effect in list.get_ref() {
                if effects.contains(effect.get_ref()) {
                    return Err(fail(
                        effect.span(),
                        format!("`effects` names {:?} twice", effect.get_ref().name()),
                    ));
                }
                effects.push(*effect.get_ref());
            }
            effects
        }
    };

    // Names first: `{port.NAME}` may name a process declared further down.
    let mut names: Vec<String> = Vec::new();
    for process in &raw.process {
        let name = process.name.get_ref();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(fail(
                process.name.span(),
                format!(
                    "process name {name:?} must be letters, digits, `_` or `-` (and not empty)"
                ),
            ));
        }
        if names.contains(name) {
            return Err(fail(
                process.name.span(),
                format!("two processes are named {name:?}: names must be unique"),
            ));
        }
        names.push(name.clone());
    }
    let names = &names[..];
    fn scope<'a>(names: &'a [String], process: Option<&'a str>, place_order: bool) -> Scope<'a> {
        Scope {
            process,
            place_order,
            processes: names,
        }
    }
    let template = |s: &Spanned<String>, scope: Scope<'_>| {
        Template::parse(s.get_ref(), scope).map_err(|why| fail(s.span(), why))
    };
    let env_list = |table: &BTreeMap<String, Spanned<String>>, scope: Scope<'_>| {
        in_file_order(table)
            .into_iter()
            .map(|(key, value)| {
                if key.is_empty() || key.contains('=') || key.contains('\0') {
                    return Err(fail(
                        value.span(),
                        format!("environment variable name {key:?} must be non-empty, without `=`"),
                    ));
                }
                Ok((key.clone(), template(value, scope)?))
            })
            .collect::<Result<Vec<_>, ScenarioError>>()
    };
    let argv = |command: &Spanned<Vec<Spanned<String>>>, scope: Scope<'_>, what: &str| {
        if command.get_ref().is_empty() {
            return Err(fail(
                command.span(),
                format!("{what} must not be empty: it is the program and its arguments"),
            ));
        }
        command
            .get_ref()
            .iter()
            .map(|arg| template(arg, scope))
            .collect::<Result<Vec<_>, ScenarioError>>()
    };

    let env = match &raw.env {
        Some(table) => env_list(table, scope(names, None, false))?,
        None => Vec::new(),
    };

    let mut processes = Vec::new();
    for process in &raw.process {
        let own = scope(names, Some(process.name.get_ref()), false);
        processes.push(ProcessSpec {
            name: process.name.get_ref().clone(),
            command: argv(&process.command, own, "a process's `command`")?,
            role: process.role,
            ready: process
                .ready
                .as_ref()
                .map(|r| template(r, own))
                .transpose()?,
            env: match &process.env {
                Some(table) => env_list(table, own)?,
                None => Vec::new(),
            },
        });
    }

    let raw_place = raw.place_order.get_ref();
    let order_scope = scope(names, None, true);
    let place_order = match (&raw_place.command, &raw_place.http) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(fail(
                raw.place_order.span(),
                "`[place_order]` takes exactly one of `command` or `http`".into(),
            ))
        }
        (Some(command), None) => {
            PlaceOrder::Command(argv(command, order_scope, "`[place_order]`'s `command`")?)
        }
        (None, Some(http)) => {
            let h = http.get_ref();
            let method = match &h.method {
                None => Method::Post,
                Some(m) => Method::parse(m.get_ref()).ok_or_else(|| {
                    fail(
                        m.span(),
                        format!(
                            "unknown `method` {:?}: use GET, POST, PUT, PATCH or DELETE",
                            m.get_ref()
                        ),
                    )
                })?,
            };
            if h.form.is_some() && h.json.is_some() {
                return Err(fail(
                    http.span(),
                    "an `http` request sends `form` or `json`, not both".into(),
                ));
            }
            let json = match &h.json {
                None => None,
                Some(value) => Some(
                    json_template(value.get_ref(), order_scope)
                        .map_err(|why| fail(value.span(), why))?,
                ),
            };
            PlaceOrder::Http(Http {
                method,
                url: template(&h.url, order_scope)?,
                form: pairs(&h.form, |v| template(v, order_scope))?,
                json,
                headers: pairs(&h.headers, |v| template(v, order_scope))?,
            })
        }
    };
    let id = match &raw_place.id {
        None => IdKind::N,
        Some(id) => {
            let kind = IdKind::parse(id.get_ref()).map_err(|why| fail(id.span(), why))?;
            let fits = matches!(
                (&kind, &place_order),
                (IdKind::N, _)
                    | (IdKind::Stdout, PlaceOrder::Command(_))
                    | (IdKind::Location | IdKind::Json(_), PlaceOrder::Http(_))
            );
            if !fits {
                let why = match kind {
                    IdKind::Stdout => "`id = \"stdout\"` reads a command's output: it needs `command`, not `http`",
                    _ => "`id = \"location\"` and `id = \"json:…\"` read an HTTP answer: they need `http`, not `command`",
                };
                return Err(fail(id.span(), why.into()));
            }
            kind
        }
    };

    let settle = {
        let s = raw.settle.as_ref();
        let quiet = s.and_then(|s| s.quiet_ms.as_ref());
        let timeout = s.and_then(|s| s.timeout_s.as_ref());
        for (key, value) in [("quiet_ms", quiet), ("timeout_s", timeout)] {
            if let Some(v) = value.filter(|v| *v.get_ref() == 0) {
                return Err(fail(v.span(), format!("`{key}` must be more than 0")));
            }
        }
        let settle = Settle {
            quiet_ms: quiet.map_or(1000, |q| *q.get_ref()),
            timeout_s: timeout.map_or(60, |t| *t.get_ref()),
        };
        if settle.quiet_ms >= settle.timeout_s.saturating_mul(1000) {
            let span = quiet.or(timeout).map(Spanned::span);
            return Err(at(
                span,
                format!(
                    "`quiet_ms` ({}) must be shorter than `timeout_s` ({} s), or no run could settle",
                    settle.quiet_ms, settle.timeout_s
                ),
            ));
        }
        settle
    };

    let sidekiq = match &raw.sidekiq {
        None => None,
        Some(s) => {
            let r = s.get_ref();
            let redis = match &r.redis {
                Some(redis) => template(redis, scope(names, None, false))?,
                None => Template::parse("{redis}", scope(names, None, false))
                    .map_err(|why| fail(s.span(), why))?,
            };
            if let Some(ns) = r.namespace.as_ref().filter(|n| n.get_ref().is_empty()) {
                return Err(fail(
                    ns.span(),
                    "`namespace` must not be empty (leave it out for none)".into(),
                ));
            }
            Some(Sidekiq {
                redis,
                fast_retries: r.fast_retries.unwrap_or(true),
                namespace: r.namespace.as_ref().map(|n| n.get_ref().clone()),
            })
        }
    };

    let m = raw.matches.as_ref();
    let pointer = |given: Option<&Spanned<String>>, default: &str| {
        match given {
        None => Ok(to_pointer(default).expect("the defaults are valid paths")),
        Some(path) => to_pointer(path.get_ref()).ok_or_else(|| {
            fail(
                path.span(),
                format!(
                    "`{}` is not a path into the request body: write dotted names, e.g. \"metadata.order_id\"",
                    path.get_ref()
                ),
            )
        }),
    }
    };
    let matches = Matches {
        charge: pointer(m.and_then(|m| m.charge.as_ref()), "metadata.order_id")?,
        email: pointer(m.and_then(|m| m.email.as_ref()), "template_data.order_id")?,
        fulfillment: pointer(m.and_then(|m| m.fulfillment.as_ref()), "metadata.order_id")?,
    };

    Ok(Target {
        name: raw.name.into_inner(),
        path: path.to_path_buf(),
        dir: absolute_dir(path),
        effects,
        env,
        processes,
        place_order,
        id,
        settle,
        sidekiq,
        matches,
    })
}

/// A table's entries in the order the file wrote them (the TOML reader
/// hands them over sorted by key; each value's span says where it was).
fn in_file_order(table: &BTreeMap<String, Spanned<String>>) -> Vec<(&String, &Spanned<String>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(_, v)| v.span().start);
    entries
}

fn pairs(
    table: &Option<BTreeMap<String, Spanned<String>>>,
    template: impl Fn(&Spanned<String>) -> Result<Template, ScenarioError>,
) -> Result<Vec<(String, Template)>, ScenarioError> {
    match table {
        None => Ok(Vec::new()),
        Some(table) => in_file_order(table)
            .into_iter()
            .map(|(k, v)| Ok((k.clone(), template(v)?)))
            .collect(),
    }
}

/// A dotted path (`metadata.order_id`) as a JSON pointer
/// (`/metadata/order_id`); `None` for an empty path or segment.
fn to_pointer(path: &str) -> Option<String> {
    let mut pointer = String::new();
    for segment in path.split('.') {
        if segment.is_empty() {
            return None;
        }
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    Some(pointer)
}

fn json_template(value: &toml::Value, scope: Scope<'_>) -> Result<JsonTemplate, String> {
    Ok(match value {
        toml::Value::String(s) => JsonTemplate::String(Template::parse(s, scope)?),
        toml::Value::Integer(i) => JsonTemplate::Number((*i).into()),
        toml::Value::Float(f) => JsonTemplate::Number(
            serde_json::Number::from_f64(*f)
                .ok_or_else(|| format!("{f} has no JSON form in `json`"))?,
        ),
        toml::Value::Boolean(b) => JsonTemplate::Bool(*b),
        toml::Value::Datetime(d) => {
            return Err(format!(
                "a date ({d}) has no JSON form in `json`: quote it as a string"
            ))
        }
        toml::Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .map(|i| json_template(i, scope))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => JsonTemplate::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_template(v, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// The file's folder, absolute (a bare file name is in the current one).
fn absolute_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: Spanned<String>,
    #[serde(default)]
    effects: Option<Spanned<Vec<Spanned<Effect>>>>,
    #[serde(default)]
    env: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    process: Vec<RawProcess>,
    place_order: Spanned<RawPlaceOrder>,
    #[serde(default)]
    settle: Option<RawSettle>,
    #[serde(default)]
    sidekiq: Option<Spanned<RawSidekiq>>,
    #[serde(default, rename = "match")]
    matches: Option<RawMatches>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    name: Spanned<String>,
    command: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    ready: Option<Spanned<String>>,
    #[serde(default)]
    env: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaceOrder {
    #[serde(default)]
    command: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    http: Option<Spanned<RawHttp>>,
    #[serde(default)]
    id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    method: Option<Spanned<String>>,
    url: Spanned<String>,
    #[serde(default)]
    form: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    json: Option<Spanned<toml::Value>>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettle {
    #[serde(default)]
    quiet_ms: Option<Spanned<u64>>,
    #[serde(default)]
    timeout_s: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSidekiq {
    #[serde(default)]
    redis: Option<Spanned<String>>,
    #[serde(default)]
    fast_retries: Option<bool>,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatches {
    #[serde(default)]
    charge: Option<Spanned<String>>,
    #[serde(default)]
    email: Option<Spanned<String>>,
    #[serde(default)]
    fulfillment: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format's own example, as a user would write it.
    const EXAMPLE: &str = r#"name = "shop (Sinatra + Sidekiq)"
effects = ["charge", "email", "fulfillment"]

[env]
FAKE_API_URL = "{fakes}"
REDIS_URL = "{redis}"

[[process]]
name = "worker"
command = ["sidekiq", "-r", "{dir}/app.rb", "-c", "5"]
role = "worker"

[[process]]
name = "web"
command = ["puma", "-b", "tcp://127.0.0.1:{port}", "{dir}/config.ru"]
ready = "http://127.0.0.1:{port}/"

[place_order]
http = { method = "POST", url = "http://127.0.0.1:{port.web}/orders", form = { "order[quantity]" = "1", "order[email]" = "buyer{n}@example.com" } }
# command = ["ruby", "-r", "{dir}/app.rb", "-e", "CompleteOrderJob.perform_async({n})"]
id = "location"

[settle]
quiet_ms = 1000
timeout_s = 60

[sidekiq]
redis = "{redis}"
fast_retries = true

[match]
charge = "metadata.order_id"
email = "template_data.order_id"
fulfillment = "metadata.order_id"
"#;

    fn parse_str(text: &str) -> Result<Target, ScenarioError> {
        parse(text, Path::new("/apps/shop/target.toml"))
    }

    /// The example with `from` replaced by `to` (which must be there).
    fn edited(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        EXAMPLE.replacen(from, to, 1)
    }

    fn err(text: &str) -> ScenarioError {
        parse_str(text).expect_err("must be refused")
    }

    fn vars<'a>(ports: &'a [(String, u16)], own: Option<&'a str>, n: Option<u32>) -> Vars<'a> {
        Vars {
            fakes: "http://127.0.0.1:4000",
            redis: Some("redis://127.0.0.1:6390"),
            ports,
            own,
            dir: "/apps/shop",
            n,
            quantity: Some(1),
            ..Vars::default()
        }
    }

    #[test]
    fn the_formats_example_parses_to_what_it_says() {
        let t = parse_str(EXAMPLE).unwrap();
        assert_eq!(t.name, "shop (Sinatra + Sidekiq)");
        assert_eq!(t.dir, PathBuf::from("/apps/shop"));
        assert_eq!(t.effects, Effect::ALL);
        let env: Vec<_> = t
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.source()))
            .collect();
        assert_eq!(env, [("FAKE_API_URL", "{fakes}"), ("REDIS_URL", "{redis}")]);
        assert_eq!(
            t.processes
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["worker", "web"]
        );
        assert_eq!(t.processes[0].role, Some(Role::Worker));
        assert_eq!(t.processes[1].role, None);
        assert_eq!(t.workers().count(), 1);
        assert!(t.processes[0].ready.is_none());
        assert!(t.processes[1].command[2].uses_port());
        let PlaceOrder::Http(http) = &t.place_order else {
            panic!("an http place_order: {:?}", t.place_order)
        };
        assert_eq!(http.method, Method::Post);
        assert_eq!(
            http.form
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["order[quantity]", "order[email]"],
            "in file order"
        );
        assert!(http.json.is_none() && http.headers.is_empty());
        assert_eq!(t.id, IdKind::Location);
        assert_eq!(
            t.settle,
            Settle {
                quiet_ms: 1000,
                timeout_s: 60
            }
        );
        let sidekiq = t.sidekiq.as_ref().unwrap();
        assert!(sidekiq.fast_retries && sidekiq.namespace.is_none());
        assert_eq!(
            t.matches,
            Matches {
                charge: "/metadata/order_id".into(),
                email: "/template_data/order_id".into(),
                fulfillment: "/metadata/order_id".into(),
            }
        );
        assert!(t.uses_redis());
    }

    #[test]
    fn its_templates_fill() {
        let t = parse_str(EXAMPLE).unwrap();
        let ports = [("worker".to_string(), 7001), ("web".to_string(), 7002)];
        let web = &t.processes[1];
        let argv: Vec<String> = web
            .command
            .iter()
            .map(|a| a.fill(&vars(&ports, Some("web"), None)))
            .collect();
        assert_eq!(
            argv,
            ["puma", "-b", "tcp://127.0.0.1:7002", "/apps/shop/config.ru"]
        );
        let worker = &t.processes[0];
        assert_eq!(
            worker.command[2].fill(&vars(&ports, Some("worker"), None)),
            "/apps/shop/app.rb"
        );
        let PlaceOrder::Http(http) = &t.place_order else {
            unreachable!()
        };
        let order = vars(&ports, None, Some(3));
        assert_eq!(http.url.fill(&order), "http://127.0.0.1:7002/orders");
        assert_eq!(http.form[1].1.fill(&order), "buyer3@example.com");
        assert_eq!(t.env[1].1.fill(&order), "redis://127.0.0.1:6390");
    }

    #[test]
    fn defaults_and_additions() {
        let text = r#"
name = "cli app"
[[process]]
name = "jobs"
command = ["bin/jobs"]
role = "worker"
env = { QUEUE = "default", PORT = "{port}" }
[place_order]
command = ["bin/order", "{n}", "{quantity}"]
id = "stdout"
[sidekiq]
namespace = "shop"
fast_retries = false
"#;
        let t = parse_str(text).unwrap();
        assert_eq!(t.effects, Effect::ALL);
        assert!(t.env.is_empty());
        let env: Vec<_> = t.processes[0]
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.source()))
            .collect();
        assert_eq!(
            env,
            [("QUEUE", "default"), ("PORT", "{port}")],
            "in file order"
        );
        assert!(matches!(&t.place_order, PlaceOrder::Command(argv) if argv.len() == 3));
        assert_eq!(t.id, IdKind::Stdout);
        assert_eq!(
            t.settle,
            Settle {
                quiet_ms: 1000,
                timeout_s: 60
            }
        );
        let sidekiq = t.sidekiq.as_ref().unwrap();
        assert_eq!(
            sidekiq.redis.source(),
            "{redis}",
            "the lab's own Redis by default"
        );
        assert!(!sidekiq.fast_retries);
        assert_eq!(sidekiq.namespace.as_deref(), Some("shop"));
        assert!(t.uses_redis(), "through [sidekiq]'s default");
        assert_eq!(
            t.matches.for_effect(Effect::Email),
            "/template_data/order_id"
        );

        let bare = "name = \"x\"\n[place_order]\ncommand = [\"true\"]\n";
        let t = parse_str(bare).unwrap();
        assert!(t.processes.is_empty() && t.sidekiq.is_none());
        assert!(!t.uses_redis());
        assert_eq!(t.id, IdKind::N);

        let json = "name = \"x\"\neffects = [\"email\"]\n[place_order]\nhttp = { url = \"{fakes}/o\", method = \"put\", json = { order = { n = \"{n}\", qty = 2, gift = false, tags = [\"a{n}\"] } }, headers = { Authorization = \"Bearer t\" } }\nid = \"json:order.id\"\n";
        let t = parse_str(json).unwrap();
        assert_eq!(t.effects, [Effect::Email]);
        assert_eq!(t.id, IdKind::Json("/order/id".into()));
        let PlaceOrder::Http(http) = &t.place_order else {
            unreachable!()
        };
        assert_eq!(http.method, Method::Put);
        assert_eq!(http.headers[0].0, "Authorization");
        let body = http.json.as_ref().unwrap().fill(&vars(&[], None, Some(4)));
        assert_eq!(
            body,
            serde_json::json!({ "order": { "gift": false, "n": "4", "qty": 2, "tags": ["a4"] } })
        );
    }

    #[test]
    fn a_relative_file_has_an_absolute_dir() {
        let t = parse(
            "name = \"x\"\n[place_order]\ncommand = [\"true\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(t.dir.is_absolute(), "{}", t.dir.display());
        assert_eq!(t.dir, std::env::current_dir().unwrap());
    }

    /// `(line, column)` of an error, and that it prints as `file:line:col:`.
    fn where_(e: &ScenarioError) -> (usize, usize) {
        let (line, column) = (e.line.expect("a line"), e.column.expect("a column"));
        assert!(
            e.to_string()
                .starts_with(&format!("/apps/shop/target.toml:{line}:{column}: ")),
            "{e}"
        );
        (line, column)
    }

    #[test]
    fn an_unknown_key_names_its_line_and_column() {
        let e = err(&edited(
            "role = \"worker\"",
            "role = \"worker\"\nrestart = true",
        ));
        assert_eq!(where_(&e), (12, 1), "{e}");
        assert!(e.message.contains("restart"), "{e}");

        let e = err(&edited("[settle]", "[settle]\nquiet = 5"));
        assert_eq!(where_(&e).0, 24, "{e}");

        let e = err(&edited("url = ", "verb = \"GET\", url = "));
        assert_eq!(where_(&e).0, 19, "{e}");
        assert!(e.message.contains("verb"), "{e}");

        let e = err(&edited("role = \"worker\"", "role = \"boss\""));
        assert_eq!(where_(&e).0, 11, "{e}");
    }

    #[test]
    fn a_template_error_names_the_string_that_holds_it() {
        let e = err(&edited("\"{dir}/app.rb\"", "\"{folder}/app.rb\""));
        assert_eq!(where_(&e), (10, 29), "{e}");
        assert!(e.message.contains("unknown template `{folder}`"), "{e}");
        assert!(e.message.contains("\"{folder}/app.rb\""), "{e}");

        let e = err(&edited("REDIS_URL = \"{redis}\"", "REDIS_URL = \"{redis\""));
        assert_eq!(where_(&e), (6, 13), "{e}");
        assert!(e.message.contains("unclosed"), "{e}");
    }

    #[test]
    fn port_is_a_processs_own() {
        let e = err(&edited(
            "FAKE_API_URL = \"{fakes}\"",
            "FAKE_API_URL = \"{port}\"",
        ));
        assert_eq!(where_(&e), (5, 16), "{e}");
        assert!(e.message.contains("goes only in a `[[process]]`"), "{e}");

        let e = err(&edited("{port.web}/orders", "{port}/orders"));
        assert_eq!(where_(&e).0, 19, "{e}");

        // `{port.NAME}` may name a process declared further down.
        let text = edited("\"{dir}/app.rb\"", "\"{port.web}\"");
        assert!(parse_str(&text).is_ok());
        let e = err(&edited("{port.web}/orders", "{port.nope}/orders"));
        assert_eq!(where_(&e).0, 19, "{e}");
        assert!(
            e.message
                .contains("`{port.nope}` names no `[[process]]` (declared: worker, web)"),
            "{e}"
        );
    }

    #[test]
    fn n_is_the_orders_only() {
        let e = err(&edited("\"-c\", \"5\"", "\"-c\", \"{n}\""));
        assert_eq!(where_(&e), (10, 51), "{e}");
        assert!(e.message.contains("`{n}` is the order's"), "{e}");
        let e = err(&edited(
            "REDIS_URL = \"{redis}\"",
            "REDIS_URL = \"{quantity}\"",
        ));
        assert_eq!(where_(&e).0, 6, "{e}");
    }

    #[test]
    fn process_names_are_unique_and_plain() {
        let e = err(&edited("name = \"web\"", "name = \"worker\""));
        assert_eq!(where_(&e), (14, 8), "{e}");
        assert!(
            e.message.contains("two processes are named \"worker\""),
            "{e}"
        );
        let e = err(&edited("name = \"web\"", "name = \"web server\""));
        assert_eq!(where_(&e).0, 14, "{e}");
        let e = err(&edited("name = \"web\"", "name = \"\""));
        assert!(e.message.contains("not empty"), "{e}");
        let e = err(&edited(
            "command = [\"sidekiq\", \"-r\", \"{dir}/app.rb\", \"-c\", \"5\"]",
            "command = []",
        ));
        assert_eq!(where_(&e), (10, 11), "{e}");
        assert!(e.message.contains("must not be empty"), "{e}");
    }

    #[test]
    fn place_order_is_a_command_or_a_request() {
        let both = edited(
            "id = \"location\"",
            "command = [\"true\"]\nid = \"location\"",
        );
        let e = err(&both);
        assert_eq!(where_(&e).0, 18, "the [place_order] table: {e}");
        assert!(
            e.message.contains("exactly one of `command` or `http`"),
            "{e}"
        );
        let neither = "name = \"x\"\n[place_order]\nid = \"n\"\n";
        assert!(err(neither).message.contains("exactly one of"));

        let e = err(&edited("id = \"location\"", "id = \"stdout\""));
        assert_eq!(where_(&e), (21, 6), "{e}");
        assert!(e.message.contains("needs `command`, not `http`"), "{e}");
        let cmd = "name = \"x\"\n[place_order]\ncommand = [\"true\"]\nid = \"json:id\"\n";
        let e = err(cmd);
        assert_eq!(where_(&e), (4, 6), "{e}");
        assert!(e.message.contains("need `http`"), "{e}");
        let e = err(&edited("id = \"location\"", "id = \"header\""));
        assert!(e.message.contains("unknown `id`"), "{e}");

        let e = err(&edited("method = \"POST\"", "method = \"FETCH\""));
        assert_eq!(where_(&e), (19, 19), "{e}");
        assert!(e.message.contains("unknown `method` \"FETCH\""), "{e}");

        let e = err(&edited("form = {", "json = { a = 1 }, form = {"));
        assert!(e.message.contains("`form` or `json`, not both"), "{e}");
        assert_eq!(where_(&e).0, 19, "{e}");
    }

    #[test]
    fn effects_settle_and_match_are_checked() {
        let e = err(&edited(
            "effects = [\"charge\", \"email\", \"fulfillment\"]",
            "effects = []",
        ));
        assert_eq!(where_(&e), (2, 11), "{e}");
        assert!(e.message.contains("at least one"), "{e}");
        let e = err(&edited(
            "effects = [\"charge\", \"email\", \"fulfillment\"]",
            "effects = [\"email\", \"email\"]",
        ));
        assert_eq!(where_(&e), (2, 21), "{e}");
        assert!(e.message.contains("twice"), "{e}");
        let e = err(&edited("\"fulfillment\"]", "\"refund\"]"));
        assert_eq!(where_(&e).0, 2, "{e}");

        let e = err(&edited("quiet_ms = 1000", "quiet_ms = 0"));
        assert_eq!(where_(&e), (24, 12), "{e}");
        assert!(e.message.contains("`quiet_ms` must be more than 0"), "{e}");
        let e = err(&edited("timeout_s = 60", "timeout_s = 0"));
        assert_eq!(where_(&e), (25, 13), "{e}");
        let e = err(&edited("quiet_ms = 1000", "quiet_ms = 60000"));
        assert!(e.message.contains("shorter than `timeout_s`"), "{e}");

        let e = err(&edited(
            "charge = \"metadata.order_id\"",
            "charge = \"metadata..order_id\"",
        ));
        assert_eq!(where_(&e), (32, 10), "{e}");
        assert!(e.message.contains("not a path"), "{e}");
        let e = err(&edited("[match]", "[match]\nrefund = \"x\""));
        assert_eq!(where_(&e).0, 32, "{e}");
    }

    #[test]
    fn an_unreadable_file_says_so() {
        let e = load(Path::new("/nonexistent/target.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/target.toml: cannot read it:"),
            "{e}"
        );
    }
}
