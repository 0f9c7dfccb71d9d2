//! Applied marks: which records the loop has delivered, passed to the kafka thread without a
//! lock on the loop.
//!
//! [`KafkaHandle::applied`](super::KafkaHandle::applied) runs once per record on the loop
//! thread. It sends a 16-byte [`Mark`] (topic index, partition, next offset) over an unbounded
//! lock-free channel: no mutex, no allocation beyond the channel's amortised blocks, and the
//! topic is named by its index in the configured topic list rather than by a new `String`.
//! The kafka thread drains the channel into a [`MarkBook`] (max next offset per partition)
//! at each commit tick, so commit batching is unchanged.
//!
//! The channel is unbounded but cannot grow without bound: marks only come for records the
//! thread handed over, the thread drains them every commit tick while it fetches, and while
//! it is not fetching (an outage) at most the records already queued for the loop
//! ([`super::EVENT_CAPACITY`]) can be applied.

use std::collections::HashMap;

use crossbeam_channel::{Receiver, Sender};

use super::group::Offsets;

/// One applied record: commit `next` (its offset + 1) for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    topic: u32,
    partition: i32,
    next: i64,
}

/// The loop's end.
#[derive(Debug)]
pub(super) struct MarkSender {
    topics: Vec<String>,
    tx: Sender<Mark>,
}

/// The kafka thread's end: marks not yet committed, highest per partition.
#[derive(Debug)]
pub(super) struct MarkBook {
    topics: Vec<String>,
    rx: Receiver<Mark>,
    pending: Offsets,
}

/// A mark channel for the consumed `topics` (the order fixes the indexes both ends use).
pub(super) fn channel(topics: Vec<String>) -> (MarkSender, MarkBook) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (
        MarkSender {
            topics: topics.clone(),
            tx,
        },
        MarkBook {
            topics,
            rx,
            pending: HashMap::new(),
        },
    )
}

impl MarkSender {
    /// The record at `offset` was delivered. A topic that is not consumed (no record can
    /// come from it) is ignored; so is a stopped thread.
    pub fn mark(&self, topic: &str, partition: i32, offset: i64) {
        let Some(index) = self.topics.iter().position(|t| t == topic) else {
            return;
        };
        let Ok(topic) = u32::try_from(index) else {
            return;
        };
        let _ = self.tx.send(Mark {
            topic,
            partition,
            next: offset.saturating_add(1),
        });
    }
}

impl MarkBook {
    /// Every mark so far, highest next offset per partition; the book is left empty.
    pub fn take(&mut self) -> Offsets {
        self.drain();
        std::mem::take(&mut self.pending)
    }

    /// Puts back marks a failed commit did not store, keeping any newer mark.
    pub fn restore(&mut self, marks: Offsets) {
        for (topic, parts) in marks {
            let entry = self.pending.entry(topic).or_default();
            for (p, next) in parts {
                let e = entry.entry(p).or_insert(next);
                *e = (*e).max(next);
            }
        }
    }

    /// Forgets every mark so far (they belong to a session that broke).
    pub fn discard(&mut self) {
        self.drain();
        self.pending.clear();
    }

    fn drain(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            let Some(topic) = self.topics.get(m.topic as usize) else {
                continue;
            };
            let parts = match self.pending.get_mut(topic) {
                Some(p) => p,
                None => self.pending.entry(topic.clone()).or_default(),
            };
            let next = parts.entry(m.partition).or_insert(m.next);
            *next = (*next).max(m.next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(list: &[(&str, i32, i64)]) -> Offsets {
        let mut o = Offsets::new();
        for (t, p, n) in list {
            o.entry((*t).to_owned()).or_default().insert(*p, *n);
        }
        o
    }

    #[test]
    fn take_gives_the_highest_next_offset_per_partition() {
        let (tx, mut book) = channel(vec!["a".into(), "b".into()]);
        tx.mark("a", 0, 4);
        tx.mark("a", 0, 2);
        tx.mark("a", 1, 9);
        tx.mark("b", 0, 0);
        tx.mark("unconsumed", 0, 100);
        assert_eq!(
            book.take(),
            offsets(&[("a", 0, 5), ("a", 1, 10), ("b", 0, 1)])
        );
        assert!(book.take().is_empty());
    }

    #[test]
    fn restore_keeps_a_newer_mark() {
        let (tx, mut book) = channel(vec!["a".into()]);
        tx.mark("a", 0, 3);
        let failed = book.take();
        tx.mark("a", 0, 7);
        tx.mark("a", 1, 1);
        book.restore(failed);
        book.restore(offsets(&[("a", 1, 0)]));
        assert_eq!(book.take(), offsets(&[("a", 0, 8), ("a", 1, 2)]));
    }

    #[test]
    fn discard_forgets_sent_and_pending_marks() {
        let (tx, mut book) = channel(vec!["a".into()]);
        tx.mark("a", 0, 3);
        book.restore(offsets(&[("a", 1, 5)]));
        book.discard();
        assert!(book.take().is_empty());
        tx.mark("a", 0, 4);
        assert_eq!(book.take(), offsets(&[("a", 0, 5)]));
    }

    #[test]
    fn marks_sent_after_the_thread_stopped_are_ignored() {
        let (tx, book) = channel(vec!["a".into()]);
        drop(book);
        tx.mark("a", 0, 1);
    }
}
