//! Database sessions (Auth.js with an adapter): the session cookie is an opaque id that only the
//! app can resolve, so helper threads ask the app's session endpoint (`--session-url`, e.g.
//! `http://web:3000/api/auth/session` on the internal network) who it belongs to. The loop
//! never waits: it hands a [`Checker`] a job and gets the [`Answer`] back over a channel, woken
//! by the shared `mio::Waker`.
//!
//! ```text
//!  loop thread                     worker threads (WORKERS)           the app
//!  checker.check(id, cookie) ──►  [jobs: bounded by QUEUE]  ──►  GET <path>  Cookie: <name>=<id>
//!  checker.try_recv()  ◄── [answers] ◄── Answer (user, no session, failed)  ◄── 200 {"user":{"id":..}}
//! ```
//!
//! # Layout
//! ```text
//! mod.rs    Endpoint (the URL, checked at start), Settings, Answer, Checker and its workers
//! http.rs   the blocking HTTP/1.1 GET with a deadline (std TcpStream, plain http:// only)
//! cache.rs  answers remembered briefly, keyed by a digest of the cookie
//! ```
//!
//! The cookie is a credential: it is sent only to the configured endpoint, kept in memory only
//! while its request runs (the cache holds a SHA-256 digest), and never logged.

pub mod cache;
pub mod http;

use crate::auth::Identity;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a session check may take before the CONNECT is refused (`session check failed`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Worker threads, each with one request in flight: a burst of reconnects after a restart is
/// answered in parallel rather than queued behind one slow request.
pub const WORKERS: usize = 8;
/// Checks waiting for a worker; more are refused at once (`session check failed`).
pub const QUEUE: usize = 1024;
/// Stack of a worker thread: the request's buffers are on the heap, but name resolution
/// (getaddrinfo and its NSS modules) wants room.
const WORKER_STACK: usize = 1024 * 1024;

/// The session endpoint, parsed at start: `http://host[:port][/path][?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets), resolved on the worker thread.
    pub host: String,
    pub port: u16,
    /// The `Host:` header value (the URL's authority as written).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parses a session URL.
    ///
    /// # Errors
    /// A message for anything but a plain `http://` URL with a host: `https://` (not
    /// supported: the endpoint is meant to be reached on the internal network), user info,
    /// a bad port, or control characters.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(format!(
                "{url:?}: https is not supported for the session URL; give the app's plain \
                 http:// address on the internal network (e.g. http://web:3000/api/auth/session)"
            ));
        }
        if !lower.starts_with("http://") {
            return Err(format!("{url:?}: the session URL must start with http://"));
        }
        let rest = &url["http://".len()..];
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_owned(),
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "{url:?}: the session URL's path has spaces or control characters"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "{url:?}: user info in the session URL is not supported"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed '[' in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let unbracketed_v6 = !authority.starts_with('[') && host.contains(':');
        if host.is_empty() || unbracketed_v6 || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{url:?}: the session URL has no valid host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Where and how long: the session endpoint and the per-check deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub timeout: Duration,
}

/// What the session endpoint said about a cookie.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A signed-in user with an id; the user object's fields are the claims.
    User(Identity),
    /// No session for this cookie (`null`, `{}`, no `user`, or 401/403).
    NoSession,
    /// A session whose user has no `id` (the app's `session` callback does not expose it).
    NoUserId,
    /// No usable answer: timeout, connection error, another status, a body that is not JSON.
    /// The text says why, for the log; it never contains the cookie.
    Failed(String),
}

impl Answer {
    /// The identity, or the reason sent to the client in CONNECT_ERROR.
    ///
    /// # Errors
    /// `no session`, `session has no user id` or `session check failed`.
    pub fn identity(&self) -> Result<Identity, &'static str> {
        match self {
            Answer::User(id) => Ok(id.clone()),
            Answer::NoSession => Err("no session"),
            Answer::NoUserId => Err("session has no user id"),
            Answer::Failed(_) => Err("session check failed"),
        }
    }
}

/// Reads a session endpoint's response: the body of Auth.js's `/api/auth/session` is `null`
/// (v5) or `{}` (v4) without a session, else `{"user": {...}, "expires": "..."}`. The user id
/// is `user.id` (a string or a number), which Auth.js includes only when the app's `session`
/// callback copies it (`session.user.id = user.id`).
pub fn interpret(status: u16, body: &[u8]) -> Answer {
    match status {
        200 => {}
        401 | 403 => return Answer::NoSession,
        other => return Answer::Failed(format!("status {other}")),
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Answer::Failed("the body is not JSON".into()),
    };
    let Some(Value::Object(user)) = value.get("user") else {
        return Answer::NoSession;
    };
    let user_id = match user.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Answer::NoUserId,
    };
    let claims: Map<String, Value> = user.clone();
    Answer::User(Identity { user_id, claims })
}

/// The check queue is full; the check was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session check queue full")]
pub struct Full;

struct Job {
    id: u64,
    /// `<name>=<value>`, the one cookie sent.
    cookie: String,
    deadline: Instant,
}

/// The loop's handle on the worker threads. Dropping it stops them (each after its current
/// request).
pub struct Checker {
    jobs: Sender<Job>,
    answers: Receiver<(u64, Answer)>,
}

impl Checker {
    /// Starts [`WORKERS`] threads asking `settings.endpoint`; each answer wakes `waker`.
    ///
    /// # Errors
    /// A thread could not be spawned.
    pub fn spawn(settings: &Settings, waker: Arc<mio::Waker>) -> std::io::Result<Checker> {
        let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        // At most QUEUE + WORKERS answers can exist at once, so sending never blocks.
        let (answer_tx, answers) = crossbeam_channel::bounded(QUEUE + WORKERS);
        for n in 0..WORKERS {
            let (rx, tx, waker) = (job_rx.clone(), answer_tx.clone(), Arc::clone(&waker));
            let endpoint = settings.endpoint.clone();
            std::thread::Builder::new()
                .name(format!("session-check-{n}"))
                .stack_size(WORKER_STACK)
                .spawn(move || work(&endpoint, &rx, &tx, &waker))?;
        }
        Ok(Checker { jobs, answers })
    }

    /// Asks about cookie `name=value`; the answer comes back from [`Checker::try_recv`] with
    /// `id`, by `deadline` (a worker gives up then).
    ///
    /// # Errors
    /// [`Full`] when [`QUEUE`] checks are already waiting.
    pub fn check(&self, id: u64, name: &str, value: &str, deadline: Instant) -> Result<(), Full> {
        let job = Job {
            id,
            cookie: format!("{name}={value}"),
            deadline,
        };
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => Full,
        })
    }

    /// The next answer, if one is waiting. Read until `None` after each wake.
    pub fn try_recv(&self) -> Option<(u64, Answer)> {
        self.answers.try_recv().ok()
    }
}

fn work(
    endpoint: &Endpoint,
    jobs: &Receiver<Job>,
    answers: &Sender<(u64, Answer)>,
    waker: &mio::Waker,
) {
    while let Ok(job) = jobs.recv() {
        let answer = if Instant::now() >= job.deadline {
            Answer::Failed("no worker was free before the deadline".into())
        } else {
            match http::get(endpoint, &job.cookie, job.deadline) {
                Ok(resp) => interpret(resp.status, &resp.body),
                Err(e) => Answer::Failed(e.to_string()),
            }
        };
        drop(job.cookie);
        if answers.send((job.id, answer)).is_err() {
            return;
        }
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parses_http_urls() {
        let e = Endpoint::parse("http://web:3000/api/auth/session").unwrap();
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.authority.as_str(),
                e.path.as_str()
            ),
            ("web", 3000, "web:3000", "/api/auth/session")
        );
        assert_eq!(e.to_string(), "http://web:3000/api/auth/session");
        let e = Endpoint::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/"));
        let e = Endpoint::parse("http://[::1]:8080?x=1#frag").unwrap();
        assert_eq!(
            (
                e.host.as_str(),
                e.port,
                e.authority.as_str(),
                e.path.as_str()
            ),
            ("::1", 8080, "[::1]:8080", "/?x=1")
        );
    }

    #[test]
    fn endpoint_refuses_https_and_oddities() {
        let https = Endpoint::parse("https://app.example/api/auth/session").unwrap_err();
        assert!(https.contains("https is not supported"), "{https}");
        for bad in [
            "ftp://x/",
            "web:3000/x",
            "http://",
            "http://:80/",
            "http://u:p@web/",
            "http://web:0/",
            "http://web:99999/",
            "http://web:x/",
            "http://web/a b",
            "http://[::1/",
            "http://::1/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    fn user(body: &str) -> Answer {
        interpret(200, body.as_bytes())
    }

    #[test]
    fn answers_from_the_session_body() {
        assert_eq!(user("null"), Answer::NoSession);
        assert_eq!(user("{}"), Answer::NoSession);
        assert_eq!(user(r#"{"expires":"x"}"#), Answer::NoSession);
        assert_eq!(user(r#"{"user":null}"#), Answer::NoSession);
        assert_eq!(
            user(r#"{"user":{"name":"Ada","email":"a@x"},"expires":"x"}"#),
            Answer::NoUserId
        );
        let Answer::User(id) = user(r#"{"user":{"id":"u1","name":"Ada","role":"admin"}}"#) else {
            panic!("a user");
        };
        assert_eq!(id.user_id, "u1");
        assert_eq!(id.claims["name"], "Ada");
        assert_eq!(id.claims["role"], "admin");
        let Answer::User(id) = user(r#"{"user":{"id":42}}"#) else {
            panic!("a numeric id");
        };
        assert_eq!(id.user_id, "42");
        assert_eq!(user(r#"{"user":{"id":""}}"#), Answer::NoUserId);
        assert!(matches!(user("<html>"), Answer::Failed(_)));
        assert_eq!(interpret(401, b""), Answer::NoSession);
        assert_eq!(interpret(500, b"{}"), Answer::Failed("status 500".into()));
    }

    #[test]
    fn refusal_reasons() {
        assert_eq!(Answer::NoSession.identity().unwrap_err(), "no session");
        assert_eq!(
            Answer::Failed("x".into()).identity().unwrap_err(),
            "session check failed"
        );
        assert_eq!(
            Answer::NoUserId.identity().unwrap_err(),
            "session has no user id"
        );
    }
}
