//! The `Stores` part: the in-memory stores of src/store, sized from the configuration. Each
//! store is plain data with its own verbs; Redis mirroring is done by the cluster code next to
//! the calls that change them (see `cluster::mirror`).

use crate::config::Config;
use crate::store::{dedup, grants, mailbox, outbox, presence, ratelimit, recovery};
use std::time::Duration;

/// Client events kept for the platform to drain when no Kafka producer does.
const OUTBOX_CAP: usize = 100_000;
/// Broadcasts kept for connection state recovery.
const RECOVERY_MAX_PACKETS: usize = 50_000;
/// Window in which a repeated client event id is a retry.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);
const DEDUP_CAP: usize = 200_000;

/// Grants, presence, mailbox, outbox, recovery, dedup and rate limits.
#[derive(Debug)]
pub struct Stores {
    pub grants: grants::Grants,
    pub presence: presence::Presence,
    pub mailbox: mailbox::Mailbox,
    pub outbox: outbox::Outbox,
    pub recovery: recovery::Recovery,
    pub dedup: dedup::Dedup,
    pub limits: ratelimit::Limits,
}

impl Stores {
    pub fn new(config: &Config) -> Self {
        Stores {
            grants: Default::default(),
            presence: Default::default(),
            mailbox: mailbox::Mailbox::new(config.mailbox_size, config.mailbox_ttl),
            outbox: outbox::Outbox::new(OUTBOX_CAP),
            recovery: recovery::Recovery::new(config.recovery_window, RECOVERY_MAX_PACKETS),
            dedup: dedup::Dedup::new(DEDUP_WINDOW, DEDUP_CAP),
            limits: ratelimit::Limits::default().scaled(config.rate_limit_scale),
        }
    }
}
