//! Payload validation for client events: typed field access with limits, text sanitizing,
//! and the refusal sent back when a field is wrong.

use crate::store::grants::valid_id;
use serde_json::{Map, Value};

/// Why a client event was refused; sent as `{ok:false, error, message}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_payload", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new("forbidden", message)
    }
}

/// The first argument of an event, which must be an object.
#[derive(Debug)]
pub struct Payload(pub Map<String, Value>);

impl Payload {
    /// # Errors
    /// When the first argument is missing or not an object.
    pub fn from_args(args: &mut Vec<Value>) -> Result<Payload, Refusal> {
        if args.is_empty() {
            return Err(Refusal::invalid("payload object required"));
        }
        match args.swap_remove(0) {
            Value::Object(m) => Ok(Payload(m)),
            _ => Err(Refusal::invalid("payload must be an object")),
        }
    }

    /// A required id field (string or number), 1 to 128 of `[A-Za-z0-9_.:@-]`.
    ///
    /// # Errors
    /// Missing or malformed.
    pub fn id(&self, field: &str) -> Result<String, Refusal> {
        match self.0.get(field) {
            Some(v) => id_value(v).ok_or_else(|| {
                Refusal::invalid(format!(
                    "`{field}` must be an id of 1 to 128 characters [A-Za-z0-9_.:@-]"
                ))
            }),
            None => Err(Refusal::invalid(format!("`{field}` is required"))),
        }
    }

    /// A required string field, sanitized, 1 to `max` characters.
    ///
    /// # Errors
    /// Missing, not a string, empty after sanitizing, or too long.
    pub fn text(&self, field: &str, max: usize) -> Result<String, Refusal> {
        match self.0.get(field) {
            Some(Value::String(s)) => {
                let clean = sanitize(s);
                let n = clean.chars().count();
                if n == 0 || n > max {
                    return Err(Refusal::invalid(format!(
                        "`{field}` must be 1 to {max} characters"
                    )));
                }
                Ok(clean)
            }
            Some(_) => Err(Refusal::invalid(format!("`{field}` must be a string"))),
            None => Err(Refusal::invalid(format!("`{field}` is required"))),
        }
    }

    /// An optional string field, sanitized, at most `max` characters.
    ///
    /// # Errors
    /// Present but not a string, or too long.
    pub fn opt_text(&self, field: &str, max: usize) -> Result<Option<String>, Refusal> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.text(field, max).map(Some),
        }
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field)
    }
}

/// An id given as a string (1 to 128 of `[A-Za-z0-9_.:@-]`) or a number, as a string.
pub fn id_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if valid_id(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Removes control characters other than newline and tab.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// Size of a JSON value once serialized, for payload limits.
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Payload {
        Payload(v.as_object().unwrap().clone())
    }

    #[test]
    fn ids_and_text() {
        let x =
            p(json!({"c": "conv-1", "n": 7, "bad": "a b", "t": "hi\u{0007}\n", "long": "xxxx"}));
        assert_eq!(x.id("c").unwrap(), "conv-1");
        assert_eq!(x.id("n").unwrap(), "7");
        assert_eq!(x.id("bad").unwrap_err().code, "invalid_payload");
        assert!(x
            .id("missing")
            .unwrap_err()
            .message
            .contains("`missing` is required"));
        assert_eq!(x.text("t", 10).unwrap(), "hi\n");
        assert!(x.text("long", 3).is_err());
        assert_eq!(x.opt_text("nope", 3).unwrap(), None);
    }

    #[test]
    fn payload_must_be_object() {
        assert!(Payload::from_args(&mut vec![json!(1)]).is_err());
        assert!(Payload::from_args(&mut vec![]).is_err());
        assert!(Payload::from_args(&mut vec![json!({})]).is_ok());
    }
}
