//! Harness for the Kafka tests: a Tansu broker, a Kafka-4 proxy, a stand-in for the event loop
//! (a `mio::Poll` with the handle's `Waker`), and a test-side Kafka client.
//!
//! Nothing sleeps to synchronize: waits poll the waker or the broker until a deadline, and a
//! deadline that passes fails the test with what was seen.
#![allow(dead_code)] // Each test file uses a different subset.

pub mod tansu;
pub mod v4proxy;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use mio::{Events, Poll, Token, Waker};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use sio_edge::kafka::{self, KafkaConfig, KafkaEvent, KafkaHandle};

/// Connecting a handle (first `Connected`) may take this long.
pub const CONNECT: Duration = Duration::from_secs(30);
/// Produced records must reach the loop within this.
pub const RECV: Duration = Duration::from_secs(20);

/// One consumed record as the loop sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rec {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: Vec<u8>,
}

/// A config for tests: the given broker, topics and group; client events to `client-events`.
pub fn config(broker: &str, topics: &[&str], group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: vec![broker.to_owned()],
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        group_id: group.to_owned(),
        client_events_topic: "client-events".to_owned(),
        start_at_latest: true,
        produce_queue: 10_000,
    }
}

/// An envelope as a backend would produce it.
pub fn envelope(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","event":"test:event","rooms":["feed"],"data":{{"n":"{id}"}}}}"#)
        .into_bytes()
}

/// A record read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The event loop's part: a poll with the waker the handle wakes.
pub struct TestLoop {
    poll: Poll,
    events: Events,
    pub handle: KafkaHandle,
}

impl TestLoop {
    pub fn spawn(cfg: KafkaConfig) -> TestLoop {
        if let Ok(filter) = std::env::var("KAFKA_TEST_LOG") {
            let _ = sio_edge::logger::init(&filter);
        }
        let poll = Poll::new().expect("mio poll");
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).expect("waker"));
        let handle = kafka::spawn(cfg, waker).expect("spawn kafka thread");
        TestLoop {
            poll,
            events: Events::with_capacity(8),
            handle,
        }
    }

    /// The next event within `timeout`. Blocks in `poll` until the handle wakes it, so a
    /// missing wake fails the test by timing out.
    pub fn next(&mut self, timeout: Duration) -> Option<KafkaEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.handle.try_recv() {
                return Some(ev);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.poll.poll(&mut self.events, Some(left)).expect("poll");
        }
    }

    /// Waits for `Connected`; records before it fail the test.
    pub fn wait_connected(&mut self, timeout: Duration) {
        self.wait_for("Connected", timeout, |e| matches!(e, KafkaEvent::Connected));
    }

    /// Waits for an event matching `want`, failing on a record (none are expected meanwhile).
    pub fn wait_for(&mut self, what: &str, timeout: Duration, want: impl Fn(&KafkaEvent) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(e) if want(&e) => return,
                Some(KafkaEvent::Record {
                    topic,
                    partition,
                    offset,
                    ..
                }) => {
                    panic!(
                        "unexpected record {topic}/{partition}@{offset} while waiting for {what}"
                    )
                }
                Some(_) => {}
                None => panic!(
                    "no {what} within {timeout:?}; status {:?}",
                    self.handle.status()
                ),
            }
        }
    }

    /// The next record before `deadline` (other events are skipped); `None` once it passes.
    fn next_record(&mut self, deadline: Instant) -> Option<Rec> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let KafkaEvent::Record {
                topic,
                partition,
                offset,
                value,
            } = self.next(left)?
            {
                return Some(Rec {
                    topic,
                    partition,
                    offset,
                    value,
                });
            }
        }
    }

    /// Exactly `n` records within `timeout` (other events are skipped).
    pub fn records(&mut self, n: usize, timeout: Duration) -> Vec<Rec> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            match self.next_record(deadline) {
                Some(rec) => got.push(rec),
                None => panic!(
                    "{} of {n} records within {timeout:?}: {got:?}; status {:?}",
                    got.len(),
                    self.handle.status()
                ),
            }
        }
        got
    }

    /// Records that arrive within `window` (to show that nothing more comes).
    pub fn quiet(&mut self, window: Duration) -> Vec<Rec> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Some(rec) = self.next_record(deadline) {
            got.push(rec);
        }
        got
    }

    /// Calls `applied` for each record.
    pub fn apply(&self, recs: &[Rec]) {
        for r in recs {
            self.handle.applied(&r.topic, r.partition, r.offset);
        }
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(50)); // polling with a deadline
    }
}

/// A record the test client produces: `value`, no key or headers, a fixed timestamp.
fn test_record(value: Vec<u8>) -> Record {
    Record {
        key: None,
        value: Some(value),
        headers: BTreeMap::new(),
        timestamp: rskafka::chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
    }
}

/// The test's own Kafka client (rskafka on its own runtime), for producing the records the
/// handle consumes and reading back the ones it produces.
pub struct TestClient {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl TestClient {
    pub fn connect(addr: &str) -> TestClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt
            .block_on(async {
                tokio::time::timeout(CONNECT, ClientBuilder::new(vec![addr.to_owned()]).build())
                    .await
            })
            .expect("test client connect timed out")
            .expect("test client connect");
        TestClient { rt, client }
    }

    /// Runs `f` on the client's runtime, failing the test if it takes longer than [`RECV`].
    fn bounded<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt
            .block_on(async { tokio::time::timeout(RECV, f).await })
            .expect("test client call timed out")
    }

    /// Produces `values` to one partition, one record per request; returns their offsets.
    ///
    /// One record per batch because Tansu 0.6's memory engine mishandles offsets inside a
    /// multi-record batch: ListOffsets(latest) answers the last batch's base offset + 1, and a
    /// fetch from the middle of a batch skips to the next batch. Real Kafka does neither.
    pub fn produce(&self, topic: &str, partition: i32, values: Vec<Vec<u8>>) -> Vec<i64> {
        self.bounded(async {
            let pc = self
                .client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            let mut offsets = Vec::new();
            for v in values {
                let got = tokio::time::timeout(
                    RECV,
                    pc.produce(vec![test_record(v)], Compression::NoCompression),
                )
                .await
                .expect("test produce timed out")
                .expect("test produce");
                offsets.extend(got);
            }
            offsets
        })
    }

    /// Produces `values` to one partition in a single request (one batch).
    pub fn produce_batch(&self, topic: &str, partition: i32, values: Vec<Vec<u8>>) -> Vec<i64> {
        self.bounded(async {
            let pc = self
                .client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            let records = values.into_iter().map(test_record).collect();
            pc.produce(records, Compression::NoCompression)
                .await
                .expect("test produce")
        })
    }

    /// The latest offset (high watermark) of a partition.
    pub fn latest(&self, topic: &str, partition: i32) -> i64 {
        self.bounded(async {
            let pc = self
                .client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            pc.get_offset(OffsetAt::Latest).await.expect("list offsets")
        })
    }

    /// Every record of `partitions` partitions of `topic`.
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<Stored> {
        self.bounded(async {
            let mut out = Vec::new();
            for p in 0..partitions {
                let pc = self
                    .client
                    .partition_client(topic, p, UnknownTopicHandling::Retry)
                    .await
                    .expect("partition client");
                let end = pc.get_offset(OffsetAt::Latest).await.expect("list offsets");
                let mut next = 0;
                while next < end {
                    let (recs, _) = pc
                        .fetch_records(next, 1..1_000_000, 100)
                        .await
                        .expect("fetch");
                    for r in recs {
                        if r.offset >= next {
                            next = r.offset + 1;
                            out.push(Stored {
                                partition: p,
                                offset: r.offset,
                                key: r.record.key,
                                value: r.record.value.unwrap_or_default(),
                            });
                        }
                    }
                }
            }
            out
        })
    }
}

/// The offset `group` has committed for `topic`/`partition` (-1 for none), asked directly with
/// OffsetFetch v1 (the single test broker is every group's coordinator).
pub fn committed(broker: &str, group: &str, topic: &str, partition: i32) -> i64 {
    let version = 1;
    let mut s = TcpStream::connect(broker).expect("connect for OffsetFetch");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::OffsetFetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_indexes(vec![partition])]));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, OffsetFetchRequest::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&buf).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("OffsetFetch response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).expect("OffsetFetch response");
    let mut body = Bytes::from(body);
    let h =
        ResponseHeader::decode(&mut body, OffsetFetchResponse::header_version(version)).unwrap();
    assert_eq!(h.correlation_id, 7);
    let resp = OffsetFetchResponse::decode(&mut body, version).unwrap();
    let _ = body.remaining();
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| p.committed_offset)
        .unwrap_or(-1)
}
