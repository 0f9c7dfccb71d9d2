//! In-memory stores behind small interfaces: room grants, presence, the offline notification
//! mailbox, the outbox of client events to persist, connection-state recovery, client event
//! id deduplication and rate limits. Each is plain data owned by the loop (`server::stores`);
//! the cluster code beside the server's calls that change them mirrors grants, presence,
//! memberships, recovery sessions and the mailbox to Redis when it is configured.

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
