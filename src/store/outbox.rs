//! The outbox: client events the platform must persist, in order, bounded. Without Kafka the
//! platform drains it with `GET /api/outbox`; with Kafka a producer thread drains it.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::VecDeque;

/// One event, in one allocation: its name, key, user id and data (as JSON text) side by side
/// in `text`. The outbox holds up to 100,000 of them (one per connect and disconnect among
/// others), so this is ~110 bytes for a `user:online` where four strings and a boxed JSON
/// text cost ~240 (and a parsed object ~300 more).
#[derive(Debug, Clone)]
pub struct OutEvent {
    pub id: u64,
    pub at: u64,
    /// `event`, `key`, the user id and the data's JSON text, concatenated.
    text: Box<str>,
    event_len: u32,
    key_len: u32,
    /// `u32::MAX` when there is no user.
    user_len: u32,
}

impl OutEvent {
    pub fn event(&self) -> &str {
        &self.text[..self.event_len as usize]
    }

    /// Partition key: the conversation (or other room) id, else the user id.
    pub fn key(&self) -> &str {
        let start = self.event_len as usize;
        &self.text[start..start + self.key_len as usize]
    }

    pub fn user_id(&self) -> Option<&str> {
        let start = (self.event_len + self.key_len) as usize;
        (self.user_len != u32::MAX).then(|| &self.text[start..start + self.user_len as usize])
    }

    /// The data's JSON text.
    pub fn data(&self) -> &str {
        let user = if self.user_len == u32::MAX {
            0
        } else {
            self.user_len
        };
        &self.text[(self.event_len + self.key_len + user) as usize..]
    }
}

impl Serialize for OutEvent {
    /// `{"id", "event", "key", "userId", "data", "at"}`, the data as the JSON it was.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let data: &RawValue =
            serde_json::from_str(self.data()).map_err(serde::ser::Error::custom)?;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("event", self.event())?;
        m.serialize_entry("key", self.key())?;
        m.serialize_entry("userId", &self.user_id())?;
        m.serialize_entry("data", data)?;
        m.serialize_entry("at", &self.at)?;
        m.end()
    }
}

#[derive(Debug)]
pub struct Outbox {
    events: VecDeque<OutEvent>,
    cap: usize,
    next_id: u64,
    /// Events dropped because nobody drained the outbox in time.
    pub dropped: u64,
}

impl Outbox {
    pub fn new(cap: usize) -> Self {
        Outbox {
            events: VecDeque::new(),
            cap,
            next_id: 1,
            dropped: 0,
        }
    }

    /// The id the next pushed event gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn push(
        &mut self,
        event: &str,
        key: String,
        user_id: Option<String>,
        data: Value,
        at: u64,
    ) -> u64 {
        if self.events.len() >= self.cap {
            self.events.pop_front();
            self.dropped += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        // Serializing a `Value` cannot fail; `null` keeps the event if it ever did.
        let data = serde_json::to_string(&data).unwrap_or_else(|_| "null".into());
        let user = user_id.as_deref().unwrap_or("");
        let mut text = String::with_capacity(event.len() + key.len() + user.len() + data.len());
        for part in [event, &key, user, &data] {
            text.push_str(part);
        }
        // Every part is far below 4 GiB (a packet is at most `--max-payload`).
        let len = |x: &str| u32::try_from(x.len()).unwrap_or(u32::MAX - 1);
        self.events.push_back(OutEvent {
            id,
            at,
            event_len: len(event),
            key_len: len(&key),
            user_len: user_id.as_deref().map_or(u32::MAX, len),
            text: text.into_boxed_str(),
        });
        id
    }

    /// Events with an id above `after`, at most `limit`.
    pub fn read(&self, after: u64, limit: usize) -> Vec<&OutEvent> {
        let start = self.events.partition_point(|e| e.id <= after);
        self.events.range(start..).take(limit).collect()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounded_and_read_after() {
        let mut o = Outbox::new(3);
        for i in 0..5 {
            o.push("message:new", "c1".into(), None, json!(i), 0);
        }
        assert_eq!(o.dropped, 2);
        let ids: Vec<u64> = o.read(0, 10).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        let ids: Vec<u64> = o.read(3, 1).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![4]);
    }

    #[test]
    fn data_reads_back_as_the_json_it_was() {
        let mut o = Outbox::new(3);
        let data = json!({"userId": "u1", "lastSeen": null, "n": [1, 2]});
        o.push(
            "user:online",
            "u1".into(),
            Some("u1".into()),
            data.clone(),
            7,
        );
        o.push("message:new", "c9".into(), None, json!("x"), 8);
        let out = serde_json::to_value(o.read(0, 2)).unwrap();
        assert_eq!(out[0]["data"], data);
        assert_eq!(out[0]["userId"], "u1");
        assert_eq!(out[0]["event"], "user:online");
        assert_eq!(out[0]["key"], "u1");
        assert_eq!(
            (out[0]["id"].as_u64(), out[0]["at"].as_u64()),
            (Some(1), Some(7))
        );
        assert_eq!(out[1]["userId"], Value::Null);
        assert_eq!(
            (out[1]["key"].as_str(), out[1]["data"].as_str()),
            (Some("c9"), Some("x"))
        );
    }
}
