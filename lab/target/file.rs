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
            let fits = match (&kind, &place_order) {
                (IdKind::N, _) => true,
                (IdKind::Stdout, PlaceOrder::Command(_)) => true,
                (IdKind::Location | IdKind::Json(_), PlaceOrder::Http(_)) => true,
                _ => false,
            };
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
