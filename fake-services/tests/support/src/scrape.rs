//! Scraping `GET /metrics` as Prometheus would: the answer's `Content-Type`
//! checked, its text parsed into samples (label values unescaped), each
//! sample's family declared by a `# TYPE` line before it. The fake services'
//! tests and the web lab's use it, so both read the format one way.

use std::collections::{BTreeMap, HashMap};

/// The Prometheus text format's `Content-Type` (version 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Each family's type (`counter`, `gauge`, …) by its `# TYPE` name.
    pub types: HashMap<String, String>,
    pub text: String,
}

impl Scrape {
    /// The value of the sample `name` with exactly `labels`, if there is one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut found = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted);
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "{name} {labels:?} appears twice in\n{}",
            self.text
        );
        Some(first.value)
    }

    /// [`Scrape::get`], panicking with the whole text when it is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }

    /// The sum of the samples `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The type `# TYPE` gave family `name`.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}

/// `GET url` with a Prometheus scraper's `Accept`; asserts a 200 in the
/// Prometheus text format, and parses it.
pub async fn scrape(client: &reqwest::Client, url: &str) -> Scrape {
    let response = client
        .get(url)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
        )
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {text}");
    assert_eq!(content_type, CONTENT_TYPE, "GET {url}");
    parse(&text).unwrap_or_else(|err| panic!("GET {url}: {err}\n{text}"))
}

/// Parses the Prometheus text format.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape {
        text: text.to_string(),
        ..Scrape::default()
    };
    for (n, line) in text.lines().enumerate() {
        let at = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if let ["TYPE", name, kind] = words[..] {
                scrape.types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        let sample = sample(line).map_err(|e| at(&e))?;
        let declared = scrape.types.contains_key(&sample.name)
            || ["_total", "_sum", "_count", "_bucket"]
                .iter()
                .any(|suffix| {
                    sample
                        .name
                        .strip_suffix(suffix)
                        .is_some_and(|base| scrape.types.contains_key(base))
                });
        if !declared {
            return Err(at("a sample before its family's # TYPE"));
        }
        scrape.samples.push(sample);
    }
    Ok(scrape)
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.trim();
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",…}` and what follows the `}`.
fn label_set(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = text.find("=\"").ok_or("a label without =\"")?;
        let key = text[..eq].to_string();
        let mut value = String::new();
        let mut chars = text[eq + 2..].char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break eq + 2 + i + 1,
                (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        text = &text[end..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_escapes() {
        let scrape = parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n\
             # TYPE g gauge\ng 2.5\n",
        )
        .unwrap();
        assert_eq!(
            scrape.value("a_total", &[("x", "1"), ("y", "q\"\\\n")]),
            3.0
        );
        assert_eq!(scrape.value("g", &[]), 2.5);
        assert_eq!(scrape.get("a_total", &[("x", "1")]), None);
        assert_eq!(scrape.sum("a_total", &[("x", "1")]), 3.0);
        assert_eq!(scrape.type_of("g"), Some("gauge"));
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in [
            "# TYPE a counter\na{x=\"1} 1",
            "# TYPE a counter\na x",
            "b 1",
            "# TYPE a counter\na{x=\"1\",x=\"2\"} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
