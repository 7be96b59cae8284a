//! The page shell and the small formatting helpers every page uses: HTML
//! escaping, money, times, URL path segments.

use std::fmt::Write as _;

use serde_json::Value;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

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

/// How far `at_ms` is from `now_ms`: `in 15.2 s`, `3.0 s ago`, `now`.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    let fmt = |ms: u64| {
        if ms >= 3_600_000 {
            format!("{:.1} h", ms as f64 / 3_600_000.0)
        } else if ms >= 60_000 {
            format!("{:.1} min", ms as f64 / 60_000.0)
        } else {
            format!("{:.1} s", ms as f64 / 1000.0)
        }
    };
    match at_ms.cmp(&now_ms) {
        std::cmp::Ordering::Greater => format!("in {}", fmt(at_ms - now_ms)),
        std::cmp::Ordering::Less => format!("{} ago", fmt(now_ms - at_ms)),
        std::cmp::Ordering::Equal => "now".to_string(),
    }
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

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:0 1rem 2rem;color:#222}\
nav{display:flex;gap:1rem;padding:.8rem 0;border-bottom:1px solid #ccc;margin-bottom:1rem}\
nav a{text-decoration:none;font-weight:600}\
table{border-collapse:collapse;margin:.5rem 0 1.2rem}\
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}\
.services{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.8rem}\
.service{border:1px solid #ccc;border-radius:.4rem;padding:.6rem .8rem}\
.service h3{margin:.1rem 0 .4rem}\
.bad{color:#a00}.good{color:#070}\
.unsafe{background:#fee;color:#a00;font-weight:600}\
.hint{background:#ffd;border:1px solid #dd8;padding:.6rem .8rem;border-radius:.4rem}\
.errors{background:#fee;border:1px solid #d99;padding:.4rem .8rem;border-radius:.4rem}\
.field-error{color:#a00;font-size:.9em}\
form.inline{display:inline;margin-right:.3rem}\
label{display:block;margin:.6rem 0 .2rem;font-weight:600}\
input,select{font-size:1rem;padding:.2rem}\
code{font-size:.9em}\
.axis{color:#555;font-size:.9em}\
ol.timeline{list-style:none;padding:0;margin:.5rem 0 1.2rem}\
.timeline li{display:grid;grid-template-columns:6.5rem 16rem 1fr;gap:.8rem;align-items:center;padding:.25rem .4rem;border-bottom:1px solid #eee}\
.timeline li.attempt{border-top:1px solid #bbb;background:#fafafa}\
.timeline li.call .what{padding-left:1.2rem}\
.timeline .t{font-family:ui-monospace,monospace;font-size:.9em;color:#555}\
.timeline .lane{position:relative;height:.7rem;background:#eee;border-radius:.2rem}\
.timeline .bar{position:absolute;top:0;height:100%;border-radius:.2rem;background:#58a}\
.timeline li.done .bar{background:#4a4}.timeline li.failed .bar,.timeline li.died .bar{background:#c44}\
.timeline .tick{position:absolute;top:-.2rem;width:.3rem;height:1.1rem;margin-left:-.15rem;background:#333}\
.timeline li.fault .tick{background:#e80}\
.timeline li.dup{background:#fee}.timeline li.dup .tick{background:#c00}\
.timeline .by{color:#666;font-size:.9em}";

/// A whole page: the shell, the navigation and `body`. With `refresh`, the
/// browser reloads it every second (no JavaScript).
pub fn page(title: &str, body: &str, refresh: bool) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    if refresh {
        out.push_str("<meta http-equiv=\"refresh\" content=\"1\">\n");
    }
    let head_title = if title == "idemlab" {
        title.to_string()
    } else {
        format!("{title} · idemlab")
    };
    let _ = write!(
        out,
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav><a href=\"/\">idemlab</a><a href=\"/orders/new\">New order</a>\
         <a href=\"/orders\">Orders</a><a href=\"/jobs\">Jobs</a></nav>\n\
         <h1>{}</h1>\n{body}\n</body>\n</html>\n",
        escape(&head_title),
        escape(title),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let raw = r#"<a href="x">'&'</a>"#;
        let escaped = escape(raw);
        assert!(!escaped.contains(['<', '>', '"', '\'']), "{escaped}");
        assert!(
            escaped.starts_with("&lt;a href=&quot;x&quot;&gt;"),
            "{escaped}"
        );
        assert_eq!(html_escape::decode_html_entities(&escaped), raw);
    }

    #[test]
    fn formats_money_times_and_segments() {
        assert_eq!(money(12300), "$123.00");
        assert_eq!(money(5), "$0.05");
        assert_eq!(money(-150), "-$1.50");
        assert_eq!(time(1_767_225_600_000), "2026-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
        assert_eq!(relative(16_000, 1_000), "in 15.0 s");
        assert_eq!(relative(1_000, 121_000), "2.0 min ago");
        assert_eq!(path_segment("ab/c d"), "ab%2Fc%20d");
    }
}
