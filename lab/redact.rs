//! URLs with their secrets hidden, for error messages, logs and pages.
//!
//! The store and the Redis backend both show the URL they were given (what
//! they could not reach, what `/` is connected to); neither may show a
//! password. One rule for every scheme, so a URL reads the same wherever it
//! is shown.

/// `url` with the password in its userinfo replaced by `***`
/// (`postgres://u:***@h/db`). A userinfo without a colon is a user name and
/// stays (`postgres://postgres@127.0.0.1/x`), except in a `redis://` or
/// `rediss://` URL: Redis before ACLs knew only passwords, and providers hand
/// out `redis://TOKEN@host`, so there it is hidden too (`redis://***@host`).
/// Anything that is not `scheme://…` comes back as it is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let hidden = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None if is_redis(url) => "***".to_string(),
        None => return url.to_string(),
    };
    format!("{}{hidden}{}", &url[..scheme_end], &rest[at..])
}

fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_on_every_scheme() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://user:secret@host/1"),
            "redis://user:***@host/1"
        );
    }

    #[test]
    fn a_bare_user_stays_except_in_redis() {
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(redact_url("rediss://token@host"), "rediss://***@host");
    }

    #[test]
    fn urls_without_userinfo_are_unchanged() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            redact_url("postgres://h/db?password=x@y"),
            "postgres://h/db?password=x@y"
        );
    }
}
