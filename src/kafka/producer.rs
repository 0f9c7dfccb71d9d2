//! The producer task: drains the client-events queue in batches and produces each record to
//! the partition its key hashes to, so records with one key (a conversation or a user) keep
//! their order.
//!
//! Partitioning is Kafka's default for keyed records: `toPositive(murmur2(key)) % partitions`,
//! so Java, librdkafka (`murmur2_random`) and KafkaJS (`DefaultPartitioner`) producers put a
//! key on the same partition as we do.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::Client;
use rskafka::record::Record;
use tokio::sync::{mpsc, watch};

use super::Shared;
use crate::bridge::Backoff;

/// Records per produce batch.
const MAX_BATCH: usize = 500;
/// Value bytes per produce batch (well under the broker's default 1 MiB message limit).
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// One produce round trip, or the partition lookup, may take this long.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(10);

/// Partition clients of the client-events topic for one client (session).
struct Partitions {
    client: Arc<Client>,
    clients: Vec<PartitionClient>,
}

/// Runs until the queue is closed and drained (the handle stopped) or the session publisher
/// is gone. The caller bounds the final flush with a deadline.
pub(super) async fn run(
    topic: String,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    mut clients: watch::Receiver<Option<Arc<Client>>>,
) {
    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    let mut parts: Option<Partitions> = None;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut failures = 0u32;
    let mut warned = false;
    loop {
        if batch.is_empty() {
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut bytes = first.1.len();
            batch.push(first);
            while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match queue.try_recv() {
                    Ok(r) => {
                        bytes += r.1.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
        }
        let current = clients.borrow_and_update().clone();
        let Some(client) = current else {
            // No session yet (or it broke): wait for the next one.
            if clients.changed().await.is_err() {
                return;
            }
            continue;
        };
        if parts
            .as_ref()
            .is_none_or(|p| !Arc::ptr_eq(&p.client, &client))
        {
            parts = None;
            match partitions(&client, &topic).await {
                Ok(p) => parts = Some(p),
                Err(e) => {
                    fail(&shared, &mut failures, &mut warned, e);
                    wait(&mut backoff, &mut clients).await;
                    continue;
                }
            }
        }
        let p = parts.as_ref().expect("set above");
        match send(&p.clients, &topic, &mut batch, &shared).await {
            Ok(n) => {
                shared.produced.fetch_add(n, Ordering::Relaxed);
                backoff.reset();
                if warned {
                    log::info!("kafka: producing to {topic} again");
                }
                failures = 0;
                warned = false;
            }
            Err((n, e)) => {
                shared.produced.fetch_add(n, Ordering::Relaxed);
                fail(&shared, &mut failures, &mut warned, e);
                parts = None;
                wait(&mut backoff, &mut clients).await;
            }
        }
    }
}

/// Failed attempts in a row before a warning, if the consumer session is up meanwhile. During
/// a broker outage the session reports it (once); each failed attempt then takes seconds (the
/// client's own retries), so the session is down before this many have failed.
const WARN_AFTER: u32 = 3;

/// Counts an error; warns once per failure streak that is not part of a broker outage.
fn fail(shared: &Shared, failures: &mut u32, warned: &mut bool, e: String) {
    *failures += 1;
    if !*warned && *failures >= WARN_AFTER && shared.connected.load(Ordering::Relaxed) {
        *warned = true;
        log::warn!("kafka: producing client events keeps failing: {e}; retrying with backoff");
    } else {
        log::debug!("kafka: produce attempt failed: {e}");
    }
    shared.error(e);
}

/// Backoff sleep, cut short by a new session.
async fn wait(backoff: &mut Backoff, clients: &mut watch::Receiver<Option<Arc<Client>>>) {
    tokio::select! {
        _ = tokio::time::sleep(backoff.next_delay()) => {}
        _ = clients.changed() => {}
    }
}

async fn partitions(client: &Arc<Client>, topic: &str) -> Result<Partitions, String> {
    let lookup = async {
        let topics = client.list_topics().await.map_err(|e| e.to_string())?;
        let ids = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions)
            .ok_or_else(|| format!("topic {topic} does not exist"))?;
        let mut clients = Vec::with_capacity(ids.len());
        // Partition ids are 0..n; a gap would break key hashing, so refuse it.
        for (i, id) in ids.into_iter().enumerate() {
            if usize::try_from(id).ok() != Some(i) {
                return Err(format!("topic {topic}: partition ids are not 0..n"));
            }
            let pc = client
                .partition_client(topic, id, UnknownTopicHandling::Error)
                .await
                .map_err(|e| e.to_string())?;
            clients.push(pc);
        }
        if clients.is_empty() {
            return Err(format!("topic {topic} has no partitions"));
        }
        Ok(clients)
    };
    let clients = tokio::time::timeout(PRODUCE_TIMEOUT, lookup)
        .await
        .map_err(|_| format!("topic {topic}: partition lookup timed out"))??;
    Ok(Partitions {
        client: Arc::clone(client),
        clients,
    })
}

/// Produces the batch, one request per partition in partition order. Records the brokers
/// acknowledged (or rejected as such, counted as dropped) leave `batch`; on failure the rest
/// stays for the retry, in order.
///
/// # Errors
/// The count produced before the failure, and the failure.
async fn send(
    clients: &[PartitionClient],
    topic: &str,
    batch: &mut Vec<(String, Vec<u8>)>,
    shared: &Shared,
) -> Result<u64, (u64, String)> {
    let n = u32::try_from(clients.len()).unwrap_or(u32::MAX);
    let mut by_partition: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, (key, _)) in batch.iter().enumerate() {
        by_partition
            .entry(partition_for(key.as_bytes(), n) as usize)
            .or_default()
            .push(i);
    }
    let now = now_utc();
    let mut done = vec![false; batch.len()];
    let mut produced = 0u64;
    let mut failure = None;
    for (p, idx) in &by_partition {
        let records = idx
            .iter()
            .map(|&i| Record {
                key: Some(batch[i].0.as_bytes().to_vec()),
                value: Some(batch[i].1.clone()),
                headers: BTreeMap::new(),
                timestamp: now,
            })
            .collect();
        let result = tokio::time::timeout(
            PRODUCE_TIMEOUT,
            clients[*p].produce(records, Compression::NoCompression),
        )
        .await;
        match result {
            Ok(Ok(_offsets)) => {
                for &i in idx {
                    done[i] = true;
                }
                produced += idx.len() as u64;
            }
            Ok(Err(e)) if rejected(&e) => {
                // Retrying cannot help: drop these records rather than block the queue.
                for &i in idx {
                    done[i] = true;
                }
                shared
                    .produce_dropped
                    .fetch_add(idx.len() as u64, Ordering::Relaxed);
                log::warn!(
                    "kafka: {topic}/{p} rejected {} client events, dropped: {e}",
                    idx.len()
                );
                shared.error(format!("{topic}/{p}: {e}"));
            }
            Ok(Err(e)) => {
                failure = Some(format!("{topic}/{p}: {e}"));
                break;
            }
            Err(_) => {
                failure = Some(format!("{topic}/{p}: produce timed out"));
                break;
            }
        }
    }
    let mut i = 0;
    batch.retain(|_| {
        i += 1;
        !done[i - 1]
    });
    match failure {
        None => Ok(produced),
        Some(e) => Err((produced, e)),
    }
}

/// The broker refused the records themselves (too large, invalid): a retry would fail again.
fn rejected(e: &rskafka::client::error::Error) -> bool {
    use rskafka::client::error::{Error, ProtocolError};
    matches!(
        e,
        Error::ServerError {
            protocol_error: ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::CorruptMessage,
            ..
        }
    )
}

/// Record timestamp (chrono's `clock` feature is not enabled by rskafka).
fn now_utc() -> rskafka::chrono::DateTime<rskafka::chrono::Utc> {
    let ms = i64::try_from(crate::store::now_ms()).unwrap_or(i64::MAX);
    rskafka::chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Kafka's default partition for a keyed record.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// MurmurHash2 as Kafka's Java client computes it (`Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        if rest.len() == 3 {
            h ^= u32::from(rest[2]) << 16;
        }
        if rest.len() >= 2 {
            h ^= u32::from(rest[1]) << 8;
        }
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_java_client_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), want, "{input}");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for n in 1..10 {
            for key in ["conversation:1", "user:42", "", "x"] {
                let p = partition_for(key.as_bytes(), n);
                assert!(p < n);
                assert_eq!(p, partition_for(key.as_bytes(), n));
            }
        }
        assert_eq!(
            partition_for(b"k", 0),
            0,
            "zero partitions does not divide by zero"
        );
    }
}
