//! The Kafka thread against a real Kafka-protocol broker (Tansu): each record reaches the loop
//! exactly once with its partition and offset; applied offsets are committed (periodically and
//! at shutdown) and a new handle in the same group resumes right after them; a group without a
//! commit starts at the latest offset (or the earliest); client events land on their key's
//! partition; a full produce queue refuses and counts; shutdown is bounded even when the loop
//! stopped draining; a broker that dies and comes back is reported (Disconnected, then
//! Connected) and consumption resumes without a busy loop.
//!
//! Needs `tansu` (see `support::tansu::INSTALL_HINT`); without it these tests fail.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sio_edge::kafka::{self, partition_for, KafkaEvent, ProduceError};
use support::tansu::{free_port, Tansu};
use support::{committed, config, envelope, eventually, Rec, TestClient, TestLoop, CONNECT, RECV};

const TOPIC: &str = "realtime-events";

#[test]
fn records_arrive_once_with_their_partition_and_offset() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 3);
    let kc = TestClient::connect(&broker.addr());
    let mut lp = TestLoop::spawn(config(&broker.addr(), &[TOPIC], "node-once"));
    lp.wait_connected(CONNECT);

    let mut expected = BTreeSet::new();
    for p in 0..3 {
        let values: Vec<_> = (0..5).map(|i| envelope(&format!("e-{p}-{i}"))).collect();
        let offsets = kc.produce(TOPIC, p, values.clone());
        for (off, v) in offsets.into_iter().zip(values) {
            expected.insert(Rec {
                topic: TOPIC.to_owned(),
                partition: p,
                offset: off,
                value: v,
            });
        }
    }
    let got = lp.records(15, RECV);
    let unique: BTreeSet<_> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "a record arrived twice: {got:?}");
    assert_eq!(unique, expected);
    for p in 0..3 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "order in {p}: {offsets:?}"
        );
    }
    let extra = lp.quiet(Duration::from_millis(1500));
    assert!(extra.is_empty(), "redelivered: {extra:?}");
    let status = lp.handle.status();
    assert!(status.connected);
    assert_eq!(status.consumed, 15);
    eventually("lag drops to 0", RECV, || lp.handle.status().lag == 0);
    lp.handle.shutdown();
}

#[test]
fn a_new_handle_resumes_right_after_the_applied_offsets() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 2);
    let kc = TestClient::connect(&broker.addr());
    for p in 0..2 {
        kc.produce(
            TOPIC,
            p,
            (0..10).map(|i| envelope(&format!("a-{p}-{i}"))).collect(),
        );
    }
    let mut cfg = config(&broker.addr(), &[TOPIC], "node-resume");
    cfg.start_at_latest = false;

    let mut first = TestLoop::spawn(cfg.clone());
    let got = first.records(20, RECV);
    let applied: Vec<Rec> = got.iter().filter(|r| r.offset < 6).cloned().collect();
    assert_eq!(applied.len(), 12);
    first.apply(&applied);
    // Committed by the periodic commit, while the handle runs: offset + 1 of the last applied.
    for p in 0..2 {
        eventually("periodic commit of offset 6", RECV, || {
            committed(&broker.addr(), "node-resume", TOPIC, p) == 6
        });
    }
    first.handle.shutdown();

    for p in 0..2 {
        kc.produce(
            TOPIC,
            p,
            (10..13).map(|i| envelope(&format!("a-{p}-{i}"))).collect(),
        );
    }
    let mut second = TestLoop::spawn(cfg);
    let got = second.records(14, RECV);
    for p in 0..2 {
        let offsets: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, (6..13).collect::<Vec<_>>(), "partition {p}");
    }
    assert!(second.quiet(Duration::from_millis(1000)).is_empty());
    // Applying everything and shutting down commits the end (the final commit).
    second.apply(&got);
    second.handle.shutdown();
    for p in 0..2 {
        assert_eq!(committed(&broker.addr(), "node-resume", TOPIC, p), 13);
    }
}

#[test]
fn without_a_committed_offset_a_group_starts_at_the_latest_or_the_earliest() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 1);
    let kc = TestClient::connect(&broker.addr());
    kc.produce(
        TOPIC,
        0,
        (0..5).map(|i| envelope(&format!("old-{i}"))).collect(),
    );

    let mut latest = TestLoop::spawn(config(&broker.addr(), &[TOPIC], "node-latest"));
    latest.wait_connected(CONNECT);
    // The start position is committed at once, so an outage later resumes from it.
    assert_eq!(committed(&broker.addr(), "node-latest", TOPIC, 0), 5);
    kc.produce(
        TOPIC,
        0,
        (0..3).map(|i| envelope(&format!("new-{i}"))).collect(),
    );
    let got = latest.records(3, RECV);
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [5, 6, 7]);
    assert!(latest.quiet(Duration::from_millis(1000)).is_empty());
    latest.handle.shutdown();

    let mut cfg = config(&broker.addr(), &[TOPIC], "node-earliest");
    cfg.start_at_latest = false;
    let mut earliest = TestLoop::spawn(cfg);
    let got = earliest.records(8, RECV);
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    earliest.handle.shutdown();
}

#[test]
fn client_events_land_on_their_keys_partition_in_order() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 1);
    broker.create_topic("client-events", 4);
    let lp = {
        let mut lp = TestLoop::spawn(config(&broker.addr(), &[TOPIC], "node-produce"));
        lp.wait_connected(CONNECT);
        lp
    };
    let keys = [
        "conversation:1",
        "conversation:2",
        "user:42",
        "user:7",
        "conversation:99",
    ];
    let mut sent: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for i in 0..40 {
        let key = keys[i % keys.len()];
        let value = format!(r#"{{"event":"message:new","seq":{i}}}"#).into_bytes();
        lp.handle
            .produce(key.to_owned(), value.clone())
            .expect("queue has room");
        sent.entry(key).or_default().push(value);
    }
    eventually("40 client events produced", RECV, || {
        lp.handle.status().produced == 40
    });
    let kc = TestClient::connect(&broker.addr());
    let all = kc.read_all("client-events", 4);
    assert_eq!(all.len(), 40);
    for (key, values) in &sent {
        let on: Vec<_> = all
            .iter()
            .filter(|r| r.key.as_deref() == Some(key.as_bytes()))
            .collect();
        let partitions: BTreeSet<i32> = on.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), 1, "{key} spread over {partitions:?}");
        let p = *partitions.first().unwrap();
        assert_eq!(p as u32, partition_for(key.as_bytes(), 4), "{key}");
        let got: Vec<&Vec<u8>> = on.iter().map(|r| &r.value).collect();
        assert_eq!(got, values.iter().collect::<Vec<_>>(), "order of {key}");
    }
    let s = lp.handle.status();
    assert_eq!((s.produced, s.produce_dropped), (40, 0));
    lp.handle.shutdown();
}

#[test]
fn a_full_produce_queue_refuses_counts_and_never_blocks() {
    // No broker at all: the queue cannot drain.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut cfg = config(&nowhere, &[TOPIC], "node-full");
    cfg.produce_queue = 4;
    let mut lp = TestLoop::spawn(cfg);
    let started = Instant::now();
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..100 {
        match lp.handle.produce(format!("user:{i}"), b"{}".to_vec()) {
            Ok(()) => accepted += 1,
            Err(ProduceError::Full) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "produce blocked"
    );
    // The queue holds 4; the producer may hold one more in its batch.
    assert!((4..=5).contains(&accepted), "accepted {accepted}");
    let s = lp.handle.status();
    assert_eq!(s.produce_dropped, refused);
    assert_eq!(s.produced, 0);
    assert!(!s.connected);
    // Nothing connects, so nothing is reported as connected.
    assert!(lp.quiet(Duration::from_millis(300)).is_empty());
    eventually("connection errors counted", RECV, || {
        lp.handle.status().errors > 0
    });
    let stopping = Instant::now();
    lp.handle.shutdown();
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

#[test]
fn shutdown_is_bounded_when_the_loop_stops_draining() {
    let broker = Tansu::start();
    broker.create_topic(TOPIC, 1);
    let kc = TestClient::connect(&broker.addr());
    let n = kafka::EVENT_CAPACITY + 500;
    kc.produce_batch(
        TOPIC,
        0,
        (0..n).map(|i| envelope(&format!("b-{i}"))).collect(),
    );
    let mut cfg = config(&broker.addr(), &[TOPIC], "node-stuck");
    cfg.start_at_latest = false;
    let lp = TestLoop::spawn(cfg);
    // The thread fills the event channel (`Connected` and then records) and waits for the
    // loop, which never drains.
    let full = kafka::EVENT_CAPACITY as u64 - 1;
    eventually("event channel full", RECV, || {
        lp.handle.status().consumed >= full
    });
    assert_eq!(lp.handle.status().consumed, full);
    let stopping = Instant::now();
    lp.handle.shutdown();
    assert!(
        stopping.elapsed() < kafka::SHUTDOWN_WAIT,
        "shutdown took {:?}",
        stopping.elapsed()
    );
}

#[test]
fn a_broker_restart_is_reported_and_consumption_resumes_without_a_busy_loop() {
    let mut broker = Tansu::start();
    broker.create_topic(TOPIC, 2);
    broker.create_topic("client-events", 1);
    let kc = TestClient::connect(&broker.addr());
    let mut lp = TestLoop::spawn(config(&broker.addr(), &[TOPIC], "node-restart"));
    lp.wait_connected(CONNECT);
    kc.produce(TOPIC, 1, vec![envelope("before")]);
    let got = lp.records(1, RECV);
    assert_eq!(got[0].value, envelope("before"));
    lp.apply(&got);
    drop(kc);

    broker.kill();
    lp.wait_for("Disconnected", RECV, |e| {
        matches!(e, KafkaEvent::Disconnected(_))
    });
    assert!(!lp.handle.status().connected);
    // Down for a while: reconnect attempts back off (200 ms doubling, jittered), so only a
    // handful of errors accumulate; a busy loop would count thousands.
    let errors_at_outage = lp.handle.status().errors;
    let outage = Instant::now();
    assert!(lp.quiet(Duration::from_secs(3)).is_empty());
    let errors = lp.handle.status().errors - errors_at_outage;
    assert!(
        errors <= 15,
        "{errors} errors in {:?} of outage",
        outage.elapsed()
    );
    // Client events produced during the outage wait in the queue.
    lp.handle
        .produce("user:1".to_owned(), b"during-outage".to_vec())
        .expect("queue has room");

    // In-memory storage: the new broker is empty; topics come back, offsets do not.
    broker.restart();
    broker.create_topic(TOPIC, 2);
    broker.create_topic("client-events", 1);
    lp.wait_connected(CONNECT);
    assert!(lp.handle.status().connected);
    let kc = TestClient::connect(&broker.addr());
    // The topic may have been recreated just after the handle connected (then it is picked up
    // by the metadata refresh); probe until one arrives.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 0;
    let first = loop {
        assert!(
            Instant::now() < deadline,
            "no record after the restart; {:?}",
            lp.handle.status()
        );
        kc.produce(TOPIC, n % 2, vec![envelope(&format!("after-{n}"))]);
        n += 1;
        let got = lp.quiet(Duration::from_millis(500));
        if let Some(r) = got.into_iter().next() {
            break r;
        }
    };
    assert!(String::from_utf8_lossy(&first.value).contains("after-"));
    eventually(
        "queued client event produced after the restart",
        RECV,
        || lp.handle.status().produced >= 1,
    );
    let produced = kc.read_all("client-events", 1);
    assert!(produced.iter().any(|r| r.value == b"during-outage"));
    lp.handle.shutdown();
}
