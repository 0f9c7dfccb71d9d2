//! Database sessions on the loop: a CONNECT whose session cookie is an opaque id (Auth.js with
//! an adapter) is parked here while a helper thread asks the app's session endpoint
//! (`crate::session_check`), and completed by `connect_as` when the answer wakes the loop or
//! its deadline passes. Answers are cached briefly by cookie digest, and CONNECTs with the same
//! cookie share one request.

use super::engine::Credential;
use super::Server;
use crate::auth::{token_form, TokenForm};
use crate::config::{Config, Profile};
use crate::session_check::cache::{self, Cache};
use crate::session_check::{Answer, Checker};
use crate::timer::Timer;
use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a signed-in answer is reused: a sign-out reaches new CONNECTs within this.
const USER_TTL: Duration = Duration::from_secs(30);
/// How long a "no session" answer is reused (a bad cookie cannot make us ask again and again).
const NO_SESSION_TTL: Duration = Duration::from_secs(5);
/// Answers kept at most.
const CACHE_CAP: usize = 10_000;
/// Longest opaque session id forwarded (Auth.js writes a UUID).
const MAX_ID_LEN: usize = 1024;

/// A CONNECT waiting for a session check.
struct Waiter {
    session: usize,
    /// The session's id: a slot reused by a later session has another.
    sid: String,
    ns: String,
    auth: Value,
}

/// One request in flight and the CONNECTs that wait for it.
struct InFlight {
    key: cache::Key,
    waiters: Vec<Waiter>,
}

/// Who a CONNECT is: the token verifier, and the session-check helper threads' handle, their
/// cache and the CONNECTs parked on them.
pub(crate) struct SessionChecks {
    /// JWS / JWE tokens and session cookies.
    pub verifier: crate::auth::Verifier,
    /// `None` without `--session-url` (or when the threads could not start).
    checker: Option<Checker>,
    timeout: Duration,
    cache: Cache<Answer>,
    next: u64,
    pending: HashMap<u64, InFlight>,
    by_key: HashMap<cache::Key, u64>,
    /// The last check failed: later failures log at debug until one succeeds.
    failing: bool,
    /// The endpoint's users lack `id`: said once.
    warned_no_id: bool,
}

impl SessionChecks {
    /// Starts the helper threads when a session URL is configured.
    pub fn start(config: &Config, waker: std::sync::Arc<mio::Waker>) -> Self {
        let checker = config.session_check.as_ref().and_then(|settings| {
            match Checker::spawn(settings, waker) {
                Ok(c) => {
                    log::info!("database sessions are checked at {}", settings.endpoint);
                    Some(c)
                }
                Err(e) => {
                    log::error!("cannot start the session check threads: {e}; opaque session cookies will be refused");
                    None
                }
            }
        });
        SessionChecks {
            verifier: crate::auth::Verifier::new(config),
            checker,
            timeout: config
                .session_check
                .as_ref()
                .map_or(Duration::ZERO, |s| s.timeout),
            cache: Cache::new(CACHE_CAP),
            next: 0,
            pending: HashMap::new(),
            by_key: HashMap::new(),
            failing: false,
            warned_no_id: false,
        }
    }
}

impl Server {
    /// The session cookie to check with the app, when this CONNECT rests on one: no
    /// `auth.token`, no bearer header, and a cookie that is not a JWT (an opaque database
    /// session id), with a session URL configured.
    pub(super) fn database_session(
        &self,
        s: usize,
        auth: &Value,
    ) -> Option<(&'static str, String)> {
        if self.auth.checker.is_none() || self.config.profile != Profile::Production {
            return None;
        }
        if !matches!(auth.get("token"), None | Some(Value::Null)) {
            return None;
        }
        match self.engine.credential(s)? {
            Credential::Cookie { name, value } if token_form(value) == TokenForm::Opaque => {
                Some((name, value.clone()))
            }
            _ => None,
        }
    }

    /// Answers the CONNECT from the cache, or parks it on a check (a new one, or the one in
    /// flight for the same cookie).
    pub(super) fn check_session(
        &mut self,
        s: usize,
        ns: &str,
        auth: Value,
        cookie: &'static str,
        value: String,
    ) {
        if value.is_empty()
            || value.len() > MAX_ID_LEN
            || value.bytes().any(|b| b.is_ascii_control())
        {
            return self.connect_as(s, ns, auth, Err(crate::auth::AuthError::Malformed.reason()));
        }
        let now = Instant::now();
        let key = cache::key(cookie, &value);
        if let Some(answer) = self.auth.cache.get(&key, now) {
            let identity = answer.identity().map(Some);
            return self.connect_as(s, ns, auth, identity);
        }
        let waiter = Waiter {
            session: s,
            sid: self.engine.sid(s).to_owned(),
            ns: ns.to_owned(),
            auth,
        };
        let checks = &mut self.auth;
        if let Some(id) = checks.by_key.get(&key) {
            if let Some(flight) = checks.pending.get_mut(id) {
                // A repeated CONNECT of this session to this namespace is answered with the
                // first (so a client cannot pile up waiters).
                if !flight
                    .waiters
                    .iter()
                    .any(|w| w.session == s && w.sid == waiter.sid && w.ns == waiter.ns)
                {
                    flight.waiters.push(waiter);
                }
                return;
            }
        }
        checks.next += 1;
        let id = checks.next;
        let deadline = now + checks.timeout;
        let sent = checks
            .checker
            .as_ref()
            .is_some_and(|c| c.check(id, cookie, &value, deadline).is_ok());
        if !sent {
            log::warn!("session check queue full; refusing a CONNECT");
            let Waiter {
                session, ns, auth, ..
            } = waiter;
            return self.connect_as(session, &ns, auth, Err("session check failed"));
        }
        checks.by_key.insert(key, id);
        checks.pending.insert(
            id,
            InFlight {
                key,
                waiters: vec![waiter],
            },
        );
        self.timers.at(deadline, Timer::SessionCheck { id });
    }

    /// Completes the CONNECTs whose session checks were answered (after a wake).
    pub(crate) fn drain_session_checks(&mut self) {
        loop {
            let Some((id, answer)) = self.auth.checker.as_ref().and_then(Checker::try_recv) else {
                return;
            };
            self.session_answered(id, answer);
            self.reap();
        }
    }

    /// A check's deadline passed: if it is still unanswered, its CONNECTs are refused (a late
    /// answer finds nothing waiting and is dropped).
    pub(crate) fn session_check_overdue(&mut self, id: u64) {
        if self.auth.pending.contains_key(&id) {
            let ms = self.auth.timeout.as_millis();
            self.session_answered(id, Answer::Failed(format!("no answer within {ms} ms")));
        }
    }

    fn session_answered(&mut self, id: u64, answer: Answer) {
        let checks = &mut self.auth;
        let Some(flight) = checks.pending.remove(&id) else {
            return;
        };
        checks.by_key.remove(&flight.key);
        let now = Instant::now();
        match &answer {
            Answer::Failed(why) => {
                // The endpoint and why, never the cookie.
                if checks.failing {
                    log::debug!("session check failed: {why}");
                } else {
                    log::warn!("session check failed: {why} (further failures log at debug until one succeeds)");
                }
                checks.failing = true;
            }
            Answer::User(_) => {
                checks.failing = false;
                checks.cache.put(flight.key, answer.clone(), USER_TTL, now);
            }
            Answer::NoSession | Answer::NoUserId => {
                checks.failing = false;
                if answer == Answer::NoUserId && !checks.warned_no_id {
                    checks.warned_no_id = true;
                    log::warn!("the session endpoint answers a user without `id`: expose it in the app's session callback (session.user.id = user.id)");
                }
                checks
                    .cache
                    .put(flight.key, answer.clone(), NO_SESSION_TTL, now);
            }
        }
        let identity = answer.identity().map(Some);
        for w in flight.waiters {
            // The session may have ended (or its slot gone to another) while we waited.
            if self.engine.by_sid(&w.sid) == Some(w.session) {
                self.connect_as(w.session, &w.ns, w.auth, identity.clone());
            }
        }
    }
}
