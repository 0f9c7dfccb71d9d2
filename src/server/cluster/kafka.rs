//! Kafka events in (envelopes delivered locally, once per id) and client events out.

use super::*;
use crate::server::deliver::{Emit, Origin};

impl Server {
    pub(super) fn on_kafka_event(&mut self, ev: KafkaEvent) {
        match ev {
            KafkaEvent::Connected => {
                if !self.cluster.stats.kafka_up {
                    log::info!("kafka connected");
                }
                self.cluster.stats.kafka_up = true;
            }
            KafkaEvent::Disconnected(why) => {
                if self.cluster.stats.kafka_up {
                    log::debug!("kafka session down ({why}); the kafka thread reconnects and resumes from committed offsets");
                }
                self.cluster.stats.kafka_up = false;
            }
            KafkaEvent::Record {
                topic,
                partition,
                offset,
                value,
            } => {
                self.on_kafka_record(&value);
                // Handed to the sockets (or refused for good): the offset may be committed.
                if let Some(k) = &self.cluster.kafka {
                    k.applied(&topic, partition, offset);
                }
            }
        }
    }

    pub(super) fn on_kafka_record(&mut self, value: &[u8]) {
        let env = match crate::kafka::envelope::parse_envelope(value) {
            Ok(e) => e,
            Err(e) => {
                self.cluster.stats.kafka_bad_records += 1;
                log::warn!("skipping a kafka record that is not an event envelope: {e}");
                return;
            }
        };
        if !self
            .cluster
            .kafka_seen
            .first_time("", &env.id, Instant::now())
        {
            self.cluster.stats.kafka_duplicates += 1;
            return;
        }
        let Some(ns) = env
            .namespace
            .as_deref()
            .map_or(Some(0), |n| self.sockets.ns(n))
        else {
            self.cluster.stats.kafka_bad_records += 1;
            log::warn!("kafka event {} names an unknown namespace", env.id);
            return;
        };
        if env.rooms.is_empty() && env.users.is_empty() {
            self.cluster.stats.kafka_bad_records += 1;
            log::warn!("kafka event {} names no target", env.id);
            return;
        }
        // Every node consumes every event, so delivery is local only.
        let e = Emit {
            ns,
            event: env.event,
            args: env.data.into_iter().collect(),
            rooms: env.rooms,
            users: env.users,
            except: env.except,
            origin: Origin::Kafka { id: env.id },
            ..Emit::default()
        };
        self.deliver(&e);
    }

    /// Hands a serialized client event to Kafka when configured.
    pub(crate) fn produce_client_event(&mut self, key: &str, value: Vec<u8>) {
        if let Some(k) = &self.cluster.kafka {
            if let Err(e) = k.produce(key.to_owned(), value) {
                log::debug!("client event not produced: {e}");
            }
        }
    }
}
