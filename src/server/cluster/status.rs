//! Dependency state for `/metrics` and `/ready`.

use super::*;

impl Server {
    /// Prometheus lines for Redis and Kafka: one row per metric, rows of an unconfigured
    /// dependency's helper left out.
    pub(crate) fn dependency_metrics(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.cluster;
        let redis = c.redis.as_ref().map(RedisHandle::status);
        let kafka = c.kafka.as_ref().map(KafkaHandle::status);
        let r = |f: fn(&crate::redis_bridge::RedisStatus) -> u64| redis.as_ref().map(f);
        let k = |f: fn(&crate::kafka::KafkaStatus) -> u64| kafka.as_ref().map(f);
        #[rustfmt::skip]
        let rows: [(&str, &str, &str, Option<u64>); 25] = [
            ("sio_redis_configured", "gauge", "1 when REDIS_URL is set.", Some(u64::from(c.redis.is_some()))),
            ("sio_redis_up", "gauge", "1 while Redis is reachable.", Some(u64::from(c.redis_live()))),
            ("sio_redis_errors_total", "counter", "Redis connection failures and refused commands.", r(|s| s.errors)),
            ("sio_redis_dropped_total", "counter", "Redis jobs dropped (queue full or unsent at shutdown).", r(|s| s.dropped)),
            ("sio_redis_queued", "gauge", "Redis jobs waiting.", r(|s| s.queued as u64)),
            ("sio_redis_publishes_total", "counter", "Broadcasts published for other nodes.", r(|s| s.publishes)),
            ("sio_remote_broadcasts_total", "counter", "Broadcasts received from other nodes or the emitter.", Some(c.stats.remote_broadcasts)),
            ("sio_remote_server_side_emits_total", "counter", "serverSideEmit requests received from Node nodes (no server-side handlers run).", Some(c.stats.server_side_emits)),
            ("sio_remote_requests_answered_total", "counter", "Adapter requests from Node nodes answered (fetchSockets, serverSideEmit acks, broadcast client counts, forwarded client acks).", Some(c.stats.requests_answered)),
            ("sio_remote_ack_requests_waiting", "gauge", "Broadcasts with acks from Node nodes still waiting for client acks.", Some(c.acks.len() as u64)),
            ("sio_recovery_fallbacks_total", "counter", "Recoveries served in-process because Redis was configured but down.", Some(c.stats.recovery_fallbacks)),
            ("sio_recovery_redis_restored_total", "counter", "Sockets recovered from a session in Redis.", Some(c.stats.recovered_redis)),
            ("sio_recovery_refused_total", "counter", "Recoveries refused: the session belongs to another user.", Some(c.stats.recovery_refused)),
            ("sio_recovery_logged_total", "counter", "Broadcasts this node logged in the Redis recovery log.", Some(c.log.logged)),
            ("sio_recovery_unlogged_total", "counter", "Broadcasts from the emitter or Node nodes delivered without an offset (not logged in time).", Some(c.log.unlogged)),
            ("sio_recovery_logger", "gauge", "1 while this node holds the lease to log the emitter's broadcasts.", Some(u64::from(c.log.lease == rlog::Lease::Active))),
            ("sio_kafka_configured", "gauge", "1 when KAFKA_BROKERS is set.", Some(u64::from(c.kafka.is_some()))),
            ("sio_kafka_up", "gauge", "1 while the Kafka session is up.", Some(u64::from(c.kafka.is_some() && c.stats.kafka_up))),
            ("sio_kafka_consumed_total", "counter", "Kafka records consumed.", k(|s| s.consumed)),
            ("sio_kafka_produced_total", "counter", "Client events produced to Kafka.", k(|s| s.produced)),
            ("sio_kafka_produce_dropped_total", "counter", "Client events dropped (producer queue full or broken).", k(|s| s.produce_dropped)),
            ("sio_kafka_errors_total", "counter", "Kafka errors.", k(|s| s.errors)),
            ("sio_kafka_lag", "gauge", "Records behind the high watermark, over all partitions.", k(|s| s.lag.max(0) as u64)),
            ("sio_kafka_duplicates_total", "counter", "Kafka events skipped as duplicates by id.", Some(c.stats.kafka_duplicates)),
            ("sio_kafka_bad_records_total", "counter", "Kafka records that were not valid envelopes.", Some(c.stats.kafka_bad_records)),
        ];
        let mut o = String::new();
        for (name, kind, help, value) in rows {
            if let Some(v) = value {
                let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
            }
        }
        o
    }

    /// `/ready` body: serving, plus each dependency's state.
    pub(crate) fn readiness(&self) -> Value {
        let c = &self.cluster;
        let dep = |configured: bool, up: bool| {
            if !configured {
                "off"
            } else if up {
                "up"
            } else {
                "down"
            }
        };
        let mut v = json!({
            "status": if self.shutting_down { "shutting down" } else { "ready" },
            "redis": dep(c.redis.is_some(), c.redis_live()),
            "kafka": dep(c.kafka.is_some(), c.stats.kafka_up),
        });
        if let Some(k) = &c.kafka {
            v["kafkaLag"] = json!(k.status().lag);
        }
        v
    }
}
