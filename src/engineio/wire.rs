//! Outbound messages in final wire bytes, encoded at most once per transport form and shared
//! by every recipient (zero-copy fanout).
//!
//! A message is a list of Engine.IO packets: one text packet (`4` + Socket.IO text, `2`, ...)
//! optionally followed by binary attachments. The WebSocket form is all their frames in one
//! buffer; the polling form is the records joined by `\x1e`, binary as `b` + base64.

use super::payload::SEPARATOR;
use crate::ws::frame::{self, Opcode};
use base64::Engine as _;
use bytes::Bytes;
use std::cell::{Cell, OnceCell};

/// One outbound Engine.IO packet before framing.
#[derive(Debug, Clone)]
pub enum Part {
    Text(Bytes),
    Binary(Bytes),
}

/// Counts how many wire forms were actually encoded (the one-encode-per-broadcast proof).
#[derive(Debug, Default)]
pub struct EncodeCounter(Cell<u64>);

impl EncodeCounter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A message with its two lazily built wire forms.
#[derive(Debug)]
pub struct Outbound {
    parts: Vec<Part>,
    ws: OnceCell<Bytes>,
    polling: OnceCell<Bytes>,
}

impl Outbound {
    pub fn new(parts: Vec<Part>) -> Self {
        Outbound {
            parts,
            ws: OnceCell::new(),
            polling: OnceCell::new(),
        }
    }

    /// A single text packet, e.g. `b"2"` (ping) or `b"42[\"x\"]"`.
    pub fn text(data: impl Into<Bytes>) -> Self {
        Self::new(vec![Part::Text(data.into())])
    }

    /// Engine.IO packets in the message (the text packet and its attachments).
    pub fn packets(&self) -> usize {
        self.parts.len()
    }

    /// All frames of the message for a WebSocket recipient, built on first use.
    pub fn ws(&self, counter: &EncodeCounter) -> Bytes {
        self.ws
            .get_or_init(|| {
                counter.bump();
                let total: usize = self
                    .parts
                    .iter()
                    .map(|p| {
                        let len = p.len();
                        frame::header_len(len) + len
                    })
                    .sum();
                let mut out = Vec::with_capacity(total);
                for p in &self.parts {
                    match p {
                        Part::Text(t) => frame::encode(Opcode::Text, t, &mut out),
                        Part::Binary(b) => frame::encode(Opcode::Binary, b, &mut out),
                    }
                }
                Bytes::from(out)
            })
            .clone()
    }

    /// The records of the message for a polling recipient, joined by `\x1e`, built on first use.
    pub fn polling(&self, counter: &EncodeCounter) -> Bytes {
        self.polling
            .get_or_init(|| {
                counter.bump();
                let mut out = Vec::new();
                for (i, p) in self.parts.iter().enumerate() {
                    if i > 0 {
                        out.push(SEPARATOR);
                    }
                    match p {
                        Part::Text(t) => out.extend_from_slice(t),
                        Part::Binary(b) => {
                            out.push(b'b');
                            let enc = base64::engine::general_purpose::STANDARD.encode(b);
                            out.extend_from_slice(enc.as_bytes());
                        }
                    }
                }
                Bytes::from(out)
            })
            .clone()
    }

    /// Size of the message's payload bytes, for metrics and queue accounting estimates.
    pub fn payload_len(&self) -> usize {
        self.parts.iter().map(Part::len).sum()
    }
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Text(b) | Part::Binary(b) => b.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_form_is_frames_and_built_once() {
        let c = EncodeCounter::default();
        let m = Outbound::new(vec![
            Part::Text(Bytes::from_static(
                b"451-[\"x\",{\"_placeholder\":true,\"num\":0}]",
            )),
            Part::Binary(Bytes::from_static(&[1, 2, 3])),
        ]);
        let a = m.ws(&c);
        let b = m.ws(&c);
        assert_eq!(c.get(), 1);
        assert_eq!(a.as_ptr(), b.as_ptr(), "same shared buffer");
        assert_eq!(a[0], 0x81);
        let bin_at = a.len() - 5;
        assert_eq!(&a[bin_at..], &[0x82, 3, 1, 2, 3]);
    }

    #[test]
    fn polling_form_joins_records_with_base64_binary() {
        let c = EncodeCounter::default();
        let m = Outbound::new(vec![
            Part::Text(Bytes::from_static(b"4hi")),
            Part::Binary(Bytes::from_static(&[1, 2, 3])),
        ]);
        assert_eq!(&m.polling(&c)[..], b"4hi\x1ebAQID");
        m.polling(&c);
        assert_eq!(c.get(), 1);
    }
}
