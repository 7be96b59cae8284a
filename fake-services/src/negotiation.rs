//! Content negotiation: which media types a request's `Accept` lists, and
//! whether its `Content-Type` says its body is JSON.
//!
//! Two front doors answer in JSON or HTML: the fake services (their API,
//! control routes and pages) and the web lab (`lab serve`). Each keeps its
//! own policy: the fake services refuse a client that takes neither JSON nor
//! a page, the web lab answers JSON to a client that asks for it and not for
//! HTML. Both read the headers here, so a header means the same at either.

use axum::http::{header, HeaderMap};

/// A media type without its parameters, in lower case:
/// `Application/JSON; charset=utf-8` is `application/json`.
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The media ranges a request's `Accept` headers list (every header, every
/// comma-separated range), by their essence. Quality values are not weighed:
/// a range listed at all counts as accepted, as the book server has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    ranges: Vec<String>,
}

impl Accept {
    /// What `headers` accept; nothing when there is no `Accept`.
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            ranges: headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(essence)
                .filter(|range| !range.is_empty())
                .collect(),
        }
    }

    /// Whether `media_range` (in lower case: `text/html`, `*/*`) is listed.
    pub fn lists(&self, media_range: &str) -> bool {
        self.ranges.iter().any(|r| r == media_range)
    }

    /// Whether a JSON answer is acceptable: `application/json` or `*/*` is
    /// listed.
    pub fn takes_json(&self) -> bool {
        self.lists("application/json") || self.lists("*/*")
    }

    /// Whether a browser is asking: `text/html` is listed.
    pub fn wants_html(&self) -> bool {
        self.lists("text/html")
    }

    /// Whether the client prefers JSON to a page: it lists
    /// `application/json` and not `text/html` (a browser lists `text/html`;
    /// curl and scripts that ask for JSON don't).
    pub fn prefers_json(&self) -> bool {
        self.lists("application/json") && !self.wants_html()
    }
}

/// Whether a request's body is JSON by its `Content-Type`:
/// `application/json` or a `+json` type (`application/merge-patch+json`).
pub fn body_is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
        .is_some_and(|v| v == "application/json" || v.ends_with("+json"))
}

/// Whether the request's body is an HTML form's (URL-encoded), as a
/// browser sends it: such a request is answered with a page or a redirect.
pub fn body_is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(essence)
        .is_some_and(|v| v == "application/x-www-form-urlencoded")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: header::HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name.clone(), HeaderValue::from_static(value));
        }
        headers
    }

    fn accept(values: &[&'static str]) -> Accept {
        Accept::of(&headers(header::ACCEPT, values))
    }

    #[test]
    fn essence_drops_parameters_and_case() {
        assert_eq!(
            essence(" Application/JSON ; charset=utf-8"),
            "application/json"
        );
        assert_eq!(essence("text/html"), "text/html");
        assert_eq!(essence(""), "");
    }

    #[test]
    fn every_header_and_range_counts_and_quality_is_not_weighed() {
        let a = accept(&["text/plain", "application/json;q=0.5"]);
        assert!(a.takes_json() && a.prefers_json() && !a.wants_html());
        let a = accept(&["text/html,application/xhtml+xml,*/*;q=0.8"]);
        assert!(a.takes_json() && a.wants_html() && !a.prefers_json());
        let a = accept(&["*/*"]);
        assert!(a.takes_json() && !a.prefers_json() && !a.wants_html());
    }

    #[test]
    fn no_accept_takes_nothing() {
        let a = accept(&[]);
        assert_eq!(a, Accept::default());
        assert!(!a.takes_json() && !a.wants_html() && !a.prefers_json());
        let a = accept(&["text/plain", "image/png"]);
        assert!(!a.takes_json() && !a.wants_html());
        // A type is matched whole, not as a substring.
        let a = accept(&["application/jsonx, text/htmlish"]);
        assert!(!a.takes_json() && !a.wants_html());
    }

    #[test]
    fn json_bodies_by_content_type() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/Merge-Patch+JSON",
        ] {
            assert!(
                body_is_json(&headers(header::CONTENT_TYPE, &[json])),
                "{json}"
            );
        }
        for other in ["application/x-www-form-urlencoded", "text/plain"] {
            assert!(
                !body_is_json(&headers(header::CONTENT_TYPE, &[other])),
                "{other}"
            );
        }
        assert!(!body_is_json(&HeaderMap::new()));
    }
}
