//! The event loop: one mio `Poll` and the parts it composes, each owning its state behind a
//! few verbs:
//!
//! ```text
//! Io       poll, listener, connection slab, read buffer, owed-write FIFO, write pass
//! Engine   Engine.IO sessions: sids, transports, polling queue, upgrade, heartbeats
//! Sockets  namespaces, sockets, rooms; recipient selection from plain data
//! Stores   grants, presence, mailbox, outbox, recovery, dedup, rate limits
//! app      the platform's feature state (typing, calls, documents, quizzes, classes)
//! Cluster  the Redis and Kafka helper threads and the work parked on their replies
//! session  database session checks and the CONNECTs parked on them
//! admin    the Socket.IO Admin UI namespace (only when configured)
//! ```
//!
//! Cross-part flows are `impl Server` blocks in the sibling modules: `input` (bytes to the
//! protocol of each connection), `http` (requests and routing), `engine` (Engine.IO),
//! `sio` (Socket.IO packets, connect, disconnect), `deliver` (the one delivery path), `api`
//! (the internal HTTP API), `app` (event handlers) and `cluster`. A part that decides a
//! connection or session must end records the wish; [`Server::reap`] acts on it after each
//! dispatch, so no flow finds state gone under its feet.

mod admin;
mod api;
mod app;
mod cluster;
mod conn;
mod connect;
mod deliver;
mod engine;
mod http;
mod input;
mod io;
mod session;
mod sio;
mod sockets;
mod stores;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::timer::{Timer, Timers};
use conn::ConnKind;
use conn::Phase;
use engine::{CloseReason, Engine};
use io::{Io, Timeouts, FIRST_CONN, INTERNAL, LISTENER, SIGNALS};
use mio::{Events, Token};
use sockets::Sockets;
use std::io as stdio;
use std::time::{Duration, Instant};
use stores::Stores;

/// Helper threads (Redis, Kafka, session checks) wake the loop through this token.
const WAKER: Token = Token(2);
/// How often connections past their phase deadline are looked for (the deadlines are exact
/// to this).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Longest a shutdown waits for queued output to reach clients.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(3000);
/// How often stores drop expired entries.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
/// Offline users are forgotten this long after they were last seen.
const PRESENCE_KEEP_MS: u64 = 24 * 3600 * 1000;

/// The loop and its parts; only the loop thread touches them.
pub struct Server {
    io: Io,
    engine: Engine,
    sockets: Sockets,
    stores: Stores,
    /// Feature state of the application layer.
    app: app::State,
    /// The Admin UI namespace's watchers and stats (inert unless configured).
    admin: admin::Admin,
    /// Redis and Kafka helper threads, when configured.
    cluster: cluster::Cluster,
    /// Token verification, database session checks and the CONNECTs waiting on them.
    auth: session::SessionChecks,
    pub(crate) config: Config,
    metrics: Metrics,
    timers: Timers,
    shutting_down: bool,
}

impl Server {
    /// Builds a server around a bound listener.
    ///
    /// # Errors
    /// Creating the poll or registering the listener or signal handler failed.
    pub fn new(
        listener: std::net::TcpListener,
        internal: Option<std::net::TcpListener>,
        config: Config,
    ) -> stdio::Result<Self> {
        let timeouts = Timeouts {
            head: config.edge.head_timeout,
            body: config.edge.body_timeout,
        };
        let io = Io::new(listener, internal, timeouts)?;
        let waker = std::sync::Arc::new(mio::Waker::new(io.registry(), WAKER)?);
        let mut timers = Timers::default();
        timers.at(Instant::now() + SWEEP_EVERY, Timer::Sweep);
        timers.at(Instant::now() + MAINTENANCE_EVERY, Timer::Maintenance);
        let session_checks = session::SessionChecks::start(&config, std::sync::Arc::clone(&waker));
        // The admin namespace is served only when configured, after the application's.
        let mut namespaces = config.namespaces.clone();
        let admin_ns = config.admin.as_ref().map(|a| {
            namespaces.push(a.namespace.clone());
            namespaces.len() - 1
        });
        let mut server = Server {
            io,
            engine: Engine::new(
                config.ping_interval,
                config.ping_timeout,
                config.connect_timeout,
            ),
            sockets: Sockets::new(&namespaces),
            stores: Stores::new(&config),
            app: app::State::default(),
            admin: admin::Admin::new(admin_ns, &config, &waker),
            cluster: cluster::Cluster::new(config.node_id.clone(), waker),
            auth: session_checks,
            config,
            metrics: Metrics::default(),
            timers,
            shutting_down: false,
        };
        server.start_cluster();
        server.start_admin();
        Ok(server)
    }

    /// Runs the loop until a SIGTERM/SIGINT shutdown completes.
    ///
    /// # Errors
    /// Only a failure of the poll itself; connection errors close that connection.
    pub fn run(&mut self) -> stdio::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut again = Vec::new();
        loop {
            let timeout = if self.io.output_owed() || !again.is_empty() {
                // Output or input is still owed from the last turn: look, then go on.
                Some(Duration::ZERO)
            } else {
                self.next_timeout()
            };
            if let Err(e) = self.io.poll_mut().poll(&mut events, timeout) {
                if io::interrupted(&e) {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(false),
                    INTERNAL => self.accept(true),
                    SIGNALS => self.on_signal(),
                    WAKER => {
                        self.drain_cluster();
                        self.drain_session_checks();
                        self.drain_admin_logins();
                    }
                    Token(t) if t >= FIRST_CONN => {
                        let key = t - FIRST_CONN;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let hup = event.is_read_closed() || event.is_error();
                            self.on_readable(key, hup);
                        }
                        if event.is_writable() {
                            self.io.mark_dirty(key);
                        }
                    }
                    // Sporadic events for tokens we no longer own can be ignored.
                    _ => {}
                }
                self.reap();
            }
            // Connections that hit the read cap last turn get their next slice now.
            for key in std::mem::take(&mut again) {
                // No event to go by: read until `WouldBlock`.
                self.on_readable(key, true);
                self.reap();
            }
            again = self.io.take_read_again();
            self.run_timers();
            self.flush();
            if self.shutting_down && self.shutdown_complete() {
                self.stop_cluster();
                log::info!("shutdown complete");
                return Ok(());
            }
        }
    }

    /// Acts on the close wishes recorded during a dispatch: sessions end (their sockets
    /// disconnect, which may record more wishes), then connections close and the sessions
    /// they carried let go of them. Repeats until nothing is left.
    fn reap(&mut self) {
        while self.engine.has_closing() || self.io.has_closing() {
            for (s, reason) in self.engine.take_closing() {
                self.end_session(s, reason);
            }
            for closed in self.io.take_closing() {
                self.detach(closed);
            }
        }
    }

    fn accept(&mut self, internal: bool) {
        loop {
            match self.io.accept(internal) {
                Ok(Some((stream, peer))) => {
                    if self.shutting_down || !self.make_room(internal) {
                        self.metrics.connections_refused += 1;
                        log::warn!(
                            "refusing connection from {peer}: connection limit {} reached",
                            self.config.max_connections
                        );
                        continue;
                    }
                    if self.io.add(stream, internal).is_some() {
                        self.metrics.connections_accepted += 1;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    // Out of file descriptors (or similar): stop accepting for a moment
                    // instead of spinning on a listener that stays readable.
                    self.metrics.accept_errors += 1;
                    log::warn!("accept failed: {e}; pausing accepts for 100 ms");
                    if self.io.pause_accept() {
                        let at = Instant::now() + Duration::from_millis(100);
                        self.timers.at(at, Timer::ResumeAccept);
                    }
                    return;
                }
            }
        }
    }

    /// At `--max-connections`, a connection that has no Engine.IO session yet (a slow or idle
    /// HTTP peer) gives its slot to the new one; `false` when none can. The internal
    /// listener's connections are not counted against the limit.
    fn make_room(&mut self, internal: bool) -> bool {
        if internal || self.io.live() < self.config.max_connections {
            return true;
        }
        if !self.io.evict_for_slot() {
            return false;
        }
        self.metrics.slot_evictions += 1;
        self.reap();
        true
    }

    /// Writes owed output (one slice) and answers held polls that got messages.
    fn flush(&mut self) {
        let mut resume = Vec::new();
        loop {
            // Answering polls queues bytes; flushing can complete polls (a close): both.
            if self.engine.polls_owed() {
                self.flush_polls();
                self.reap();
            }
            self.io.flush(&mut self.metrics, &mut resume);
            for key in resume.drain(..) {
                // Pipelined requests waited behind a long-poll; serve them now.
                self.on_data(key, &mut []);
            }
            self.reap();
            if !self.engine.polls_owed() {
                return;
            }
        }
    }

    /// Tells the session layer a connection no longer carries it.
    fn detach(&mut self, closed: io::Closed) {
        match closed.kind {
            ConnKind::Http {
                pending_poll: Some(s),
            } => self.poll_conn_gone(s, closed.key),
            ConnKind::WebSocket { session, .. } => {
                self.on_ws_closed(session, closed.key, closed.reason)
            }
            ConnKind::Http { pending_poll: None } | ConnKind::Lingering => {}
        }
    }

    /// Until the earliest timer or heartbeat; `None` when nothing is armed.
    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let beat = self
            .engine
            .next_beat()
            .map(|at| crate::timer::timeout_until(now, at));
        match (self.timers.next_timeout(now), beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        self.run_heartbeats(now);
        while let Some(timer) = self.timers.pop_due(now) {
            self.on_timer(timer, now);
            self.reap();
        }
    }

    fn on_timer(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::PresenceGrace { user, gen } => self.on_presence_grace(&user, gen),
            Timer::TypingExpire {
                user,
                conversation,
                gen,
            } => self.on_typing_expire(&user, &conversation, gen),
            Timer::CallInviteTimeout { call, user, uid } => {
                self.on_call_invite_timeout(&call, &user, uid)
            }
            Timer::QuizFlush { quiz } => self.on_quiz_flush(&quiz),
            Timer::ClassFlush { class } => self.on_class_flush(&class),
            Timer::Maintenance => {
                self.stores.mailbox.expire(now);
                self.stores.recovery.expire(now);
                self.stores.dedup.expire(now);
                let cutoff = crate::store::now_ms().saturating_sub(PRESENCE_KEEP_MS);
                self.stores.presence.prune(cutoff);
                self.refresh_redis();
                self.timers.at(now + MAINTENANCE_EVERY, Timer::Maintenance);
            }
            Timer::UpgradeTimeout {
                session,
                uid,
                conn,
                conn_uid,
            } => self.on_upgrade_timeout(session, uid, conn, conn_uid),
            Timer::Sweep => {
                self.sweep_idle(now);
                self.recovery_log_tick(now);
            }
            Timer::SessionCheck { id } => self.session_check_overdue(id),
            Timer::AdminStats => self.on_admin_stats(now),
            Timer::ResumeAccept => {
                if !self.shutting_down && self.io.resume_accept() {
                    self.accept(false);
                    self.accept(true);
                }
            }
            Timer::ShutdownDeadline => {
                log::warn!("shutdown grace period over; closing remaining connections");
                for s in self.engine.keys() {
                    self.engine.close(s, CloseReason::Shutdown);
                }
                let keys: Vec<usize> = self.io.iter().map(|(k, _)| k).collect();
                for k in keys {
                    self.io.close(k, "server shutdown");
                }
            }
        }
    }

    /// Closes connections past their phase deadline: a request head or body that is late is
    /// answered 408 first; an idle or lingering connection goes quietly.
    fn sweep_idle(&mut self, now: Instant) {
        for (key, phase) in self.io.expired(now) {
            match phase {
                Phase::Head | Phase::Body => {
                    self.metrics.request_timeouts += 1;
                    log::debug!("connection {key}: request {phase:?} not complete in time");
                    let body = crate::http::response::error_json("request timeout");
                    let resp = crate::http::response::Response::new(408).json(body);
                    self.respond(key, resp, false);
                }
                Phase::Idle | Phase::Linger | Phase::Session => self.io.close(key, "idle"),
            }
        }
        self.timers.at(now + SWEEP_EVERY, Timer::Sweep);
    }

    /// SIGTERM/SIGINT: stop accepting and close every transport without a Socket.IO
    /// DISCONNECT, so clients see a lost connection and reconnect with their usual backoff
    /// (to the restarted server, or another node); queued output is flushed first, within
    /// the grace.
    fn on_signal(&mut self) {
        let got = self.io.pending_signals();
        if got.is_empty() || self.shutting_down {
            return;
        }
        log::info!(
            "signal {} received: closing {} sessions so their clients reconnect, then exiting",
            got[0],
            self.engine.len()
        );
        self.shutting_down = true;
        self.io.pause_accept();
        self.timers
            .at(Instant::now() + SHUTDOWN_GRACE, Timer::ShutdownDeadline);
        for s in self.engine.keys() {
            self.shutdown_session(s);
        }
        // Connections without a session have nothing to say goodbye to.
        let idle: Vec<usize> = self
            .io
            .iter()
            .filter(|(_, c)| {
                matches!(c.kind, ConnKind::Http { pending_poll: None }) && c.out.is_empty()
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.io.close(k, "server shutdown");
        }
    }

    fn shutdown_complete(&self) -> bool {
        self.engine.is_empty()
            && self.io.iter().all(|(_, c)| {
                c.out.is_empty() && matches!(c.kind, ConnKind::Http { .. } | ConnKind::Lingering)
            })
    }
}

/// Binds nothing itself: runs the server on an already bound listener (tests bind port 0,
/// systemd can hand over a socket).
///
/// # Errors
/// Setting up or running the poll failed.
pub fn run(listener: std::net::TcpListener, config: Config) -> stdio::Result<()> {
    Server::new(listener, None, config)?.run()
}

#[cfg(test)]
mod size_tests {
    /// Per-connection memory is a benchmark target (issues 5 and 13): keep these structs
    /// small. Issue 13 took them from 168 + 208 + 184 to 152 + 144 + 184 bytes; the sid kept
    /// inline then grew by 8 bytes to hold its slot digits, which removed the sid and
    /// socket-id tables (an entry per session and per socket) altogether.
    #[test]
    fn per_connection_structs_stay_small() {
        let conn = std::mem::size_of::<super::conn::Conn>();
        let session = std::mem::size_of::<super::engine::Session>();
        let socket = std::mem::size_of::<super::sockets::Socket>();
        eprintln!("Conn {conn} B, Session {session} B, Socket {socket} B");
        assert!(
            conn + session + socket <= 488,
            "Conn {conn} + Session {session} + Socket {socket}"
        );
    }
}
