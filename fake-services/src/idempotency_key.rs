//! What an `Idempotency-Key` header may hold, read one way by the server that
//! takes it and by the lab's clients that send it (so a client refuses, before
//! sending, exactly the keys the server would answer 400 to).
//!
//! The IETF httpapi draft makes the key a structured-field string: printable
//! ASCII, written in quotes; Stripe takes it bare. Both forms name the same
//! key. Stripe's limit of 255 characters applies to the key inside the quotes.

use std::fmt;

/// The longest key accepted, in characters (Stripe's limit).
pub const MAX_LEN: usize = 255;

/// Why a header value is not a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidKey {
    /// Nothing (or only quotes, or white space).
    Empty,
    /// Longer than [`MAX_LEN`].
    TooLong { len: usize },
    /// A character outside printable ASCII (space to `~`).
    NotPrintableAscii,
}

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidKey::Empty => f.write_str("Idempotency-Key must not be empty"),
            InvalidKey::TooLong { len } => write!(
                f,
                "Idempotency-Key must be at most {MAX_LEN} characters, got {len}"
            ),
            InvalidKey::NotPrintableAscii => f.write_str("Idempotency-Key must be printable ASCII"),
        }
    }
}

impl std::error::Error for InvalidKey {}

/// The key a header value names: white space around it (as HTTP strips it)
/// and the draft's quotes taken off, then checked.
///
/// ```
/// use fake_services::idempotency_key::{parse, InvalidKey};
///
/// assert_eq!(parse(b"order-7"), Ok("order-7"));
/// assert_eq!(parse(b" \"order-7\" "), Ok("order-7"));
/// assert_eq!(parse(b"\"\""), Err(InvalidKey::Empty));
/// ```
pub fn parse(value: &[u8]) -> Result<&str, InvalidKey> {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    let text = &value[start..end];
    let text = text
        .strip_prefix(b"\"")
        .and_then(|t| t.strip_suffix(b"\""))
        .unwrap_or(text);
    if text.is_empty() {
        return Err(InvalidKey::Empty);
    }
    if !text.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(InvalidKey::NotPrintableAscii);
    }
    if text.len() > MAX_LEN {
        return Err(InvalidKey::TooLong { len: text.len() });
    }
    std::str::from_utf8(text).map_err(|_| InvalidKey::NotPrintableAscii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_boundary_is_inside_the_quotes() {
        let at_limit = "k".repeat(MAX_LEN);
        assert_eq!(parse(at_limit.as_bytes()), Ok(at_limit.as_str()));
        let quoted = format!("\"{at_limit}\"");
        assert_eq!(parse(quoted.as_bytes()), Ok(at_limit.as_str()));
        let over = "k".repeat(MAX_LEN + 1);
        assert_eq!(
            parse(over.as_bytes()),
            Err(InvalidKey::TooLong { len: MAX_LEN + 1 })
        );
        assert_eq!(
            parse(format!("\"{over}\"").as_bytes()),
            Err(InvalidKey::TooLong { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn only_printable_ascii() {
        assert_eq!(parse(b"a key with spaces ~"), Ok("a key with spaces ~"));
        for bad in ["a\nb", "a\tb", "ключ", "a\u{7f}b", "a\0"] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err(InvalidKey::NotPrintableAscii),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn blank_and_quoted_empty_are_empty() {
        for empty in ["", "  ", "\t", "\"\"", " \"\" "] {
            assert_eq!(parse(empty.as_bytes()), Err(InvalidKey::Empty), "{empty:?}");
        }
        // One quote is not a quoted string: it is part of the key.
        assert_eq!(parse(b"\"abc"), Ok("\"abc"));
    }

    #[test]
    fn messages_name_the_header() {
        for err in [
            InvalidKey::Empty,
            InvalidKey::TooLong { len: 300 },
            InvalidKey::NotPrintableAscii,
        ] {
            assert!(err.to_string().starts_with("Idempotency-Key "), "{err}");
        }
        assert!(InvalidKey::TooLong { len: 300 }
            .to_string()
            .contains("at most 255 characters, got 300"));
    }
}
