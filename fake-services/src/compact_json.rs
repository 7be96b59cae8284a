//! JSON bodies packed into a few bytes each, for a ledger that holds
//! millions of them.
//!
//! A `serde_json::Value` of a charge body costs over a kilobyte of small
//! allocations (a map per object, a `String` per key and per text); the
//! same body packed here is about thirty bytes appended to one buffer. Keys
//! and short texts repeat from record to record (`"amount_cents"`,
//! `"cus_1"`, `"order-confirmation"`), so they are written once into a
//! [`Dictionary`] and referred to by number. The dictionary is bounded, so a
//! load test of unique emails cannot grow it without end: once full, new
//! texts are written out in place.
//!
//! The encoding keeps everything `Value` holds, in order (objects keep their
//! key order, numbers their kind: `7`, `-7` and `7.0` come back as they
//! went in).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Number, Value};

/// Texts longer than this are never shared: they rarely repeat, and each
/// would cost the dictionary its length.
const SHARED_TEXT_MAX: usize = 64;
/// The most texts a dictionary shares.
const DICTIONARY_MAX: usize = 1 << 16;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UNSIGNED: u8 = 3;
const NEGATIVE: u8 = 4;
const FLOAT: u8 = 5;
const TEXT: u8 = 6;
const SHARED: u8 = 7;
const ARRAY: u8 = 8;
const OBJECT: u8 = 9;

/// The texts shared by the bodies of one ledger.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    numbers: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

impl Dictionary {
    /// The number of `text`, adding it if it may be shared and there is room.
    fn share(&mut self, text: &str) -> Option<u32> {
        if let Some(&n) = self.numbers.get(text) {
            return Some(n);
        }
        if text.len() > SHARED_TEXT_MAX || self.texts.len() >= DICTIONARY_MAX {
            return None;
        }
        let n = self.texts.len() as u32;
        let text: Arc<str> = Arc::from(text);
        self.texts.push(Arc::clone(&text));
        self.numbers.insert(text, n);
        Some(n)
    }

    /// How many texts it shares.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// Appends `value`, packed, to `out`.
pub fn encode(value: &Value, dictionary: &mut Dictionary, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => encode_text(s, dictionary, out),
        Value::Array(items) => {
            out.push(ARRAY);
            write_varint(items.len() as u64, out);
            for item in items {
                encode(item, dictionary, out);
            }
        }
        Value::Object(fields) => {
            out.push(OBJECT);
            write_varint(fields.len() as u64, out);
            for (key, item) in fields {
                encode_text(key, dictionary, out);
                encode(item, dictionary, out);
            }
        }
    }
}

fn encode_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(u) = n.as_u64() {
        out.push(UNSIGNED);
        write_varint(u, out);
    } else if let Some(i) = n.as_i64() {
        // Negative: `-1 - i` is at least 0.
        out.push(NEGATIVE);
        write_varint((-1 - i) as u64, out);
    } else {
        out.push(FLOAT);
        out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
    }
}

fn encode_text(text: &str, dictionary: &mut Dictionary, out: &mut Vec<u8>) {
    match dictionary.share(text) {
        Some(n) => {
            out.push(SHARED);
            write_varint(u64::from(n), out);
        }
        None => {
            out.push(TEXT);
            write_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// The value packed at the start of `bytes` by [`encode`] with the same
/// dictionary. Bytes that are not such a value (which only a bug could
/// make) come back as `null` rather than a panic.
pub fn decode(bytes: &[u8], dictionary: &Dictionary) -> Value {
    let mut reader = Reader {
        bytes,
        at: 0,
        dictionary,
    };
    reader.value(0).unwrap_or(Value::Null)
}

/// Deeper than any body a client sends; a bound so that bad bytes cannot
/// recurse without end.
const MAX_DEPTH: usize = 128;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    dictionary: &'a Dictionary,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// An array's or object's length. Each item takes at least a byte: a
    /// length beyond what is left is bad bytes, not a reason to allocate.
    fn length(&mut self) -> Option<usize> {
        let len = usize::try_from(self.varint()?).ok()?;
        (len <= self.bytes.len() - self.at).then_some(len)
    }

    fn text(&mut self, tag: u8) -> Option<String> {
        match tag {
            TEXT => {
                let len = usize::try_from(self.varint()?).ok()?;
                let end = self.at.checked_add(len)?;
                let text = std::str::from_utf8(self.bytes.get(self.at..end)?).ok()?;
                self.at = end;
                Some(text.to_string())
            }
            SHARED => {
                let n = usize::try_from(self.varint()?).ok()?;
                Some(self.dictionary.texts.get(n)?.to_string())
            }
            _ => None,
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let tag = self.byte()?;
        Some(match tag {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UNSIGNED => Value::from(self.varint()?),
            NEGATIVE => Value::from(-1 - i64::try_from(self.varint()?).ok()?),
            FLOAT => {
                let raw: [u8; 8] = self.bytes.get(self.at..self.at + 8)?.try_into().ok()?;
                self.at += 8;
                Number::from_f64(f64::from_le_bytes(raw)).map_or(Value::Null, Value::Number)
            }
            TEXT | SHARED => Value::String(self.text(tag)?),
            ARRAY => {
                let len = self.length()?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let len = self.length()?;
                let mut fields = Map::new();
                for _ in 0..len {
                    let tag = self.byte()?;
                    let key = self.text(tag)?;
                    fields.insert(key, self.value(depth + 1)?);
                }
                Value::Object(fields)
            }
            _ => return None,
        })
    }
}

fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn round_trip(value: &Value) -> (Value, usize) {
        let mut dictionary = Dictionary::default();
        let mut out = Vec::new();
        encode(value, &mut dictionary, &mut out);
        (decode(&out, &dictionary), out.len())
    }

    #[test]
    fn a_charge_body_comes_back_as_it_went_in_in_a_few_bytes() {
        let body = json!({"customer_id": "cus_1", "payment_method_id": "pm_1",
            "amount_cents": 12300, "metadata": {"order_id": 123456, "idempotency_key": "charge-order-123456"}});
        let (back, len) = round_trip(&body);
        assert_eq!(back, body);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&body).unwrap(),
            "key order kept"
        );
        let mut dictionary = Dictionary::default();
        let mut first = Vec::new();
        encode(&body, &mut dictionary, &mut first);
        let mut second = Vec::new();
        encode(&body, &mut dictionary, &mut second);
        assert!(len < 40, "{len} bytes");
        assert!(second.len() <= first.len(), "shared texts cost no more");
    }

    #[test]
    fn numbers_keep_their_kind() {
        for value in [
            json!(7),
            json!(-7),
            json!(7.5),
            json!(u64::MAX),
            json!(i64::MIN),
        ] {
            let (back, _) = round_trip(&value);
            assert_eq!(back, value);
            assert_eq!(back.to_string(), value.to_string());
        }
    }

    #[test]
    fn long_texts_and_a_full_dictionary_are_written_out() {
        let mut dictionary = Dictionary::default();
        let long = "x".repeat(SHARED_TEXT_MAX + 1);
        let mut out = Vec::new();
        encode(&json!(long), &mut dictionary, &mut out);
        assert!(dictionary.is_empty());
        for n in 0..DICTIONARY_MAX + 10 {
            encode(&json!(format!("t{n}")), &mut dictionary, &mut out);
        }
        assert_eq!(dictionary.len(), DICTIONARY_MAX);
        let mut last = Vec::new();
        encode(&json!("not shared"), &mut dictionary, &mut last);
        assert_eq!(decode(&last, &dictionary), json!("not shared"));
    }

    #[test]
    fn bad_bytes_decode_to_null_without_a_panic() {
        let dictionary = Dictionary::default();
        for bytes in [
            &[][..],
            &[42],
            &[ARRAY, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[TEXT, 5, b'a'],
            &[SHARED, 3],
            &[OBJECT, 1, UNSIGNED, 1],
            &[TEXT, 2, 0xff, 0xfe],
        ] {
            assert_eq!(decode(bytes, &dictionary), Value::Null, "{bytes:?}");
        }
        let deep = [ARRAY, 1].repeat(MAX_DEPTH + 5);
        assert_eq!(decode(&deep, &dictionary), Value::Null);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z0-9_@. -]{0,80}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z_]{1,12}", inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_value_comes_back_unchanged(values in prop::collection::vec(json_value(), 1..5)) {
            // One dictionary across several bodies, as in a ledger.
            let mut dictionary = Dictionary::default();
            let mut packed = Vec::new();
            for value in &values {
                let mut out = Vec::new();
                encode(value, &mut dictionary, &mut out);
                packed.push(out);
            }
            for (value, out) in values.iter().zip(&packed) {
                let back = decode(out, &dictionary);
                prop_assert_eq!(back.to_string(), value.to_string());
            }
        }
    }
}
