//! What can go wrong in the store, split so callers can tell a user's mistake
//! (show it in the form) from a broken database (log it, fail the job).

use std::fmt;

use serde::Serialize;

/// One problem with one field of a submitted form, worded like the book
/// app's Rails validations so the web lab's form reads the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The form field, by its column name (`email`, `address`, `quantity`,
    /// `product_id`, `amount_cents`), so the form can put the message next
    /// to the right input.
    pub field: &'static str,
    /// The message without the field name, e.g. `can't be blank`.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// Rails' "full message": the humanized field name, then the message
    /// (`Email can't be blank`, `Product must exist`).
    pub fn full_message(&self) -> String {
        let name = self.field.strip_suffix("_id").unwrap_or(self.field);
        let mut human: String = name.replace('_', " ");
        if let Some(first) = human.get(0..1) {
            let upper = first.to_uppercase();
            human.replace_range(0..1, &upper);
        }
        format!("{human} {}", self.message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_message())
    }
}

/// Everything the store can fail with.
///
/// `Invalid` is the only variant a user causes; the others mean the database
/// (or its URL) is wrong and carry what the store was doing when it failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The submitted order breaks one or more rules; nothing was written.
    #[error("invalid order: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// A row the caller named by id does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// `order`, `reminder`, …
        what: &'static str,
        /// The id that was asked for.
        id: i64,
    },
    /// The URL names no database this store can use.
    #[error(
        "unsupported database URL {url:?}: expected sqlite://PATH?mode=rwc, sqlite::memory: or postgres://…"
    )]
    UnsupportedUrl {
        /// The URL as given (password removed).
        url: String,
    },
    /// The operation does not apply to this kind of database.
    #[error("not supported here: {0}")]
    Unsupported(&'static str),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The URL as given (password removed).
        url: String,
        /// What sqlx reported.
        source: sqlx::Error,
    },
    /// The schema migrations failed (or an applied one was edited since).
    #[error("migrating the {dialect} schema failed: {source}")]
    Migrate {
        /// `SQLite` or `Postgres`.
        dialect: &'static str,
        /// What sqlx reported.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed; `context` says which operation.
    #[error("database error while {context}: {source}")]
    Database {
        /// The operation, e.g. `creating an order`.
        context: &'static str,
        /// What sqlx reported.
        source: sqlx::Error,
    },
}

impl StoreError {
    /// The field errors, if this is a validation failure.
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            StoreError::Invalid(errors) => Some(errors),
            _ => None,
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(FieldError::full_message)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_messages_read_like_rails() {
        assert_eq!(
            FieldError::new("email", "can't be blank").full_message(),
            "Email can't be blank"
        );
        assert_eq!(
            FieldError::new("product_id", "must exist").full_message(),
            "Product must exist"
        );
        assert_eq!(
            FieldError::new("amount_cents", "must be greater than or equal to 0").full_message(),
            "Amount cents must be greater than or equal to 0"
        );
    }
}
