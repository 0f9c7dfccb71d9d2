//! The JSON envelope of a record on the consumed topics (`realtime-events` by default).
//!
//! ```text
//! {"id":"evt-1","event":"notification:new","users":["42",7],"rooms":["feed"],
//!  "except":[],"namespace":"/","data":{"text":"hi"}}
//! ```
//!
//! `id` and `event` are required non-empty strings (the loop deduplicates by `id`); the target
//! lists may be absent or `null`; `users` may hold numbers, which become their decimal strings
//! (backends often keep user ids as integers). Unknown fields are ignored so producers can add
//! fields before this server reads them. Targeting rules are the same as `/api/emit`'s and are
//! applied by the loop, not here.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

/// One event to deliver, as a backend put it on the topic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    /// Unique id of the event: the deduplication key.
    pub id: String,
    /// Socket.IO event name.
    pub event: String,
    /// Rooms to deliver to.
    #[serde(default, deserialize_with = "strings")]
    pub rooms: Vec<String>,
    /// Users to deliver to (their `user:<id>` rooms).
    #[serde(default, deserialize_with = "ids")]
    pub users: Vec<String>,
    /// Rooms (or socket ids) to leave out.
    #[serde(default, deserialize_with = "strings")]
    pub except: Vec<String>,
    /// Namespace; `None` means the main namespace `/`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Event payload; `None` when absent or `null`.
    #[serde(default)]
    pub data: Option<Value>,
}

/// Parses and checks one record value.
///
/// # Errors
/// A message naming the first problem: not JSON, not an object, a missing or empty `id` or
/// `event`, or a target list with the wrong element type.
pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, String> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if env.id.is_empty() {
        return Err("`id` must not be empty".into());
    }
    if env.event.is_empty() {
        return Err("`event` must not be empty".into());
    }
    Ok(env)
}

/// A list of strings; `null` is the empty list.
fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A list of ids given as strings or integers; `null` is the empty list.
fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let raw = Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default();
    raw.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            other => Err(de::Error::custom(format!(
                "`users` entries must be strings or integers, got {other}"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_envelope() {
        let env = parse_envelope(
            br#"{"id":"e1","event":"notification:new","rooms":["feed"],"users":["42"],
                "except":["sid1"],"namespace":"/chat","data":{"text":"hi"}}"#,
        )
        .unwrap();
        assert_eq!(
            env,
            Envelope {
                id: "e1".into(),
                event: "notification:new".into(),
                rooms: vec!["feed".into()],
                users: vec!["42".into()],
                except: vec!["sid1".into()],
                namespace: Some("/chat".into()),
                data: Some(json!({"text": "hi"})),
            }
        );
    }

    #[test]
    fn minimal_envelope_defaults_targets_and_data() {
        let env = parse_envelope(br#"{"id":"e1","event":"x"}"#).unwrap();
        assert!(env.rooms.is_empty() && env.users.is_empty() && env.except.is_empty());
        assert_eq!(env.namespace, None);
        assert_eq!(env.data, None);
    }

    #[test]
    fn null_lists_are_empty() {
        let env =
            parse_envelope(br#"{"id":"e1","event":"x","rooms":null,"users":null,"except":null}"#)
                .unwrap();
        assert!(env.rooms.is_empty() && env.users.is_empty() && env.except.is_empty());
    }

    #[test]
    fn numeric_user_ids_become_strings() {
        let env =
            parse_envelope(br#"{"id":"e1","event":"x","users":[42,"7",18446744073709551615,-3]}"#)
                .unwrap();
        assert_eq!(env.users, ["42", "7", "18446744073709551615", "-3"]);
    }

    #[test]
    fn fractional_or_object_user_ids_are_rejected() {
        assert!(parse_envelope(br#"{"id":"e1","event":"x","users":[1.5]}"#).is_err());
        assert!(parse_envelope(br#"{"id":"e1","event":"x","users":[{}]}"#).is_err());
    }

    #[test]
    fn numeric_rooms_are_rejected() {
        assert!(parse_envelope(br#"{"id":"e1","event":"x","rooms":[1]}"#).is_err());
    }

    #[test]
    fn missing_or_empty_id_and_event_are_rejected() {
        let missing_id = parse_envelope(br#"{"event":"x"}"#).unwrap_err();
        assert!(missing_id.contains("id"), "{missing_id}");
        let missing_event = parse_envelope(br#"{"id":"e1"}"#).unwrap_err();
        assert!(missing_event.contains("event"), "{missing_event}");
        assert!(parse_envelope(br#"{"id":"","event":"x"}"#).is_err());
        assert!(parse_envelope(br#"{"id":"e1","event":""}"#).is_err());
        assert!(parse_envelope(br#"{"id":5,"event":"x"}"#).is_err());
    }

    #[test]
    fn not_json_or_not_an_object_is_an_error_not_a_panic() {
        assert!(parse_envelope(b"").is_err());
        assert!(parse_envelope(b"\xff\xfe").is_err());
        assert!(parse_envelope(b"[1,2]").is_err());
        assert!(parse_envelope(b"{\"id\":\"e1\",\"event\":\"x\"").is_err());
    }

    #[test]
    fn unknown_fields_are_ignored_and_null_data_is_none() {
        let env = parse_envelope(br#"{"id":"e1","event":"x","data":null,"v":2}"#).unwrap();
        assert_eq!(env.data, None);
    }
}
