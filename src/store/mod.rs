//! In-memory stores behind small interfaces: room grants, presence, the offline notification
//! mailbox, the outbox of client events to persist, connection-state recovery, client event
//! id deduplication and rate limits. Each is plain data owned by the loop; the Redis/Kafka
//! work mirrors them without changing their callers.

pub mod dedup;
pub mod grants;
pub mod mailbox;
pub mod outbox;
pub mod presence;
pub mod ratelimit;
pub mod recovery;

/// Milliseconds since the Unix epoch (wall clock, for timestamps sent to clients).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
