//! The outbox: client events the platform must persist, in order, bounded. Without Kafka the
//! platform drains it with `GET /api/outbox`; with Kafka a producer thread drains it.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::VecDeque;

#[derive(Debug, Clone, Serialize)]
pub struct OutEvent {
    pub id: u64,
    pub event: String,
    /// Partition key: the conversation (or other room) id, else the user id.
    pub key: String,
    #[serde(rename = "userId")]
    pub user_id: Option<String>,
    /// Kept as its JSON text: a few dozen bytes, where a parsed object costs an ordered map
    /// (~300 bytes for `user:online`'s two fields); the outbox holds up to 100,000 of them,
    /// one per connect and disconnect among others.
    pub data: Box<RawValue>,
    pub at: u64,
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
        let data = serde_json::value::to_raw_value(&data)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("valid JSON"));
        self.events.push_back(OutEvent {
            id,
            event: event.to_owned(),
            key,
            user_id,
            data,
            at,
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
        let out = serde_json::to_value(o.read(0, 1)).unwrap();
        assert_eq!(out[0]["data"], data);
        assert_eq!(out[0]["userId"], "u1");
    }
}
