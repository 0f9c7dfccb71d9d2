//! The whole Kafka flow works against a broker that refuses what Apache Kafka 4 removed
//! (KIP-896): all traffic goes through a proxy that closes the connection on Produce<3,
//! Fetch<4, ListOffsets<1, OffsetCommit<2 or OffsetFetch<1, and the broker advertises the
//! proxy, so no request bypasses it. Consume, commit, resume and produce all pass, and the
//! proxy refused nothing. A control test shows the proxy does refuse an old request.
//!
//! Needs `tansu` (see `support::tansu::INSTALL_HINT`); without it these tests fail.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::tansu::{free_port, Tansu};
use support::v4proxy::{
    kafka4_min_version, V4Proxy, FETCH, FIND_COORDINATOR, LIST_OFFSETS, OFFSET_COMMIT,
    OFFSET_FETCH, PRODUCE,
};
use support::{committed, config, envelope, eventually, TestClient, TestLoop, CONNECT, RECV};

const TOPIC: &str = "realtime-events";

#[test]
fn produce_consume_commit_and_resume_work_through_a_kafka_4_gate() {
    let broker_port = free_port();
    let proxy = V4Proxy::start(broker_port);
    let broker = Tansu::start_on(broker_port, proxy.port);
    broker.create_topic(TOPIC, 2);
    broker.create_topic("client-events", 2);
    let kc = TestClient::connect(&proxy.addr());

    let mut first = TestLoop::spawn(config(&proxy.addr(), &[TOPIC], "node-v4"));
    first.wait_connected(CONNECT);
    for p in 0..2 {
        kc.produce(
            TOPIC,
            p,
            (0..4).map(|i| envelope(&format!("v4-{p}-{i}"))).collect(),
        );
    }
    let got = first.records(8, RECV);
    first.apply(&got);
    for p in 0..2 {
        eventually("commit through the proxy", RECV, || {
            committed(&broker.direct_addr(), "node-v4", TOPIC, p) == 4
        });
    }
    first
        .handle
        .produce(
            "conversation:1".to_owned(),
            b"{\"event\":\"message:new\"}".to_vec(),
        )
        .expect("queue has room");
    eventually("client event produced", RECV, || {
        first.handle.status().produced == 1
    });
    first.handle.shutdown();

    // A new handle resumes from the committed offsets (OffsetFetch through the proxy).
    for p in 0..2 {
        kc.produce(TOPIC, p, vec![envelope(&format!("v4-{p}-later"))]);
    }
    let mut second = TestLoop::spawn(config(&proxy.addr(), &[TOPIC], "node-v4"));
    let got = second.records(2, RECV);
    assert!(got.iter().all(|r| r.offset == 4), "{got:?}");
    assert!(second.quiet(Duration::from_millis(1000)).is_empty());
    second.handle.shutdown();

    let events = kc.read_all("client-events", 2);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key.as_deref(), Some(&b"conversation:1"[..]));

    let seen = proxy.seen.lock().unwrap();
    assert!(seen.refused.is_empty(), "refused: {:?}", seen.refused);
    for key in [
        PRODUCE,
        FETCH,
        LIST_OFFSETS,
        OFFSET_COMMIT,
        OFFSET_FETCH,
        FIND_COORDINATOR,
    ] {
        let versions: Vec<i16> = seen
            .forwarded
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect();
        assert!(
            !versions.is_empty(),
            "api key {key} never used: {:?}",
            seen.forwarded
        );
        assert!(versions.iter().all(|v| *v >= kafka4_min_version(key)));
    }
    eprintln!("api (key, version) pairs used: {:?}", seen.forwarded);
}

#[test]
fn the_gate_closes_the_connection_on_a_removed_version() {
    let broker_port = free_port();
    let proxy = V4Proxy::start(broker_port);
    let _broker = Tansu::start_on(broker_port, proxy.port);
    for (key, version) in [
        (PRODUCE, 2i16),
        (FETCH, 3),
        (LIST_OFFSETS, 0),
        (OFFSET_COMMIT, 1),
        (OFFSET_FETCH, 0),
    ] {
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // size, api_key, api_version, correlation_id, client_id (null); no body needed.
        let mut req = Vec::new();
        req.extend_from_slice(&10i32.to_be_bytes());
        req.extend_from_slice(&key.to_be_bytes());
        req.extend_from_slice(&version.to_be_bytes());
        req.extend_from_slice(&1i32.to_be_bytes());
        req.extend_from_slice(&(-1i16).to_be_bytes());
        s.write_all(&req).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "api {key} v{version} was answered");
    }
    let seen = proxy.seen.lock().unwrap();
    assert_eq!(seen.refused.len(), 5, "{:?}", seen.refused);
}
