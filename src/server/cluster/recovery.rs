//! Recovery sessions in Redis: `socket.io:recovery:<pid>` (hash `sid`, `ns`, `u`, `r`, `co`)
//! is written when a socket connects and when its rooms change (so it exists before a
//! SIGKILL), refreshed while the socket lives, written with the window as TTL when its
//! transport is lost (or the node shuts down), and deleted on a deliberate disconnect.
//!
//! A CONNECT with a `pid` takes the session and reads the missed broadcasts in one script
//! (`SESSION_TAKE`: user check, trimmed-log check, `XRANGE` after the offset) and waits for
//! the answer. Logged broadcasts delivered meanwhile are captured for it; on the answer the
//! socket is restored, the range is replayed, then the captured ones after the log's last id
//! at read time (the rest were in the range): each once, in log order.

use super::*;
use crate::adapter::Broadcast;
use crate::engineio::wire::Outbound;
use crate::server::connect::{Connecting, Replay, Restored};
use std::rc::Rc;

/// Live broadcasts captured for one recovery in flight at most.
const CAPTURE_CAP: usize = 10_000;

/// A log entry id `ms-seq`, ordered.
type LogId = (u64, u64);

fn parse_id(s: &str) -> Option<LogId> {
    let (ms, seq) = s.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A logged broadcast delivered while a recovery was in flight.
#[derive(Debug)]
pub(crate) struct Captured {
    id: LogId,
    msg: Rc<Outbound>,
    all: bool,
    rooms: Vec<String>,
    except: Vec<String>,
}

/// What a recovered socket gets replayed: the range read with its session, the log's last
/// id at that moment, and what was captured while the answer travelled.
#[derive(Debug)]
pub(crate) struct RemoteReplay {
    entries: Vec<(String, Vec<u8>)>,
    tip: LogId,
    captured: Vec<Captured>,
}

/// A CONNECT waiting for its session from Redis.
#[derive(Debug)]
pub(crate) struct Recovering {
    c: Connecting,
    qid: u64,
    pid: String,
    ns: usize,
}

#[derive(Debug, Default)]
pub(crate) struct RecoveryState {
    /// Whether the Redis helper has said up or down since start (before that a CONNECT with
    /// a pid waits: right after a restart, Redis is where its session is).
    known: bool,
    waiting: Vec<(Connecting, usize)>,
    /// Captures of recoveries in flight: (query id, namespace, captured).
    inflight: Vec<(u64, usize, Vec<Captured>)>,
    refreshed_at: Option<Instant>,
    /// Sockets restored from Redis and the last log id their replay covered: a logged
    /// broadcast up to it that comes back only now was replayed already (namespace, socket
    /// id, last id). Dropped once a later id arrives in the namespace (pub/sub is in log
    /// order).
    replayed: Vec<(usize, String, LogId)>,
    /// The socket being removed: its leaves do not rewrite its session.
    pub removing: Option<usize>,
}

/// Whether a broadcast to `rooms` (all when `all`) except `except` reaches a socket in `own`.
fn addressed(all: bool, rooms: &[String], except: &[String], own: &[String]) -> bool {
    (all || rooms.iter().any(|r| own.contains(r))) && !except.iter().any(|r| own.contains(r))
}

impl Server {
    fn session_key(&self, pid: &str) -> String {
        self.cluster.key(&["recovery", pid])
    }

    fn window_ms(&self) -> u64 {
        self.config.recovery_window.as_millis().max(1) as u64
    }

    /// TTL of a live socket's session: outlives the refresh period, so a SIGKILLed node's
    /// sockets stay recoverable for at least the window.
    fn live_ttl_ms(&self) -> u64 {
        let w = self.window_ms();
        w + w / 3 + 2_000
    }

    fn sessions_on(&self) -> bool {
        self.cluster.redis.is_some() && !self.config.recovery_window.is_zero()
    }

    /// Writes a new (or restored) socket's session.
    pub(crate) fn session_open(&mut self, sock: usize) {
        if !self.sessions_on() {
            return;
        }
        let Some(x) = self.sockets.get(sock) else {
            return;
        };
        let Some(pid) = &x.pid else { return };
        let nsp = self.sockets.ns_name(x.ns);
        let keys = [
            self.session_key(pid),
            self.cluster.key(&["recovery-log", nsp]),
        ];
        let args = [
            x.id.to_string(),
            nsp.to_owned(),
            x.user.clone().unwrap_or_default(),
            json!(x.room_list()).to_string(),
            self.live_ttl_ms().to_string(),
        ];
        self.cluster.write(vec![eval(SESSION_OPEN, &keys, &args)]);
    }

    /// A live socket's rooms changed: its session follows.
    pub(crate) fn session_rooms(&mut self, sock: usize) {
        if !self.sessions_on() || self.cluster.rec.removing == Some(sock) {
            return;
        }
        let Some(x) = self.sockets.get(sock) else {
            return;
        };
        let Some(pid) = &x.pid else { return };
        let key = self.session_key(pid);
        let mut h = cmd("HSET");
        h.arg(&key).arg("r").arg(json!(x.room_list()).to_string());
        let mut e = cmd("PEXPIRE");
        e.arg(&key).arg(self.live_ttl_ms());
        self.cluster.write(vec![h, e]);
    }

    /// A socket lost its transport: its session waits for the window.
    pub(crate) fn session_lost(&mut self, pid: &str, saved: &crate::store::recovery::Saved) {
        if !self.sessions_on() {
            return;
        }
        let key = self.session_key(pid);
        let mut h = cmd("HSET");
        h.arg(&key)
            .arg("sid")
            .arg(&saved.sid)
            .arg("ns")
            .arg(self.sockets.ns_name(saved.ns))
            .arg("u")
            .arg(saved.user.as_deref().unwrap_or(""))
            .arg("r")
            .arg(json!(saved.rooms).to_string());
        let mut e = cmd("PEXPIRE");
        e.arg(&key).arg(self.window_ms());
        self.cluster.write(vec![h, e]);
    }

    /// A deliberate disconnect (or an in-process restore): the session goes.
    pub(crate) fn session_drop(&mut self, pid: &str) {
        if !self.sessions_on() {
            return;
        }
        let mut c = cmd("DEL");
        c.arg(self.session_key(pid));
        self.cluster.write(vec![c]);
    }

    /// After Redis (re)connects: every live socket's session is written again (Redis may
    /// have restarted empty).
    pub(super) fn reopen_sessions(&mut self) {
        let live: Vec<usize> = self
            .sockets
            .iter()
            .filter(|(_, x)| x.pid.is_some())
            .map(|(k, _)| k)
            .collect();
        for sock in live {
            self.session_open(sock);
        }
    }

    /// Renews the sessions of live sockets every third of the window (one pipeline).
    pub(super) fn refresh_sessions(&mut self, now: Instant) {
        let every = (self.config.recovery_window / 3).max(Duration::from_secs(1));
        if self
            .cluster
            .rec
            .refreshed_at
            .is_some_and(|t| now.duration_since(t) < every)
        {
            return;
        }
        self.cluster.rec.refreshed_at = Some(now);
        let ttl = self.live_ttl_ms();
        let cmds: Vec<redis::Cmd> = self
            .sockets
            .iter()
            .filter_map(|(_, x)| x.pid.as_deref())
            .map(|pid| {
                let mut c = cmd("PEXPIRE");
                c.arg(self.session_key(pid)).arg(ttl);
                c
            })
            .collect();
        self.cluster.write(cmds);
    }

    /// Redis said up or down for the first time: CONNECTs that waited for it go on.
    pub(super) fn redis_state_known(&mut self) {
        if self.cluster.rec.known {
            return;
        }
        self.cluster.rec.known = true;
        for (c, _) in std::mem::take(&mut self.cluster.rec.waiting) {
            if let Some(ns) = self.resume_target(&c) {
                self.connect_with(c, ns);
            }
        }
    }

    /// Asks Redis for the session `pid`. `Some(c)` hands the CONNECT back to be completed
    /// in-process (no Redis, Redis down: counted as a fallback).
    pub(crate) fn recover_from_redis(
        &mut self,
        c: Connecting,
        ns: usize,
        pid: &str,
    ) -> Option<Connecting> {
        let Some(redis) = &self.cluster.redis else {
            return Some(c);
        };
        if !self.cluster.rec.known {
            self.cluster.rec.waiting.push((c, ns));
            return None;
        }
        if !self.cluster.stats.redis_up {
            self.cluster.stats.recovery_fallbacks += 1;
            return Some(c);
        }
        let offset = match c.auth.get("offset") {
            Some(Value::String(o)) => o.clone(),
            _ => String::new(),
        };
        let nsp = self.sockets.ns_name(ns).to_owned();
        let keys = [
            self.session_key(pid),
            self.cluster.key(&["recovery-log", &nsp]),
        ];
        let args = [c.user.clone().unwrap_or_default(), nsp, offset];
        self.cluster.pending.next += 1;
        let qid = self.cluster.pending.next;
        if redis
            .query(qid, vec![eval(SESSION_TAKE, &keys, &args)])
            .is_err()
        {
            self.cluster.stats.recovery_fallbacks += 1;
            return Some(c);
        }
        let r = Recovering {
            c,
            qid,
            pid: pid.to_owned(),
            ns,
        };
        self.cluster
            .pending
            .by_id
            .insert(qid, Pending::Recover(Box::new(r)));
        self.cluster.rec.inflight.push((qid, ns, Vec::new()));
        None
    }

    /// The answer of SESSION_TAKE.
    pub(super) fn on_recover_reply(
        &mut self,
        r: Recovering,
        result: Result<Vec<redis::Value>, String>,
    ) {
        let inflight = &mut self.cluster.rec.inflight;
        let captured = inflight
            .iter()
            .position(|(q, ..)| *q == r.qid)
            .map(|i| inflight.swap_remove(i).2)
            .unwrap_or_default();
        let Some(ns) = self.resume_target(&r.c) else {
            return;
        };
        let items = match result.as_ref().ok().and_then(|v| v.first()) {
            Some(redis::Value::Array(items)) => items.as_slice(),
            _ => {
                self.cluster.stats.recovery_fallbacks += 1;
                return self.connect_local(r.c, ns);
            }
        };
        match items.first().and_then(as_i64) {
            Some(2) => {}
            Some(1) => {
                self.cluster.stats.recovery_refused += 1;
                log::warn!(
                    "refused a recovery: session {} belongs to another user",
                    self.engine.sid(r.c.s)
                );
                return self.finish_connect(r.c, ns, None);
            }
            Some(3) => return self.finish_connect(r.c, ns, None),
            // Unknown here: it may have been saved in-process while Redis was down.
            _ => return self.connect_local(r.c, ns),
        }
        let text = |i: usize| items.get(i).and_then(as_string).unwrap_or_default();
        let sid = text(1);
        if sid.is_empty() || self.sockets.by_id(&sid).is_some() {
            return self.finish_connect(r.c, ns, None);
        }
        let rooms: Vec<String> = serde_json::from_str(&text(2)).unwrap_or_default();
        let tip = parse_id(&text(3)).unwrap_or((0, 0));
        let entries = items[4..]
            .chunks(2)
            .filter_map(|p| match p {
                [id, redis::Value::BulkString(slot)] => Some((as_string(id)?, slot.clone())),
                _ => None,
            })
            .collect();
        // Its in-process copy (if any) is spent too.
        let _ = self.stores.recovery.take(&r.pid, r.ns, Instant::now());
        self.cluster.stats.recovered_redis += 1;
        let restored = Restored {
            pid: r.pid,
            sid,
            rooms,
            replay: Replay::Remote(RemoteReplay {
                entries,
                tip,
                captured,
            }),
            disconnected_at: Instant::now(),
        };
        self.finish_connect(r.c, ns, Some(restored));
    }

    /// A logged broadcast was delivered: recoveries in flight in its namespace keep it.
    pub(crate) fn capture_for_recoveries(
        &mut self,
        ns: usize,
        id: &str,
        msg: &Rc<Outbound>,
        all: bool,
        rooms: &[String],
        except: &[String],
    ) {
        if self.cluster.rec.inflight.is_empty() {
            return;
        }
        let Some(id) = parse_id(id) else { return };
        for (_, n, captured) in &mut self.cluster.rec.inflight {
            if *n == ns && captured.len() < CAPTURE_CAP {
                captured.push(Captured {
                    id,
                    msg: Rc::clone(msg),
                    all,
                    rooms: rooms.to_vec(),
                    except: except.to_vec(),
                });
            }
        }
    }

    /// The broadcasts a socket restored from Redis missed, in log order: the range read with
    /// its session, then what was captured after the log's last id at that moment.
    pub(crate) fn remote_missed(
        &mut self,
        ns: usize,
        sid: &str,
        own: &[String],
        r: RemoteReplay,
    ) -> Vec<Rc<Outbound>> {
        let nsp = self.sockets.ns_name(ns).to_owned();
        let channel = format!("{PREFIX}#{nsp}#");
        let mut out = Vec::new();
        let mut last = r.tip;
        for (id, slot) in r.entries {
            let payload = adapter::fill_slot(&slot, &id);
            let b = match adapter::decode_broadcast(channel.as_bytes(), &payload, PREFIX) {
                Ok(b) => b,
                Err(e) => {
                    log::warn!("skipping an undecodable recovery log entry {id}: {e}");
                    continue;
                }
            };
            if let Some(p) = parse_id(&id) {
                last = last.max(p);
            }
            if addressed(b.rooms.is_empty(), &b.rooms, &b.except, own) {
                if let Some(m) = replay_message(&nsp, b, &id) {
                    out.push(Rc::new(m));
                }
            }
        }
        for c in r.captured {
            if c.id > last && addressed(c.all, &c.rooms, &c.except, own) {
                last = c.id;
                out.push(c.msg);
            }
        }
        self.cluster.rec.replayed.push((ns, sid.to_owned(), last));
        out
    }

    /// Socket ids a logged broadcast `id` of namespace `ns` must skip: restored sockets whose
    /// replay covered it (its publication came back after the replay was read).
    pub(crate) fn replayed_already(&mut self, ns: usize, id: &str) -> Vec<String> {
        let Some(id) = parse_id(id) else {
            return Vec::new();
        };
        let replayed = &mut self.cluster.rec.replayed;
        replayed.retain(|(n, _, last)| *n != ns || id <= *last);
        replayed
            .iter()
            .filter(|(n, ..)| *n == ns)
            .map(|(_, sid, _)| sid.clone())
            .collect()
    }
}

/// The Socket.IO message of a logged broadcast, its entry id as the offset.
fn replay_message(nsp: &str, b: Broadcast, id: &str) -> Option<Outbound> {
    let Value::Array(mut data) = b.event_args else {
        return None;
    };
    if data.is_empty() {
        return None;
    }
    let event = match data.remove(0) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let tail = Value::String(id.to_owned());
    Some(crate::socketio::event_with(
        nsp,
        &event,
        &data,
        Some(&tail),
        b.attachments,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_order_by_time_then_sequence_not_as_text() {
        let ids = ["999-5", "1000-0", "1000-10", "1000-9"].map(|s| parse_id(s).unwrap());
        assert!(ids[0] < ids[1] && ids[1] < ids[3] && ids[3] < ids[2]);
        assert_eq!(parse_id("12"), None, "an in-process offset is no log id");
        assert_eq!(parse_id("a-1"), None);
    }

    #[test]
    fn replay_selection_honours_rooms_everyone_and_except() {
        let own = ["s1".to_string(), "a".to_string()];
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(addressed(false, &v(&["a", "b"]), &[], &own));
        assert!(
            addressed(false, &v(&["s1"]), &[], &own),
            "its own id is a room"
        );
        assert!(!addressed(false, &v(&["b"]), &[], &own));
        assert!(addressed(true, &[], &v(&["b"]), &own), "to everyone");
        assert!(!addressed(true, &[], &v(&["s1"]), &own), "except its id");
        assert!(!addressed(false, &v(&["a"]), &v(&["a"]), &own));
    }
}
