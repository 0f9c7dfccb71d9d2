//! The pub/sub thread: one subscribed connection, read with a short timeout so it sees the stop
//! flag; re-subscribes after every reconnect.

use std::sync::Arc;
use std::time::Duration;

use super::shared::{backoff, sleep_unless_stopping, Link, Shared};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Read timeout while subscribing (the confirmations are immediate on a live server).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Read timeout while waiting for messages: how often the stop flag is checked. The `redis`
/// parser keeps a partly read frame across timeouts, so a timeout never loses data.
const READ_TICK: Duration = Duration::from_millis(200);

pub(crate) struct PubSubThread {
    client: redis::Client,
    patterns: Vec<String>,
    channels: Vec<String>,
    shared: Arc<Shared>,
    backoff: crate::bridge::Backoff,
}

impl PubSubThread {
    pub fn new(
        client: redis::Client,
        patterns: Vec<String>,
        channels: Vec<String>,
        shared: Arc<Shared>,
    ) -> Self {
        PubSubThread {
            client,
            patterns,
            channels,
            shared,
            backoff: backoff(),
        }
    }

    pub fn run(mut self) {
        while !self.shared.stopping() {
            let reason = match self.session() {
                Ok(()) => return,
                Err(e) => e,
            };
            self.shared.record_error(reason.clone());
            self.shared.set_link(Link::PubSub, false, &reason);
            let delay = self.backoff.next_delay();
            if sleep_unless_stopping(&self.shared, delay) {
                return;
            }
        }
    }

    /// One connection's life: connect, subscribe, read until an error (`Err`) or stop (`Ok`).
    fn session(&mut self) -> Result<(), String> {
        let mut con = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| format!("pubsub connect: {e}"))?;
        con.set_write_timeout(Some(SUBSCRIBE_TIMEOUT))
            .map_err(|e| format!("pubsub: {e}"))?;
        let mut ps = con.as_pubsub();
        ps.set_read_timeout(Some(SUBSCRIBE_TIMEOUT))
            .map_err(|e| format!("pubsub: {e}"))?;
        if !self.patterns.is_empty() {
            ps.psubscribe(&self.patterns)
                .map_err(|e| format!("psubscribe: {e}"))?;
        }
        if !self.channels.is_empty() {
            ps.subscribe(&self.channels)
                .map_err(|e| format!("subscribe: {e}"))?;
        }
        ps.set_read_timeout(Some(READ_TICK))
            .map_err(|e| format!("pubsub: {e}"))?;
        log::debug!(
            "redis: subscribed to {} patterns, {} channels",
            self.patterns.len(),
            self.channels.len()
        );
        self.backoff.reset();
        self.shared.set_link(Link::PubSub, true, "");
        loop {
            if self.shared.stopping() {
                return Ok(());
            }
            match ps.get_message() {
                Ok(msg) => {
                    let channel = msg
                        .get_channel::<Vec<u8>>()
                        .unwrap_or_else(|_| msg.get_channel_name().as_bytes().to_vec());
                    self.shared
                        .send_message(channel, msg.get_payload_bytes().to_vec());
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(format!("pubsub read: {e}")),
            }
        }
    }
}
