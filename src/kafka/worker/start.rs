//! Where a consumer session starts: the client, the configured topics' partitions, and each
//! partition's start offset (committed, or reset and committed at once).

use super::*;

impl Worker {
    /// Client, partitions, committed or reset offsets.
    pub(super) async fn setup(&mut self) -> Result<(Arc<Client>, Vec<Start>), String> {
        let client = ClientBuilder::new(self.cfg.brokers.clone())
            .client_id("sio-edge")
            .backoff_config(rskafka_backoff())
            .build()
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.cfg.brokers.join(",")))?;
        let client = Arc::new(client);
        let parts = self.partitions(&client).await?;
        let starts = self.starts(&client, &parts, false).await?;
        Ok((client, starts))
    }

    /// The partitions of the configured topics that exist now.
    pub(super) async fn partitions(
        &mut self,
        client: &Client,
    ) -> Result<Vec<(String, i32)>, String> {
        if self.cfg.topics.is_empty() {
            return Ok(Vec::new());
        }
        let topics = client
            .list_topics()
            .await
            .map_err(|e| format!("metadata: {e}"))?;
        let mut out = Vec::new();
        for name in &self.cfg.topics {
            match topics.iter().find(|t| &t.name == name) {
                Some(t) => {
                    self.missing_warned.remove(name);
                    out.extend(t.partitions.iter().map(|p| (name.clone(), *p)));
                }
                None => {
                    if self.missing_warned.insert(name.clone()) {
                        log::warn!("kafka: topic {name} does not exist; consuming it once it does");
                    }
                }
            }
        }
        Ok(out)
    }

    /// Start offsets for `parts`: the committed offset, or a reset position that is committed
    /// at once (so an outage later resumes from it).
    pub(super) async fn starts(
        &mut self,
        client: &Client,
        parts: &[(String, i32)],
        mid_session: bool,
    ) -> Result<Vec<Start>, String> {
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let committed = self.group.fetch(parts).await?;
        let mut starts = Vec::with_capacity(parts.len());
        let mut to_commit = Offsets::new();
        for (topic, partition) in parts {
            let pc = client
                .partition_client(topic.clone(), *partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| format!("{topic}/{partition}: {e}"))?;
            let key = (topic.clone(), *partition);
            let stored = committed
                .get(topic)
                .and_then(|m| m.get(partition))
                .copied()
                .unwrap_or(-1);
            let offset = if stored >= 0 {
                stored
            } else {
                let at = self.reset_offset(&pc, &key, mid_session).await?;
                to_commit
                    .entry(topic.clone())
                    .or_default()
                    .insert(*partition, at);
                at
            };
            self.committed
                .entry(topic.clone())
                .or_default()
                .insert(*partition, offset);
            self.known.insert(key);
            starts.push(Start {
                topic: topic.clone(),
                partition: *partition,
                client: pc,
                offset,
            });
        }
        if !to_commit.is_empty() {
            self.group.commit(&to_commit).await?;
        }
        self.started = true;
        Ok(starts)
    }

    /// Where a partition without a committed offset starts (the caller commits it at once).
    async fn reset_offset(
        &self,
        pc: &PartitionClient,
        key: &(String, i32),
        mid_session: bool,
    ) -> Result<i64, String> {
        let (topic, partition) = (&key.0, key.1);
        // We were reading this partition but the broker lost our commit: its storage was
        // reset, so our old position means nothing in the new log. Start at its beginning;
        // starting at the latest offset would skip every event produced since it came back,
        // and dedup by id absorbs any repeat.
        let lost = self.known.contains(key)
            && self
                .committed
                .get(topic)
                .is_some_and(|m| m.contains_key(&partition));
        let appeared = mid_session || (self.started && !self.known.contains(key));
        let reset = if lost || appeared || !self.cfg.start_at_latest {
            Reset::Earliest
        } else {
            Reset::Latest
        };
        let at = pc
            .get_offset(reset.at())
            .await
            .map_err(|e| format!("{topic}/{partition}: list offsets: {e}"))?;
        if lost {
            log::info!(
                "kafka: {topic}/{partition}: group {} lost its committed offset; restarting at the earliest offset {at}",
                self.cfg.group_id
            );
        } else {
            log::info!(
                "kafka: {topic}/{partition}: no committed offset for group {}; starting at the {} offset {at}",
                self.cfg.group_id,
                if reset == Reset::Latest { "latest" } else { "earliest" },
            );
        }
        Ok(at)
    }
}
