//! Dependency state for `/metrics` and `/ready`.

use super::*;

impl Server {
    /// Prometheus lines for Redis and Kafka.
    pub(crate) fn dependency_metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let c = &self.cluster;
        let line = |o: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        line(
            &mut o,
            "sio_redis_configured",
            "gauge",
            "1 when REDIS_URL is set.",
            u64::from(c.redis.is_some()),
        );
        line(
            &mut o,
            "sio_redis_up",
            "gauge",
            "1 while Redis is reachable.",
            u64::from(c.redis_live()),
        );
        if let Some(r) = &c.redis {
            let s = r.status();
            line(
                &mut o,
                "sio_redis_errors_total",
                "counter",
                "Redis connection failures and refused commands.",
                s.errors,
            );
            line(
                &mut o,
                "sio_redis_dropped_total",
                "counter",
                "Redis jobs dropped (queue full or unsent at shutdown).",
                s.dropped,
            );
            line(
                &mut o,
                "sio_redis_queued",
                "gauge",
                "Redis jobs waiting.",
                s.queued as u64,
            );
            line(
                &mut o,
                "sio_redis_publishes_total",
                "counter",
                "Broadcasts published for other nodes.",
                s.publishes,
            );
        }
        line(
            &mut o,
            "sio_remote_broadcasts_total",
            "counter",
            "Broadcasts received from other nodes or the emitter.",
            c.stats.remote_broadcasts,
        );
        line(
            &mut o,
            "sio_kafka_configured",
            "gauge",
            "1 when KAFKA_BROKERS is set.",
            u64::from(c.kafka.is_some()),
        );
        line(
            &mut o,
            "sio_kafka_up",
            "gauge",
            "1 while the Kafka session is up.",
            u64::from(c.kafka.is_some() && c.stats.kafka_up),
        );
        if let Some(k) = &c.kafka {
            let s = k.status();
            line(
                &mut o,
                "sio_kafka_consumed_total",
                "counter",
                "Kafka records consumed.",
                s.consumed,
            );
            line(
                &mut o,
                "sio_kafka_produced_total",
                "counter",
                "Client events produced to Kafka.",
                s.produced,
            );
            line(
                &mut o,
                "sio_kafka_produce_dropped_total",
                "counter",
                "Client events dropped (producer queue full or broken).",
                s.produce_dropped,
            );
            line(
                &mut o,
                "sio_kafka_errors_total",
                "counter",
                "Kafka errors.",
                s.errors,
            );
            line(
                &mut o,
                "sio_kafka_lag",
                "gauge",
                "Records behind the high watermark, over all partitions.",
                s.lag.max(0) as u64,
            );
        }
        line(
            &mut o,
            "sio_kafka_duplicates_total",
            "counter",
            "Kafka events skipped as duplicates by id.",
            c.stats.kafka_duplicates,
        );
        line(
            &mut o,
            "sio_kafka_bad_records_total",
            "counter",
            "Kafka records that were not valid envelopes.",
            c.stats.kafka_bad_records,
        );
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
