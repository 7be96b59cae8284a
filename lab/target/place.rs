//! Placing an order through the app — a command or an HTTP request — and
//! reading the app's id for it from what came back.

/// Where the app's id for a placed order is (`id = "…"` in `[place_order]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdKind {
    /// `"n"`: the order's number itself (1, 2, …).
    N,
    /// `"stdout"`: the last non-empty line the command printed.
    Stdout,
    /// `"location"`: the last path segment of the answer's `Location` header.
    Location,
    /// `"json:PATH"`: a field of the JSON answer (`json:order.id`, dotted,
    /// array indices as numbers), kept as a JSON pointer (`/order/id`).
    Json(String),
}

impl IdKind {
    /// Reads an `id` value; the error says which values there are.
    pub fn parse(text: &str) -> Result<IdKind, String> {
        match text {
            "n" => Ok(IdKind::N),
            "stdout" => Ok(IdKind::Stdout),
            "location" => Ok(IdKind::Location),
            _ => match text.strip_prefix("json:") {
                Some(path) if !path.is_empty() => Ok(IdKind::Json(
                    path.split('.').fold(String::new(), |p, s| p + "/" + s),
                )),
                _ => Err(format!(
                    "unknown `id` {text:?}: use \"n\", \"stdout\", \"location\" or \"json:PATH\" (e.g. \"json:order.id\")"
                )),
            },
        }
    }
}
