//! Committed offsets of one consumer group without joining it: FindCoordinator, OffsetFetch,
//! OffsetCommit over our own connection (rskafka has no consumer-group calls), encoded with
//! the `kafka-protocol` crate.
//!
//! ```text
//! request  = size:i32  api_key:i16 api_version:i16 correlation_id:i32 client_id:nullable-string
//!            [tagged fields if flexible]  body
//! response = size:i32  correlation_id:i32 [tagged fields if flexible]  body
//! ```
//!
//! Each connection first asks ApiVersions (v0, which every broker answers) and then uses, per
//! API, the highest version both sides support within [`FIND_COORDINATOR`], [`OFFSET_FETCH`]
//! and [`OFFSET_COMMIT`]. Commits use generation -1 and an empty member id: the broker stores
//! them for a group with no members, which is what a node that reads every partition is.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// FindCoordinator versions we speak (v4+ batches keys; Kafka 4 serves 0..=6).
pub const FIND_COORDINATOR: RangeInclusive<i16> = 0..=4;
/// OffsetFetch versions we speak (v8+ batches groups; Kafka 4 removed v0).
pub const OFFSET_FETCH: RangeInclusive<i16> = 1..=7;
/// OffsetCommit versions we speak (v9+ is for KIP-848 members; Kafka 4 removed v0-v1).
pub const OFFSET_COMMIT: RangeInclusive<i16> = 2..=8;

/// Connecting, or one request and its response, may take this long.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A response larger than this is a broken stream, not a response.
const MAX_RESPONSE: usize = 64 << 20;
const CLIENT_ID: &str = "sio-edge";

// Error codes we act on (Kafka protocol error codes).
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;

/// Committed offsets of one group, by topic and partition.
pub type Offsets = HashMap<String, HashMap<i32, i64>>;

/// One broker connection with the versions it supports.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    addr: String,
    next_correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, String> {
        let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect {addr}: timed out"))?
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream,
            addr: addr.to_owned(),
            next_correlation: 0,
            versions: HashMap::new(),
        };
        let resp: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
            .await?;
        if resp.error_code != 0 {
            return Err(format!(
                "{addr}: ApiVersions error code {}",
                resp.error_code
            ));
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// The highest version of `key` both sides support.
    fn pick(&self, key: ApiKey, ours: RangeInclusive<i16>) -> Result<i16, String> {
        let (min, max) = self
            .versions
            .get(&(key as i16))
            .copied()
            .ok_or_else(|| format!("{}: broker does not support {key:?}", self.addr))?;
        let hi = max.min(*ours.end());
        if hi < min.max(*ours.start()) {
            return Err(format!(
                "{}: no common {key:?} version (broker {min}..={max}, ours {ours:?})",
                self.addr
            ));
        }
        Ok(hi)
    }

    /// Sends one request and reads its response.
    async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, String>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let addr = self.addr.clone();
        tokio::time::timeout(IO_TIMEOUT, self.call_inner(key, version, req))
            .await
            .map_err(|_| format!("{addr}: {key:?} timed out"))?
            .map_err(|e| format!("{addr}: {key:?} v{version}: {e}"))
    }

    async fn call_inner<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, String>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // size, patched below
        header
            .encode(&mut buf, Req::header_version(version))
            .map_err(|e| format!("encode header: {e}"))?;
        req.encode(&mut buf, version)
            .map_err(|e| format!("encode: {e}"))?;
        let size = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_owned())?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .await
            .map_err(|e| e.to_string())?;

        let size = self.stream.read_i32().await.map_err(|e| e.to_string())?;
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s >= 4 && *s <= MAX_RESPONSE)
            .ok_or_else(|| format!("bad response size {size}"))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let mut body = Bytes::from(body);
        let resp_header = ResponseHeader::decode(&mut body, Resp::header_version(version))
            .map_err(|e| format!("decode header: {e}"))?;
        if resp_header.correlation_id != correlation {
            return Err(format!(
                "correlation id {} for request {correlation}",
                resp_header.correlation_id
            ));
        }
        let resp = Resp::decode(&mut body, version).map_err(|e| format!("decode: {e}"))?;
        if body.has_remaining() {
            log::debug!(
                "kafka: {key:?} v{version}: {} trailing bytes",
                body.remaining()
            );
        }
        Ok(resp)
    }
}

/// The group's coordinator, found and connected lazily and again after any failure.
#[derive(Debug)]
pub struct GroupClient {
    brokers: Vec<String>,
    group: String,
    coordinator: Option<Conn>,
}

impl GroupClient {
    pub fn new(brokers: Vec<String>, group: String) -> Self {
        GroupClient {
            brokers,
            group,
            coordinator: None,
        }
    }

    /// Versions in use with the current coordinator, for logs: (FindCoordinator is asked of a
    /// bootstrap broker) OffsetFetch, OffsetCommit.
    pub fn versions(&self) -> Option<(i16, i16)> {
        let c = self.coordinator.as_ref()?;
        Some((
            c.pick(ApiKey::OffsetFetch, OFFSET_FETCH).ok()?,
            c.pick(ApiKey::OffsetCommit, OFFSET_COMMIT).ok()?,
        ))
    }

    /// Forgets the coordinator connection (after an error): the next call finds it again.
    pub fn reset(&mut self) {
        self.coordinator = None;
    }

    async fn coordinator(&mut self) -> Result<&mut Conn, String> {
        if self.coordinator.is_none() {
            let addr = self.find_coordinator().await?;
            self.coordinator = Some(Conn::open(&addr).await?);
        }
        Ok(self.coordinator.as_mut().expect("set above"))
    }

    /// Asks the bootstrap brokers in turn where the group's coordinator is.
    async fn find_coordinator(&self) -> Result<String, String> {
        let mut last = String::from("no brokers");
        for broker in &self.brokers {
            match self.find_coordinator_via(broker).await {
                Ok(addr) => return Ok(addr),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn find_coordinator_via(&self, broker: &str) -> Result<String, String> {
        let mut conn = Conn::open(broker).await?;
        let v = conn.pick(ApiKey::FindCoordinator, FIND_COORDINATOR)?;
        let key = StrBytes::from_string(self.group.clone());
        let mut req = FindCoordinatorRequest::default().with_key_type(0);
        req = if v >= 4 {
            req.with_coordinator_keys(vec![key])
        } else {
            req.with_key(key)
        };
        let resp: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, v, &req).await?;
        let (code, host, port) = if v >= 4 {
            let c = resp
                .coordinators
                .first()
                .ok_or_else(|| format!("{broker}: FindCoordinator returned no coordinator"))?;
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (resp.error_code, resp.host.to_string(), resp.port)
        };
        if code != 0 {
            return Err(format!("{broker}: FindCoordinator error code {code}"));
        }
        Ok(format!("{host}:{port}"))
    }

    /// Committed offsets of `partitions` (`-1` where none is committed).
    pub async fn fetch(&mut self, partitions: &[(String, i32)]) -> Result<Offsets, String> {
        let result = self.fetch_inner(partitions).await;
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn fetch_inner(&mut self, partitions: &[(String, i32)]) -> Result<Offsets, String> {
        let group = self.group.clone();
        let conn = self.coordinator().await?;
        let v = conn.pick(ApiKey::OffsetFetch, OFFSET_FETCH)?;
        let topics = by_topic(partitions.iter().map(|(t, p)| (t.as_str(), *p)))
            .into_iter()
            .map(|(topic, parts)| {
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partition_indexes(parts)
            })
            .collect();
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_topics(Some(topics));
        let resp: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, v, &req).await?;
        check_group_code(&conn.addr, "OffsetFetch", resp.error_code)?;
        let mut out = Offsets::new();
        for t in resp.topics {
            let name = t.name.0.to_string();
            for p in t.partitions {
                let committed = match p.error_code {
                    0 => p.committed_offset,
                    UNKNOWN_TOPIC_OR_PARTITION => -1,
                    code => check_group_code(&conn.addr, "OffsetFetch", code).map(|()| -1)?,
                };
                out.entry(name.clone())
                    .or_default()
                    .insert(p.partition_index, committed);
            }
        }
        Ok(out)
    }

    /// Commits next-offsets; returns the ones the broker stored. Partition-level errors other
    /// than the coordinator moving are logged and the offset is left out (not retried).
    ///
    /// # Errors
    /// The connection failed or the coordinator moved: nothing may have been stored.
    pub async fn commit(&mut self, offsets: &Offsets) -> Result<Offsets, String> {
        let result = self.commit_inner(offsets).await;
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn commit_inner(&mut self, offsets: &Offsets) -> Result<Offsets, String> {
        let group = self.group.clone();
        let conn = self.coordinator().await?;
        let v = conn.pick(ApiKey::OffsetCommit, OFFSET_COMMIT)?;
        let topics = offsets
            .iter()
            .map(|(topic, parts)| {
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, next)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*next)
                                    .with_committed_leader_epoch(-1)
                                    .with_committed_metadata(None)
                            })
                            .collect(),
                    )
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(topics);
        let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, v, &req).await?;
        let mut stored = Offsets::new();
        for t in resp.topics {
            let name = t.name.0.to_string();
            for p in t.partitions {
                if p.error_code != 0 {
                    if is_coordinator_error(p.error_code) {
                        check_group_code(&conn.addr, "OffsetCommit", p.error_code)?;
                    }
                    log::warn!(
                        "kafka: OffsetCommit {name}/{}: error code {}",
                        p.partition_index,
                        p.error_code
                    );
                    continue;
                }
                if let Some(next) = offsets.get(&name).and_then(|m| m.get(&p.partition_index)) {
                    stored
                        .entry(name.clone())
                        .or_default()
                        .insert(p.partition_index, *next);
                }
            }
        }
        Ok(stored)
    }
}

/// The coordinator moved or is not ready: look it up again and retry later.
fn is_coordinator_error(code: i16) -> bool {
    matches!(
        code,
        COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
    )
}

/// A non-zero error code as an error naming the API.
fn check_group_code(addr: &str, api: &str, code: i16) -> Result<(), String> {
    match code {
        0 => Ok(()),
        c if is_coordinator_error(c) => Err(format!("{addr}: {api}: coordinator error code {c}")),
        other => Err(format!("{addr}: {api}: error code {other}")),
    }
}

/// Groups partitions by topic, in first-seen topic order.
fn by_topic<'a>(parts: impl Iterator<Item = (&'a str, i32)>) -> Vec<(&'a str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in parts {
        match out.iter_mut().find(|(name, _)| *name == t) {
            Some((_, v)) => v.push(p),
            None => out.push((t, vec![p])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_topic_keeps_first_seen_order() {
        let parts = [("a", 0), ("b", 0), ("a", 1)];
        assert_eq!(
            by_topic(parts.into_iter()),
            vec![("a", vec![0, 1]), ("b", vec![0])]
        );
    }

    #[test]
    fn our_version_floors_are_what_kafka_4_still_serves() {
        // KIP-896: OffsetCommit v0-v1 and OffsetFetch v0 are gone in Kafka 4.
        assert!(*OFFSET_COMMIT.start() >= 2);
        assert!(*OFFSET_FETCH.start() >= 1);
    }
}
