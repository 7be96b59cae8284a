//! Templates in a target file: `{fakes}`, `{redis}`, `{port}`,
//! `{port.NAME}`, `{dir}`, `{run_dir}`, `{lab}`, `{n}` and `{quantity}`
//! inside its strings.
//!
//! A template is parsed once, when the file is read, so that an unknown
//! name, an unclosed brace or a variable used where it has no value (`{n}`
//! outside `[place_order]`, `{port}` outside a `[[process]]`, `{port.NAME}`
//! naming no process) is an error with the file's line and column before
//! anything starts — not an odd argument handed to the user's app halfway
//! through a run.

use std::fmt;

/// One string of the target file, split into literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(Var),
}

/// A variable a template may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// `{fakes}`: the fake services' base URL.
    Fakes,
    /// `{redis}`: the private Redis's `redis://` URL.
    Redis,
    /// `{port}`: the free port of the process the template belongs to.
    Port,
    /// `{port.NAME}`: process NAME's port.
    PortOf(String),
    /// `{dir}`: the target file's folder.
    Dir,
    /// `{run_dir}`: a fresh folder for this run (its logs are there too):
    /// for an app's SQLite file or anything else that must not outlive
    /// the run.
    RunDir,
    /// `{lab}`: the path of the running `lab` binary, for a target whose
    /// processes are the lab's own (`lab web`, `lab worker`).
    Lab,
    /// `{n}`: the order's number (1, 2, …), in `[place_order]` only.
    N,
    /// `{quantity}`: the order's quantity, in `[place_order]` only.
    Quantity,
}

/// Where a template is written, which decides the variables it may use.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The `[[process]]` it belongs to (`{port}` is that process's port).
    pub process: Option<&'a str>,
    /// In `[place_order]` (`{n}` and `{quantity}` have values there).
    pub place_order: bool,
    /// Every declared process, for `{port.NAME}`.
    pub processes: &'a [String],
}

/// The values the variables take in one run (and, for `n` and `quantity`,
/// for one order).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub fakes: &'a str,
    /// `None` when no template uses `{redis}` and none was started.
    pub redis: Option<&'a str>,
    /// Every process's port, by name.
    pub ports: &'a [(String, u16)],
    /// The process being started, for `{port}`.
    pub own: Option<&'a str>,
    pub dir: &'a str,
    pub run_dir: &'a str,
    pub lab: &'a str,
    pub n: Option<u32>,
    pub quantity: Option<u32>,
}

/// The names a template may use, for the error that lists them.
const NAMES: &str =
    "{fakes}, {redis}, {port}, {port.NAME}, {dir}, {run_dir}, {lab}, {n}, {quantity} (and {{ or }} for a brace)";

impl Template {
    /// Parses `source` as written in `scope`; the error names the template.
    pub fn parse(source: &str, scope: Scope<'_>) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "a lone `}}` in template {source:?}: write `}}}}` for a brace"
                    ))
                }
                '{' => {
                    let rest = &source[start + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "an unclosed `{{` in template {source:?}: close it, or write `{{{{` for a brace"
                        ));
                    };
                    let name = &rest[..end];
                    for _ in 0..=name.chars().count() {
                        chars.next();
                    }
                    let var = Var::parse(name, scope)
                        .map_err(|why| format!("in template {source:?}: {why}"))?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Var(var));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables it uses, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Literal(_) => None,
        })
    }

    /// Whether it uses `{redis}`: the run then starts a private Redis.
    pub fn uses_redis(&self) -> bool {
        self.vars().any(|v| *v == Var::Redis)
    }

    /// Whether it uses its own process's `{port}`.
    pub fn uses_port(&self) -> bool {
        self.vars().any(|v| *v == Var::Port)
    }

    /// The processes whose ports it reads through `{port.NAME}`.
    pub fn ports_read(&self) -> impl Iterator<Item = &str> {
        self.vars().filter_map(|v| match v {
            Var::PortOf(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The text with every variable replaced by its value.
    ///
    /// The file's checks make every variable have a value where it is
    /// written; should a caller still leave one without (no Redis started,
    /// no port for a name), the variable stays as written — `{redis}` in the
    /// app's own error says what was missing, where a panic or an empty
    /// string would not. [`Template::try_fill`] says it instead.
    pub fn fill(&self, vars: &Vars<'_>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Var(var) => match var.value(vars) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&var.to_string()),
                },
            }
        }
        out
    }

    /// Like [`Template::fill`], but a variable without a value is an error
    /// naming it and the template.
    pub fn try_fill(&self, vars: &Vars<'_>) -> Result<String, String> {
        if let Some(var) = self.vars().find(|v| v.value(vars).is_none()) {
            return Err(format!(
                "{var} has no value here (in template {:?})",
                self.source
            ));
        }
        Ok(self.fill(vars))
    }
}

impl Var {
    fn parse(name: &str, scope: Scope<'_>) -> Result<Var, String> {
        let var = match name {
            "fakes" => Var::Fakes,
            "redis" => Var::Redis,
            "dir" => Var::Dir,
            "run_dir" => Var::RunDir,
            "lab" => Var::Lab,
            "port" => Var::Port,
            "n" => Var::N,
            "quantity" => Var::Quantity,
            _ => match name.strip_prefix("port.") {
                Some(process) => Var::PortOf(process.to_string()),
                None => return Err(format!("unknown template `{{{name}}}`: use {NAMES}")),
            },
        };
        match &var {
            Var::Port if scope.process.is_none() => Err(
                "`{port}` is a process's own port, so it goes only in a `[[process]]`; elsewhere write `{port.NAME}`"
                    .into(),
            ),
            Var::PortOf(process) if !scope.processes.iter().any(|p| p == process) => {
                Err(format!(
                    "`{{port.{process}}}` names no `[[process]]` (declared: {})",
                    if scope.processes.is_empty() {
                        "none".to_string()
                    } else {
                        scope.processes.join(", ")
                    }
                ))
            }
            Var::N | Var::Quantity if !scope.place_order => Err(format!(
                "`{var}` is the order's, so it goes only in `[place_order]`"
            )),
            _ => Ok(var),
        }
    }

    fn value(&self, vars: &Vars<'_>) -> Option<String> {
        let port_of = |name: &str| {
            vars.ports
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, port)| port.to_string())
        };
        match self {
            Var::Fakes => Some(vars.fakes.to_string()),
            Var::Redis => vars.redis.map(str::to_string),
            Var::Port => vars.own.and_then(port_of),
            Var::PortOf(name) => port_of(name),
            Var::Dir => Some(vars.dir.to_string()),
            Var::RunDir => Some(vars.run_dir.to_string()),
            Var::Lab => Some(vars.lab.to_string()),
            Var::N => vars.n.map(|n| n.to_string()),
            Var::Quantity => vars.quantity.map(|q| q.to_string()),
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Fakes => write!(f, "{{fakes}}"),
            Var::Redis => write!(f, "{{redis}}"),
            Var::Port => write!(f, "{{port}}"),
            Var::PortOf(name) => write!(f, "{{port.{name}}}"),
            Var::Dir => write!(f, "{{dir}}"),
            Var::RunDir => write!(f, "{{run_dir}}"),
            Var::Lab => write!(f, "{{lab}}"),
            Var::N => write!(f, "{{n}}"),
            Var::Quantity => write!(f, "{{quantity}}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["web".into(), "worker".into()]
    }

    fn in_process<'a>(names: &'a [String], own: &'a str) -> Scope<'a> {
        Scope {
            process: Some(own),
            place_order: false,
            processes: names,
        }
    }

    fn in_place_order(names: &[String]) -> Scope<'_> {
        Scope {
            process: None,
            place_order: true,
            processes: names,
        }
    }

    fn vars<'a>(ports: &'a [(String, u16)]) -> Vars<'a> {
        Vars {
            fakes: "http://127.0.0.1:4000",
            redis: Some("redis://127.0.0.1:6400"),
            ports,
            own: Some("web"),
            dir: "/apps/shop",
            run_dir: "/tmp/run-1",
            lab: "/usr/bin/lab",
            n: Some(7),
            quantity: Some(2),
        }
    }

    #[test]
    fn every_variable_fills_and_braces_stay_literal() {
        let names = names();
        let ports = [("web".to_string(), 8001), ("worker".to_string(), 8002)];
        let t = Template::parse(
            "{fakes}|{redis}|{port}|{port.worker}|{dir}/app.rb|{{x}}",
            in_process(&names, "web"),
        )
        .unwrap();
        assert_eq!(
            t.fill(&vars(&ports)),
            "http://127.0.0.1:4000|redis://127.0.0.1:6400|8001|8002|/apps/shop/app.rb|{x}"
        );
        assert!(t.uses_redis() && t.uses_port());
        assert_eq!(t.ports_read().collect::<Vec<_>>(), ["worker"]);

        let t =
            Template::parse("buyer{n}@example.com x{quantity}", in_place_order(&names)).unwrap();
        assert_eq!(t.fill(&vars(&ports)), "buyer7@example.com x2");
        assert!(!t.uses_redis() && !t.uses_port());
        let plain = Template::parse("", in_place_order(&names)).unwrap();
        assert_eq!(plain.fill(&vars(&ports)), "");
        let t =
            Template::parse("{lab} web --data-dir {run_dir}", in_process(&names, "web")).unwrap();
        assert_eq!(
            t.fill(&vars(&ports)),
            "/usr/bin/lab web --data-dir /tmp/run-1"
        );
    }

    #[test]
    fn a_missing_value_stays_visible() {
        let names = names();
        let t = Template::parse("{redis}/0", in_process(&names, "web")).unwrap();
        let mut v = vars(&[]);
        v.redis = None;
        assert_eq!(t.fill(&v), "{redis}/0");
        let err = t.try_fill(&v).unwrap_err();
        assert!(err.contains("{redis} has no value"), "{err}");
    }

    #[test]
    fn bad_templates_are_refused_with_why() {
        let names = names();
        let cases = [
            (
                "{nope}",
                in_process(&names, "web"),
                "unknown template `{nope}`",
            ),
            ("{fakes", in_process(&names, "web"), "an unclosed `{`"),
            ("a}b", in_process(&names, "web"), "a lone `}`"),
            (
                "{port}",
                in_place_order(&names),
                "goes only in a `[[process]]`",
            ),
            (
                "{port.db}",
                in_process(&names, "web"),
                "`{port.db}` names no `[[process]]` (declared: web, worker)",
            ),
            ("{n}", in_process(&names, "web"), "`{n}` is the order's"),
            (
                "{quantity}",
                in_process(&names, "web"),
                "`{quantity}` is the order's",
            ),
        ];
        for (text, scope, want) in cases {
            let err = Template::parse(text, scope).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(
                err.contains(&format!("{text:?}")),
                "names the template: {err}"
            );
        }
    }
}
