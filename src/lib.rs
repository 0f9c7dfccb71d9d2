//! sio-edge: a single-binary, single-threaded Socket.IO v4 edge server.
//!
//! # Layout
//! ```text
//! config.rs      flags + environment -> Config
//! logger.rs      the log backend
//! auth.rs        JWT verification
//! metrics.rs     counters and Prometheus rendering
//! timer.rs       deadline heap
//! http/          request parsing (httparse) and responses
//! ws/            WebSocket handshake key and framing
//! engineio/      Engine.IO packets, polling payloads, shared outbound wire forms
//! socketio/      Socket.IO packet codec and encoders
//! server/        the mio event loop and everything it owns
//! ```
//! Protocol modules (`http`, `ws`, `engineio`, `socketio`) do no I/O and never import mio.
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
pub mod socketio;
pub mod store;
pub mod timer;
pub mod ws;
