//! Kafka events in (envelopes delivered locally, once per id) and client events out.

use super::*;

impl Server {
    pub(super) fn on_kafka_event(&mut self, ev: KafkaEvent) {
        match ev {
            KafkaEvent::Connected => {
                if !self.cluster.kafka_up {
                    log::info!("kafka connected");
                }
                self.cluster.kafka_up = true;
            }
            KafkaEvent::Disconnected(why) => {
                if self.cluster.kafka_up {
                    log::debug!("kafka session down ({why}); the kafka thread reconnects and resumes from committed offsets");
                }
                self.cluster.kafka_up = false;
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
                self.cluster.kafka_bad_records += 1;
                log::warn!("skipping a kafka record that is not an event envelope: {e}");
                return;
            }
        };
        if !self
            .cluster
            .kafka_seen
            .first_time("", &env.id, Instant::now())
        {
            self.cluster.kafka_duplicates += 1;
            return;
        }
        let Some(ns) = env.namespace.as_deref().map_or(Some(0), |n| {
            self.namespaces.iter().position(|x| x.name == n)
        }) else {
            self.cluster.kafka_bad_records += 1;
            log::warn!("kafka event {} names an unknown namespace", env.id);
            return;
        };
        let mut rooms = env.rooms;
        rooms.extend(env.users.iter().map(|u| format!("user:{u}")));
        if rooms.is_empty() {
            self.cluster.kafka_bad_records += 1;
            log::warn!("kafka event {} names no target", env.id);
            return;
        }
        if env.event == "quiz:update" {
            if let Some(d) = &env.data {
                self.quiz_control(d);
            }
        }
        if env.event == "notification:new" && ns == 0 {
            if let Some(d) = &env.data {
                self.queue_offline(&rooms, &env.except, d, Some(&env.id));
            }
        }
        let args: Vec<Value> = env.data.into_iter().collect();
        // Every node consumes every event, so delivery is local only.
        let target = Target {
            rooms: &rooms,
            except: &env.except,
            local: true,
            ..Target::default()
        };
        self.broadcast_event(ns, &env.event, args, Vec::<Bytes>::new(), target);
    }

    /// Hands a client event to Kafka when configured.
    pub(crate) fn produce_client_event(&mut self, key: &str, value: &Value) {
        if let Some(k) = &self.cluster.kafka {
            if let Err(e) = k.produce(key.to_owned(), value.to_string().into_bytes()) {
                log::debug!("client event not produced: {e}");
            }
        }
    }
}
