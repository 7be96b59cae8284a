//! Cross-site safety for every front door (the fake services' and the web
//! lab's): binding 127.0.0.1 keeps other machines out, but not the web pages
//! the developer's own browser opens. Two checks close that:
//!
//! - **No state change from another origin (CSRF).** Any page can make the
//!   browser POST a form to `http://127.0.0.1:3001/reset`; the browser says
//!   where the request came from (`Origin`, `Sec-Fetch-Site`), so a request
//!   that is not GET, HEAD or OPTIONS is refused when either names another
//!   origin. Scripts, `curl` and HTTP clients send neither, and pass.
//! - **No answer to a name that is not ours (DNS rebinding).** A page on
//!   `evil.example` can point that name at 127.0.0.1 and then read our
//!   answers as its own origin; its requests still say `Host: evil.example`.
//!   Every request, GET too, is refused unless its `Host` is an IP address,
//!   `localhost` (or `*.localhost`, which never leaves the machine) or a name
//!   the server was started with ([`AllowedHosts`], `--allowed-host`).
//!
//! [`Guard`] is the middleware; each server renders a [`Refusal`] in its own
//! format (JSON for the fake services, a page or JSON for the web lab).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

/// The host names, besides IP addresses and `localhost`, that a server
/// answers to: the names other machines or containers reach it by (`fakes`
/// in docker compose).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Arc<[AllowedHost]>);

impl FromIterator<AllowedHost> for AllowedHosts {
    fn from_iter<I: IntoIterator<Item = AllowedHost>>(names: I) -> Self {
        Self(names.into_iter().collect())
    }
}

impl AllowedHosts {
    /// Whether a request may name `host` in its `Host` header: an IP
    /// address cannot be rebound, and `localhost` never leaves the machine.
    fn allows(&self, host: &HostName) -> bool {
        match host {
            HostName::Ip(_) => true,
            HostName::Name(name) => {
                name == "localhost"
                    || name.ends_with(".localhost")
                    || self.0.iter().any(|allowed| allowed.0 == *name)
            }
        }
    }

    /// The names, lowercased, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|name| name.0.as_str())
    }
}

/// One `--allowed-host` value: a DNS name without a port, lowercased (names
/// are compared without case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost(String);

impl std::str::FromStr for AllowedHost {
    type Err = String;

    /// The error says what was wrong with `text`.
    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.trim();
        if name.is_empty() {
            return Err("an allowed host is a name such as `fakes`, not an empty string".into());
        }
        if name.contains(':') {
            return Err(format!(
                "`{name}`: give the name without a port (any port of an allowed name is allowed)"
            ));
        }
        match parse_host(name) {
            Some(HostName::Name(name)) => Ok(Self(name)),
            Some(HostName::Ip(_)) => Err(format!(
                "`{name}` is an IP address; those are always allowed, give a name"
            )),
            None => Err(format!(
                "`{name}` is not a host name (letters, digits, `-`, `_` and `.`)"
            )),
        }
    }
}

/// Why a request was refused: its status (403, or 400 for a header that is
/// not what HTTP says it is) and a message that says which header was wrong
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn forbidden(message: String) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message,
        }
    }

    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a server answers a [`Refusal`], given the request's headers (to pick
/// HTML or JSON).
pub type RefusalAnswer = fn(&HeaderMap, Refusal) -> Response;

/// The middleware: both checks, and the server's way of saying no.
#[derive(Clone)]
pub struct Guard {
    hosts: AllowedHosts,
    answer: RefusalAnswer,
}

impl Guard {
    pub fn new(hosts: AllowedHosts, answer: RefusalAnswer) -> Self {
        Self { hosts, answer }
    }

    /// `router` with every request, its fallback's too, checked first.
    pub fn around<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(middleware::from_fn_with_state(self, guard))
    }

    /// Both checks on a request's method, target and headers.
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = request_host(uri, headers)?;
        if let Some((text, Authority { host, .. })) = &host {
            if let (false, HostName::Name(name)) = (self.hosts.allows(host), host) {
                return Err(not_our_name(text, name));
            }
        }
        if !changes_state(method) {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if site != "same-origin" && site != "none" {
                return Err(Refusal::forbidden(format!(
                    "a {method} sent by a page on another site (`Sec-Fetch-Site: {site}`) \
                     may not change this server; use this server's own pages, or a script"
                )));
            }
        }
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or("").trim();
        let ours = host.as_ref().map(|(_, authority)| authority);
        match parse_origin(origin) {
            Some(theirs) if ours.is_some_and(|ours| same_origin(&theirs, ours)) => Ok(()),
            Some(_) => Err(Refusal::forbidden(format!(
                "a {method} from a page on `{origin}` may not change this server{}; \
                 use this server's own pages, or a script (which sends no Origin)",
                match &host {
                    Some((text, _)) => format!(" (http://{text})"),
                    None => " (the request has no Host to compare it with)".to_string(),
                }
            ))),
            None if origin.eq_ignore_ascii_case("null") => Err(Refusal::forbidden(format!(
                "a {method} from a page with no origin (`Origin: null`: a sandboxed frame, \
                 a file or a redirect from another site) may not change this server"
            ))),
            None => Err(Refusal::bad_request(format!(
                "`Origin: {origin}` is not scheme://host[:port]"
            ))),
        }
    }
}

async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.check(request.method(), request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => (guard.answer)(request.headers(), refusal),
    }
}

/// GET, HEAD and OPTIONS only read; anything else may change something.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn not_our_name(text: &str, name: &str) -> Refusal {
    Refusal::forbidden(format!(
        "Host `{text}` is not this server's address; start it with --allowed-host {name} \
         to allow it (names other than IP addresses and localhost are refused, so that a \
         page on another site cannot rebind its name to this server)"
    ))
}

/// The request's `Host` (or, for an absolute-form target, the target's
/// authority), as sent and parsed; `None` when there is none (HTTP/1.0).
fn request_host<'a>(
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<(&'a str, Authority)>, Refusal> {
    let text = match headers.get(header::HOST) {
        Some(value) => value
            .to_str()
            .map_err(|_| Refusal::bad_request("the Host header is not ASCII text".to_string()))?,
        None => match uri.authority() {
            Some(authority) => authority.as_str(),
            None => return Ok(None),
        },
    };
    let text = text.trim();
    parse_authority(text)
        .map(|authority| Some((text, authority)))
        .ok_or_else(|| Refusal::bad_request(format!("Host `{text}` is not host[:port]")))
}

/// A host: an IP address or a lowercased DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    Name(String),
}

/// `host[:port]`, as in `Host` and after an origin's `scheme://`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: HostName,
    port: Option<u16>,
}

/// `name`, `1.2.3.4` or `[::1]`, each optionally with `:port`; `None` when
/// it is none of them (a user, a path, a bad port, stray characters).
fn parse_authority(text: &str) -> Option<Authority> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = v6.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (HostName::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        (parse_host(host)?, port)
    };
    let port = match port {
        None => None,
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some(Authority { host, port })
}

/// An IPv4 address or a DNS name (one trailing dot allowed, and dropped).
fn parse_host(text: &str) -> Option<HostName> {
    if let Ok(ip) = text.parse() {
        return Some(HostName::Ip(IpAddr::V4(ip)));
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.split('.').all(label_ok) {
        Some(HostName::Name(name.to_ascii_lowercase()))
    } else {
        None
    }
}

/// A serialised origin: a scheme, `://` and an authority, nothing after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    authority: Authority,
}

fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return None;
    }
    Some(Origin {
        scheme: scheme.to_ascii_lowercase(),
        authority: parse_authority(rest)?,
    })
}

/// Whether a page at `origin` is this server, reached at `ours` (its
/// `Host`): these servers speak plain HTTP, so the origin must be `http`,
/// the same host and the same port (80 when none is given).
fn same_origin(origin: &Origin, ours: &Authority) -> bool {
    origin.scheme == "http"
        && origin.authority.host == ours.host
        && origin.authority.port.unwrap_or(80) == ours.port.unwrap_or(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> HostName {
        HostName::Name(text.into())
    }

    #[test]
    fn authorities_parse_with_and_without_ports() {
        assert_eq!(
            parse_authority("LocalHost:3001"),
            Some(Authority {
                host: name("localhost"),
                port: Some(3001)
            })
        );
        assert_eq!(
            parse_authority("fakes"),
            Some(Authority {
                host: name("fakes"),
                port: None
            })
        );
        assert_eq!(
            parse_authority("127.0.0.1:80"),
            Some(Authority {
                host: HostName::Ip("127.0.0.1".parse().unwrap()),
                port: Some(80)
            })
        );
        assert_eq!(
            parse_authority("[::1]:4000"),
            Some(Authority {
                host: HostName::Ip("::1".parse().unwrap()),
                port: Some(4000)
            })
        );
        assert_eq!(
            parse_authority("[0:0::1]").map(|a| a.host),
            Some(HostName::Ip("::1".parse().unwrap()))
        );
    }

    #[test]
    fn malformed_authorities_are_none() {
        for text in [
            "",
            ":3001",
            "host:",
            "host:port",
            "host:99999",
            "host:+1",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[evil]:1",
            "user@host",
            "host/path",
            "a..b",
            "a b",
            "host:1:2",
        ] {
            assert_eq!(parse_authority(text), None, "{text:?}");
        }
    }

    #[test]
    fn origins_need_a_scheme_and_nothing_after_the_port() {
        assert!(parse_origin("http://127.0.0.1:3001").is_some());
        assert_eq!(
            parse_origin("HTTP://Example.COM").map(|o| (o.scheme, o.authority.host)),
            Some(("http".to_string(), name("example.com")))
        );
        for text in [
            "null",
            "127.0.0.1:3001",
            "http://",
            "http://host/",
            "http://host:80/path",
            "://host",
            "1http://host",
            "http:/host",
        ] {
            assert_eq!(parse_origin(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_same_origin_is_http_on_the_same_host_and_port() {
        let ours = parse_authority("localhost:3001").unwrap();
        let origin = |text: &str| parse_origin(text).unwrap();
        assert!(same_origin(&origin("http://localhost:3001"), &ours));
        assert!(same_origin(&origin("http://LOCALHOST:3001"), &ours));
        assert!(!same_origin(&origin("http://localhost:3000"), &ours));
        assert!(!same_origin(&origin("https://localhost:3001"), &ours));
        assert!(!same_origin(&origin("http://localhost"), &ours));
        assert!(!same_origin(&origin("http://127.0.0.1:3001"), &ours));
        let default_port = parse_authority("fakes").unwrap();
        assert!(same_origin(&origin("http://fakes:80"), &default_port));
        assert!(same_origin(&origin("http://fakes"), &default_port));
        let v6 = parse_authority("[::1]:3001").unwrap();
        assert!(same_origin(&origin("http://[0::1]:3001"), &v6));
    }

    #[test]
    fn allowed_host_names_are_checked_and_lowercased() {
        let parse = |text: &str| text.parse::<AllowedHost>();
        assert_eq!(parse(" Fakes "), Ok(AllowedHost("fakes".into())));
        assert_eq!(
            parse("lab.internal."),
            Ok(AllowedHost("lab.internal".into()))
        );
        let err = parse("fakes:3001").unwrap_err();
        assert!(err.contains("without a port"), "{err}");
        let err = parse("127.0.0.1").unwrap_err();
        assert!(err.contains("always allowed"), "{err}");
        let err = parse("ev il").unwrap_err();
        assert!(err.contains("not a host name"), "{err}");
        assert!(parse("").is_err());
        let hosts: AllowedHosts = [parse("Fakes").unwrap()].into_iter().collect();
        assert!(hosts.allows(&name("fakes")));
        assert!(hosts.allows(&name("localhost")));
        assert!(hosts.allows(&name("lab.localhost")));
        assert!(!hosts.allows(&name("evil.example")));
        assert!(!hosts.allows(&name("localhost.evil.example")));
        assert!(!hosts.allows(&name("fakes.evil.example")));
    }

    fn check(method: Method, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut map = HeaderMap::new();
        for (key, value) in headers {
            map.insert(
                header::HeaderName::from_bytes(key.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let answer: RefusalAnswer = |_, _| Response::default();
        let hosts = [AllowedHost("fakes".into())].into_iter().collect();
        Guard::new(hosts, answer).check(&method, &Uri::from_static("/reset"), &map)
    }

    #[test]
    fn hosts_are_checked_on_every_method() {
        let refusal = check(Method::GET, &[("host", "Evil.Example:3001")]).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert!(
            refusal.message.starts_with(
                "Host `Evil.Example:3001` is not this server's address; \
                 start it with --allowed-host evil.example to allow it"
            ),
            "{refusal}"
        );
        assert!(check(Method::GET, &[("host", "FAKES:3001")]).is_ok());
        assert!(check(Method::GET, &[("host", "[::1]:3001")]).is_ok());
        assert!(check(Method::GET, &[("host", "10.1.2.3")]).is_ok());
        assert!(check(Method::GET, &[]).is_ok(), "HTTP/1.0 sends no Host");
        let refusal = check(Method::GET, &[("host", "a b")]).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert!(refusal.message.contains("`a b`"), "{refusal}");
    }

    #[test]
    fn state_changes_from_other_origins_are_refused() {
        let host = ("host", "127.0.0.1:3001");
        let post = |extra: &[(&str, &str)]| {
            let mut headers = vec![host];
            headers.extend_from_slice(extra);
            check(Method::POST, &headers)
        };
        assert!(post(&[]).is_ok(), "scripts send no Origin");
        assert!(post(&[("origin", "http://127.0.0.1:3001")]).is_ok());
        assert!(post(&[("sec-fetch-site", "same-origin")]).is_ok());
        assert!(post(&[("sec-fetch-site", "none")]).is_ok());
        let refused = |extra: &[(&str, &str)]| post(extra).unwrap_err();
        let cross = refused(&[("origin", "https://evil.example")]);
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        assert!(cross.message.contains("`https://evil.example`"), "{cross}");
        assert!(cross.message.contains("http://127.0.0.1:3001"), "{cross}");
        let other_port = refused(&[("origin", "http://127.0.0.1:4000")]);
        assert_eq!(other_port.status, StatusCode::FORBIDDEN);
        let null = refused(&[("origin", "null")]);
        assert!(null.message.contains("Origin: null"), "{null}");
        for site in ["cross-site", "same-site", "Cross-Site", "bogus"] {
            let refusal = refused(&[("sec-fetch-site", site)]);
            assert_eq!(refusal.status, StatusCode::FORBIDDEN, "{site}");
            assert!(refusal.message.contains("Sec-Fetch-Site"), "{refusal}");
        }
        let both = refused(&[
            ("origin", "http://127.0.0.1:3001"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(both.status, StatusCode::FORBIDDEN);
        let malformed = refused(&[("origin", "http://evil.example/page")]);
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert!(
            malformed.message.contains("scheme://host[:port]"),
            "{malformed}"
        );
        let no_host = check(Method::POST, &[("origin", "http://127.0.0.1:3001")]).unwrap_err();
        assert!(no_host.message.contains("no Host"), "{no_host}");
    }

    #[test]
    fn reads_from_other_origins_pass_and_every_other_method_is_checked() {
        let evil = [
            ("host", "127.0.0.1:3001"),
            ("origin", "https://evil.example"),
        ];
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(check(method.clone(), &evil).is_ok(), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(check(method.clone(), &evil).is_err(), "{method}");
        }
    }
}
