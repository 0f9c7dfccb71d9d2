//! WebRTC call signaling: invites (with a grant to the call room and a timeout), accept,
//! reject, end, and `call:signal` relayed only to a participant's sockets in the call room.
//! Media never passes the server.

use super::events::{ack, Call as EventCall, Outcome};
use super::validate::{id_value, json_len, Refusal};
use crate::server::deliver::Emit;
use crate::server::Server;
use crate::timer::Timer;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// An invite not answered within this is missed.
pub const INVITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Invitees per call.
pub const MAX_INVITEES: usize = 16;
/// Largest signaling payload (SDP or ICE) in bytes of JSON.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct LiveCall {
    /// Unique for the process: a timer of an earlier call with the same id never matches.
    pub uid: u64,
    pub initiator: String,
    pub kind: String,
    /// Invited and not yet answered.
    pub invited: BTreeSet<String>,
    /// Joined (the initiator and everyone who accepted).
    pub participants: BTreeSet<String>,
}

impl Server {
    fn call_update(&mut self, call_id: &str, body: Value) {
        let rooms = vec![format!("call:{call_id}")];
        self.deliver(&Emit::to_rooms(0, "call:update", vec![body], rooms));
    }

    pub(super) fn call_invite(&mut self, c: &mut EventCall) -> Outcome {
        let (sock, user, p) = (c.sock, c.user.as_str(), &c.p);
        let call_id = p.id("callId")?;
        let kind = p.text("kind", 16)?;
        if !matches!(kind.as_str(), "voice" | "video" | "screen") {
            return Err(Refusal::invalid("`kind` must be voice, video or screen"));
        }
        let to: Vec<String> = match p.get("to") {
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_INVITEES => a
                .iter()
                .map(|v| id_value(v).ok_or_else(|| Refusal::invalid("`to` must be user ids")))
                .collect::<Result<_, _>>()?,
            v => v.and_then(id_value).map(|id| vec![id]).ok_or_else(|| {
                Refusal::invalid(format!(
                    "`to` must be a user id or 1 to {MAX_INVITEES} user ids"
                ))
            })?,
        };
        // Inviting yourself is a no-op.
        let invitees: Vec<String> = to.into_iter().filter(|u| u != user).collect();
        if self.sockets.get(sock).is_none_or(|x| x.ns != 0) {
            return Err(Refusal::forbidden("calls live in the main namespace"));
        }
        let room = format!("call:{call_id}");
        let new_uid = self.io.next_uid();
        let created = match self.app.calls.get_mut(&call_id) {
            Some(c) if c.initiator != user && !c.participants.contains(user) => {
                return Err(Refusal::forbidden("call id in use"))
            }
            Some(c) => {
                c.invited.extend(invitees.iter().cloned());
                false
            }
            None => {
                let mut participants = BTreeSet::new();
                participants.insert(user.to_owned());
                let invited = invitees.iter().cloned().collect();
                self.app.calls.insert(
                    call_id.clone(),
                    LiveCall {
                        uid: new_uid,
                        initiator: user.to_owned(),
                        kind: kind.clone(),
                        invited,
                        participants,
                    },
                );
                true
            }
        };
        self.grant(&room, user);
        if let Err(refusal) = self.join_checked(sock, &room) {
            // Nothing of a call that could not start stays behind.
            if created {
                self.app.calls.remove(&call_id);
                self.drop_grant(&room, user);
            }
            return Err(refusal);
        }
        let deadline = Instant::now() + INVITE_TIMEOUT;
        let call_uid = self.app.calls.get(&call_id).map_or(0, |c| c.uid);
        for invitee in &invitees {
            self.grant(&room, invitee);
            let body = json!({"callId": call_id, "from": user, "kind": kind});
            let e = Emit {
                users: vec![invitee.clone()],
                ..Emit::to_rooms(0, "call:invite", vec![body], Vec::new())
            };
            self.deliver(&e);
            self.timers.at(
                deadline,
                Timer::CallInviteTimeout {
                    call: call_id.clone(),
                    user: invitee.clone(),
                    uid: call_uid,
                },
            );
        }
        ack(json!({"ok": true}))
    }

    fn participants(&self, call_id: &str) -> Vec<String> {
        self.app
            .calls
            .get(call_id)
            .map(|c| c.participants.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn call_accept(&mut self, c: &mut EventCall) -> Outcome {
        let (sock, user) = (c.sock, c.user.as_str());
        let call_id = c.p.id("callId")?;
        if self.sockets.get(sock).is_none_or(|x| x.ns != 0) {
            return Err(Refusal::forbidden("calls live in the main namespace"));
        }
        let Some(call) = self.app.calls.get(&call_id) else {
            return Err(Refusal::new("not_found", "no such call"));
        };
        if !call.invited.contains(user) && !call.participants.contains(user) {
            return Err(Refusal::forbidden("not invited to this call"));
        }
        // Joined first: an accept that cannot join leaves the invite as it was.
        self.join_checked(sock, &format!("call:{call_id}"))?;
        let Some(call) = self.app.calls.get_mut(&call_id) else {
            return Err(Refusal::new("not_found", "no such call"));
        };
        call.invited.remove(user);
        call.participants.insert(user.to_owned());
        let kind = call.kind.clone();
        let participants = self.participants(&call_id);
        self.call_update(&call_id, json!({"callId": call_id, "state": "active", "kind": kind, "userId": user, "participants": participants}));
        ack(json!({"ok": true, "participants": participants}))
    }

    pub(super) fn call_reject(&mut self, c: &mut EventCall) -> Outcome {
        let user = c.user.as_str();
        let call_id = c.p.id("callId")?;
        let Some(call) = self.app.calls.get_mut(&call_id) else {
            return Err(Refusal::new("not_found", "no such call"));
        };
        if !call.invited.remove(user) {
            return Err(Refusal::forbidden("no pending invite for this call"));
        }
        self.revoke_grant(&format!("call:{call_id}"), user);
        self.call_update(
            &call_id,
            json!({"callId": call_id, "state": "rejected", "userId": user}),
        );
        ack(json!({"ok": true}))
    }

    pub(super) fn call_end(&mut self, c: &mut EventCall) -> Outcome {
        let user = c.user.as_str();
        let call_id = c.p.id("callId")?;
        let Some(call) = self.app.calls.get(&call_id) else {
            return Err(Refusal::new("not_found", "no such call"));
        };
        if !call.participants.contains(user) {
            return Err(Refusal::forbidden("not in this call"));
        }
        self.end_call(&call_id, Some(user));
        ack(json!({"ok": true}))
    }

    /// Tells the call room the call is over, then removes everyone and every grant.
    fn end_call(&mut self, call_id: &str, by: Option<&str>) {
        self.call_update(
            call_id,
            json!({"callId": call_id, "state": "ended", "userId": by}),
        );
        let Some(call) = self.app.calls.remove(call_id) else {
            return;
        };
        let room = format!("call:{call_id}");
        for u in call.participants.iter().chain(call.invited.iter()) {
            self.drop_grant(&room, u);
        }
        for m in self.sockets.members(0, &room) {
            self.leave(m, &room);
        }
    }

    /// A participant's last socket in the call room left (disconnect or leave): they are out
    /// of the call, and a call with fewer than two people left and no pending invite ends.
    pub(super) fn call_participant_left(&mut self, call_id: &str, user: &str) {
        let Some(call) = self.app.calls.get_mut(call_id) else {
            return;
        };
        if !call.participants.remove(user) {
            return;
        }
        let over = call.participants.len() < 2 && call.invited.is_empty();
        let room = format!("call:{call_id}");
        self.drop_grant(&room, user);
        if over {
            self.end_call(call_id, Some(user));
        } else {
            self.call_update(
                call_id,
                json!({"callId": call_id, "state": "left", "userId": user}),
            );
        }
    }

    pub(crate) fn on_call_invite_timeout(&mut self, call_id: &str, user: &str, uid: u64) {
        let Some(call) = self.app.calls.get_mut(call_id).filter(|c| c.uid == uid) else {
            return;
        };
        if !call.invited.remove(user) {
            return;
        }
        self.drop_grant(&format!("call:{call_id}"), user);
        let body = json!({"callId": call_id, "state": "missed", "userId": user});
        let e = Emit {
            users: vec![user.to_owned()],
            ..Emit::to_rooms(
                0,
                "call:update",
                vec![body],
                vec![format!("call:{call_id}")],
            )
        };
        self.deliver(&e);
        let lonely = self
            .app
            .calls
            .get(call_id)
            .is_some_and(|c| c.invited.is_empty() && c.participants.len() <= 1);
        if lonely {
            self.end_call(call_id, None);
        }
    }

    pub(super) fn call_signal(&mut self, c: &mut EventCall) -> Outcome {
        let sock = c.sock;
        let call_id = c.p.id("callId")?;
        let to = c.p.id("to")?;
        let room = format!("call:{call_id}");
        self.require_room(sock, &room)?;
        let Some(call) = self.app.calls.get(&call_id) else {
            return Err(Refusal::new("not_found", "no such call"));
        };
        if !call.participants.contains(&to) {
            return Err(Refusal::forbidden("`to` is not a participant of this call"));
        }
        let payload =
            c.p.take("payload")
                .ok_or_else(|| Refusal::invalid("`payload` is required"))?;
        if json_len(&payload) > MAX_SIGNAL_BYTES {
            return Err(Refusal::invalid(format!(
                "`payload` larger than {MAX_SIGNAL_BYTES} bytes"
            )));
        }
        // Only the addressee's sockets that are in the call room.
        let mut recipients = self.sockets.members(0, &room);
        recipients.retain(|&x| self.sockets.user(x) == Some(to.as_str()));
        recipients.sort_unstable();
        let body = json!({"callId": call_id, "from": c.user, "payload": payload});
        for r in &recipients {
            self.emit_to(*r, "call:signal", std::slice::from_ref(&body), Vec::new());
        }
        ack(json!({"ok": true, "delivered": recipients.len()}))
    }
}
