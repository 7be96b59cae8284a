//! The look every page shares, the fake services' and the web lab's: one
//! stylesheet, one page shell (a navigation bar of the site's own links, the
//! title, the body) and the few helpers both sites' pages need (escaping,
//! a time relative to now). The web lab depends on this crate, not the
//! reverse, so the sheet lives here; a class any page uses belongs in it.

use std::fmt::Write as _;

/// The one stylesheet, inlined in every page's `<head>` (no extra request,
/// nothing to cache or go stale).
pub const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70rem;padding:0 1rem 2rem;color:#222}\
nav{display:flex;flex-wrap:wrap;gap:1rem;padding:.8rem 0;border-bottom:1px solid #ccc;margin-bottom:1rem}\
nav a{text-decoration:none;font-weight:600}\
table{border-collapse:collapse;margin:.5rem 0 1.2rem}\
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}\
tr.dup td{background:#fee}\
tr.spent td{color:#888}\
.services{display:grid;grid-template-columns:repeat(auto-fill,minmax(16rem,1fr));gap:.8rem}\
.service{border:1px solid #ccc;border-radius:.4rem;padding:.6rem .8rem}\
.service h3{margin:.1rem 0 .4rem}\
.service li.spent{color:#888}\
.bad{color:#a00}.good{color:#070}\
.unsafe{background:#fee;color:#a00;font-weight:600}\
.hint,.warn{background:#ffd;border:1px solid #dd8;padding:.6rem .8rem;border-radius:.4rem}\
.errors,.error{background:#fee;border:1px solid #d99;padding:.4rem .8rem;border-radius:.4rem}\
.field-error{color:#a00;font-size:.9em}\
.help{color:#555;font-size:.9em;margin:.1rem 0 .4rem}\
form.inline{display:inline;margin-right:.3rem}\
fieldset{margin:.6rem 0;border:1px solid #ccc;border-radius:.4rem}\
label{display:block;margin:.6rem 0 .2rem;font-weight:600}\
label.check{display:inline;margin-right:.8rem;font-weight:normal}\
input,select{font-size:1rem;padding:.2rem}\
code,.mono{font-family:ui-monospace,monospace;font-size:.9em}\
/* the web lab's order timeline (lab/web/timeline.rs) */\
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
.timeline .by{color:#666;font-size:.9em}\
";

/// What frames a page: the `<title>`, the `<h1>`, the site's navigation
/// links (`href`, label) and whether the browser reloads it every second
/// (no JavaScript).
pub struct Shell<'a> {
    pub head_title: &'a str,
    pub title: &'a str,
    pub nav: &'a [(String, &'a str)],
    pub refresh: bool,
}

/// A whole page: the shell around `body` (already HTML).
pub fn page(shell: &Shell<'_>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    if shell.refresh {
        out.push_str("<meta http-equiv=\"refresh\" content=\"1\">\n");
    }
    let _ = write!(
        out,
        "<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<nav>",
        escape(shell.head_title)
    );
    for (href, label) in shell.nav {
        let _ = write!(out, "<a href=\"{}\">{}</a>", escape(href), escape(label));
    }
    let _ = write!(
        out,
        "</nav>\n<h1>{}</h1>\n{body}\n</body>\n</html>\n",
        escape(shell.title)
    );
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
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
    fn times_read_relative_to_now() {
        assert_eq!(relative(16_000, 1_000), "in 15.0 s");
        assert_eq!(relative(1_000, 121_000), "2.0 min ago");
        assert_eq!(relative(5, 5), "now");
    }

    #[test]
    fn the_shell_escapes_its_title_and_links_and_carries_the_sheet() {
        let nav = [("/a?b=1&c=2".to_string(), "A & B")];
        let html = page(
            &Shell {
                head_title: "<t>",
                title: "<h>",
                nav: &nav,
                refresh: true,
            },
            "<p>body</p>",
        );
        assert!(html.contains("<title>&lt;t&gt;</title>"), "{html}");
        assert!(html.contains("<h1>&lt;h&gt;</h1>"), "{html}");
        assert!(
            html.contains("<a href=\"/a?b=1&amp;c=2\">A &amp; B</a>"),
            "{html}"
        );
        assert!(html.contains(STYLE), "{html}");
        assert!(html.contains("http-equiv=\"refresh\""), "{html}");
        assert!(html.contains("<p>body</p>"), "{html}");
    }
}
