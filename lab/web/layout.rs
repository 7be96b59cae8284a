//! The lab's page shell (the shared one from [`fake_services::style`] with
//! the lab's navigation) and the small formatting helpers every page uses:
//! HTML escaping, money, times, URL path segments.

use std::fmt::Write as _;

pub use fake_services::style::escape;
use fake_services::style::relative;
use fake_services::style::{self, Shell};
use serde_json::Value;

/// Percent-encodes one URL path segment (a jid from a Ruby client may hold
/// anything).
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `$123.00`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}${}.{:02}", cents / 100, cents % 100)
}

/// Epoch milliseconds as `2026-01-01 00:00:03 UTC`.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A time with its distance from now, for tables.
pub fn when(at_ms: u64, now_ms: u64) -> String {
    format!(
        "<span title=\"{}\">{}</span>",
        escape(&time(at_ms)),
        escape(&relative(at_ms, now_ms))
    )
}

/// Compact JSON, escaped for a table cell.
pub fn json_cell(value: &Value) -> String {
    format!("<code>{}</code>", escape(&value.to_string()))
}

/// A `<form>` with one button that POSTs to `action` (no JavaScript needed).
pub fn post_button(action: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\"><button type=\"submit\">{}</button></form>",
        escape(action),
        escape(label)
    )
}

/// A whole page: the shell every page shares ([`fake_services::style`]),
/// the lab's navigation and `body`. With `refresh`, the browser reloads it
/// every second (no JavaScript).
pub fn page(title: &str, body: &str, refresh: bool) -> String {
    let head_title = if title == "idemlab" {
        title.to_string()
    } else {
        format!("{title} · idemlab")
    };
    let nav = [
        ("/".to_string(), "idemlab"),
        ("/orders/new".to_string(), "New order"),
        ("/orders".to_string(), "Orders"),
        ("/jobs".to_string(), "Jobs"),
    ];
    style::page(
        &Shell {
            head_title: &head_title,
            title,
            nav: &nav,
            refresh,
        },
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_money_times_and_segments() {
        assert_eq!(money(12300), "$123.00");
        assert_eq!(money(5), "$0.05");
        assert_eq!(money(-150), "-$1.50");
        assert_eq!(time(1_767_225_600_000), "2026-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
        assert_eq!(path_segment("ab/c d"), "ab%2Fc%20d");
    }
}
