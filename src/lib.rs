//! sio-edge: a single-binary, single-threaded Socket.IO v4 edge server.
//!
//! # Layout
//! ```text
//! config/        flags + environment -> Config
//! logger.rs      the log backend
//! auth/          JWT and NextAuth session token verification, session cookies
//! metrics/       counters and Prometheus rendering
//! timer.rs       deadline heap
//! http/          request parsing (httparse) and responses
//! ws/            WebSocket handshake key and framing
//! engineio/      Engine.IO packets, polling payloads, shared outbound wire forms
//! socketio/      Socket.IO packet codec and encoders
//! adapter/       the Redis adapter/emitter wire format (msgpack broadcasts, requests)
//! store/         in-memory stores: grants, presence, mailbox, outbox, recovery, dedup, limits
//! redis_bridge/  the Redis helper thread (commands, pub/sub) behind a channel
//! kafka/         the Kafka helper thread (consumer group, producer, envelopes)
//! session_check/ database sessions: the app's session endpoint asked from helper threads
//! server/        the mio event loop and the parts it composes (see docs/DESIGN.md)
//! ```
//! Protocol modules (`http`, `ws`, `engineio`, `socketio`, `adapter`) and the stores do no
//! I/O and never import mio.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod auth;
mod bridge;
pub mod config;
pub mod engineio;
pub mod http;
pub mod kafka;
pub mod logger;
pub mod metrics;
pub mod redis_bridge;
pub mod server;
pub mod session_check;
pub mod socketio;
pub mod store;
pub mod timer;
pub mod ws;
