//! The order form: the book app's field names (`order[product_id]`,
//! `order[quantity]`, `order[email]`, `order[address]`), read from a
//! URL-encoded or a JSON body, checked, and rendered with its errors next to
//! the fields and the values as they were typed.

use std::fmt::Write as _;

use serde_json::Value;

use super::layout::{escape, money};
use crate::store::{FieldError, NewOrder, Product, SEED_USER_EMAIL};

/// The form's fields as typed, kept as text so a re-rendered form shows
/// exactly what was submitted (`abc` in the quantity included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderForm {
    pub product_id: String,
    pub quantity: String,
    pub email: String,
    pub address: String,
}

impl Default for OrderForm {
    /// The empty form: quantity 1, the seed user's email.
    fn default() -> Self {
        Self {
            product_id: String::new(),
            quantity: "1".into(),
            email: SEED_USER_EMAIL.into(),
            address: String::new(),
        }
    }
}

/// The order fields in the order their errors are listed.
const FIELDS: [&str; 5] = ["product_id", "quantity", "email", "address", "amount_cents"];

impl OrderForm {
    /// From an `application/x-www-form-urlencoded` body: `order[field]`, or
    /// the bare field name. A missing field is blank.
    pub fn from_urlencoded(body: &[u8]) -> Self {
        let pairs = parse_urlencoded(body);
        let field = |name: &str| {
            let nested = format!("order[{name}]");
            pairs
                .iter()
                .find(|(k, _)| *k == nested)
                .or_else(|| pairs.iter().find(|(k, _)| k == name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Self {
            product_id: field("product_id"),
            quantity: field("quantity"),
            email: field("email"),
            address: field("address"),
        }
    }

    /// From a JSON object `{product_id, quantity, email, address}` (or the
    /// same under `"order"`); numbers may be numbers or strings.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
        let object = match value.get("order") {
            Some(inner @ Value::Object(_)) => inner,
            _ => &value,
        };
        if !object.is_object() {
            return Err("the body must be a JSON object".into());
        }
        let field = |name: &str| match &object[name] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(Self {
            product_id: field("product_id"),
            quantity: field("quantity"),
            email: field("email"),
            address: field("address"),
        })
    }

    /// The order to place, or the errors of the fields that are not even
    /// numbers together with every error the store's own field checks find
    /// in the rest (the store is not asked whether the product exists).
    pub fn parse(&self) -> Result<NewOrder, Vec<FieldError>> {
        let mut errors = Vec::new();
        let product_id = self.product_id.trim().parse::<i64>().unwrap_or_else(|_| {
            errors.push(FieldError::new("product_id", "must exist"));
            0
        });
        let quantity = parse_quantity(&self.quantity).unwrap_or_else(|message| {
            errors.push(FieldError::new("quantity", message));
            // A valid stand-in, so the checks below add no second message.
            1
        });
        let new = NewOrder {
            product_id,
            quantity,
            email: self.email.trim().to_string(),
            address: self.address.trim().to_string(),
            amount_cents: None,
        };
        if errors.is_empty() {
            return Ok(new);
        }
        errors.extend(new.check_fields());
        sort_errors(&mut errors);
        Err(errors)
    }

    /// Whether the product id is at least a number (then the store can say
    /// whether it exists).
    pub fn product_id_number(&self) -> Option<i64> {
        self.product_id.trim().parse().ok()
    }
}

/// The quantity, or what is wrong with it in Rails' words.
fn parse_quantity(text: &str) -> Result<i64, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("can't be blank");
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // A whole number too large for the column.
        return Err(if text.starts_with('-') {
            "must be greater than 0"
        } else {
            "is more than what is in stock"
        });
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() => Err("must be an integer"),
        _ => Err("is not a number"),
    }
}

/// Errors in the order of the form's fields (stable within a field).
pub fn sort_errors(errors: &mut [FieldError]) {
    let rank = |e: &FieldError| {
        FIELDS
            .iter()
            .position(|f| *f == e.field)
            .unwrap_or(FIELDS.len())
    };
    errors.sort_by_key(rank);
}

/// `application/x-www-form-urlencoded` pairs; bad escapes are kept as typed
/// and bad UTF-8 is replaced, never an error.
pub fn parse_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key), decode_component(value))
        })
        .collect()
}

fn decode_component(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The form, filled with `form`, with `errors` listed above it and each
/// one next to its field.
pub fn render(products: &[Product], form: &OrderForm, errors: &[FieldError]) -> String {
    let mut out = String::new();
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "<div class=\"errors\" id=\"errors\"><h2>{} prohibited this order from being saved:</h2>\n<ul>",
            if errors.len() == 1 {
                "1 error".to_string()
            } else {
                format!("{} errors", errors.len())
            }
        );
        for error in errors {
            let _ = writeln!(out, "<li>{}</li>", escape(&error.full_message()));
        }
        out.push_str("</ul></div>\n");
    }
    let field_errors = |field: &str| {
        errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| format!(" <span class=\"field-error\">{}</span>", escape(&e.message)))
            .collect::<String>()
    };
    out.push_str("<form method=\"post\" action=\"/orders\">\n");
    let _ = writeln!(
        out,
        "<label for=\"order_product_id\">Product{}</label>\n<select name=\"order[product_id]\" id=\"order_product_id\">",
        field_errors("product_id")
    );
    let chosen = form.product_id.trim();
    for product in products {
        let id = product.id.to_string();
        let _ = writeln!(
            out,
            "<option value=\"{id}\"{}>{} — {} ({} left)</option>",
            if chosen == id { " selected" } else { "" },
            escape(&product.name),
            money(product.price_cents),
            product.quantity_remaining,
        );
    }
    out.push_str("</select>\n");
    let _ = writeln!(
        out,
        "<label for=\"order_quantity\">Quantity{}</label>\n\
         <input type=\"text\" inputmode=\"numeric\" name=\"order[quantity]\" id=\"order_quantity\" value=\"{}\">\n\
         <label for=\"order_email\">Email{}</label>\n\
         <input type=\"email\" name=\"order[email]\" id=\"order_email\" value=\"{}\" size=\"40\">\n\
         <label for=\"order_address\">Shipping address{}</label>\n\
         <input type=\"text\" name=\"order[address]\" id=\"order_address\" value=\"{}\" size=\"60\">\n\
         <p><button type=\"submit\">Place Order</button></p>\n</form>",
        field_errors("quantity"),
        escape(&form.quantity),
        field_errors("email"),
        escape(&form.email),
        field_errors("address"),
        escape(&form.address),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_book_field_names_and_escapes() {
        let form = OrderForm::from_urlencoded(
            b"order%5Bproduct_id%5D=2&order[quantity]=3&order[email]=a%2Bb%40x.com&order[address]=1+Main+St%zz",
        );
        assert_eq!(form.product_id, "2");
        assert_eq!(form.quantity, "3");
        assert_eq!(form.email, "a+b@x.com");
        assert_eq!(form.address, "1 Main St%zz");
    }

    #[test]
    fn quantity_errors_read_like_rails() {
        assert_eq!(parse_quantity(" 2 "), Ok(2));
        assert_eq!(parse_quantity("abc"), Err("is not a number"));
        assert_eq!(parse_quantity(""), Err("can't be blank"));
        assert_eq!(parse_quantity("1.5"), Err("must be an integer"));
        assert_eq!(
            parse_quantity("99999999999999999999"),
            Err("is more than what is in stock")
        );
    }

    #[test]
    fn unparseable_fields_come_with_the_other_errors() {
        let form = OrderForm {
            product_id: "x".into(),
            quantity: "abc".into(),
            email: " ".into(),
            address: "here".into(),
        };
        let errors = form.parse().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["product_id", "quantity", "email"]);
    }

    #[test]
    fn json_numbers_or_strings() {
        let form = OrderForm::from_json(
            br#"{"order":{"product_id":1,"quantity":"2","email":"e","address":"a"}}"#,
        )
        .unwrap();
        assert_eq!(
            (form.product_id.as_str(), form.quantity.as_str()),
            ("1", "2")
        );
        assert!(OrderForm::from_json(b"[1]").is_err());
        assert!(OrderForm::from_json(b"{").is_err());
    }
}
