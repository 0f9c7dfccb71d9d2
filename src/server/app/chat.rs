//! Chat: typing indicators (throttled, self-expiring), messages (acked with a server id,
//! relayed, forwarded), delivery/read receipts, reactions, and notification reads.

use super::events::{ack, Call, Outcome};
use super::validate::{Payload, Refusal};
use super::Typing;
use crate::engineio::new_id;
use crate::server::deliver::Emit;
use crate::server::Server;
use crate::store::now_ms;
use crate::timer::Timer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A typing indicator stops by itself this long after its last refresh.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// At most one `typing:start` relay per user and conversation in this interval.
pub const TYPING_RELAY_EVERY: Duration = Duration::from_secs(2);
/// Longest chat message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;

impl Server {
    fn conversation_room(&self, sock: usize, p: &Payload) -> Result<(String, String), Refusal> {
        let conv = p.id("conversationId")?;
        let room = format!("conversation:{conv}");
        self.require_room(sock, &room)?;
        Ok((conv, room))
    }

    pub(super) fn typing_start(&mut self, c: &mut Call) -> Outcome {
        let (sock, user) = (c.sock, c.user.as_str());
        let (conv, room) = self.conversation_room(sock, &c.p)?;
        let now = Instant::now();
        let key = (user.to_owned(), conv.clone());
        // Generations are unique for the process: a timer of an earlier indicator of the same
        // user and conversation never matches a new one.
        let gen = self.io.next_uid();
        let relay = match self.app.typing.get_mut(&key) {
            Some(t) => {
                t.gen = gen;
                t.socket = sock;
                let due = now.duration_since(t.last_relay) >= TYPING_RELAY_EVERY;
                if due {
                    t.last_relay = now;
                }
                due
            }
            None => {
                self.app.typing.insert(
                    key,
                    Typing {
                        socket: sock,
                        gen,
                        last_relay: now,
                    },
                );
                true
            }
        };
        self.timers.at(
            now + TYPING_TIMEOUT,
            Timer::TypingExpire {
                user: user.to_owned(),
                conversation: conv.clone(),
                gen,
            },
        );
        if relay {
            self.relay_typing(sock, user, &conv, &room, "typing:start");
        }
        ack(json!({"ok": true}))
    }

    fn relay_typing(&mut self, sock: usize, user: &str, conv: &str, room: &str, event: &str) {
        let ns = self.sockets.get(sock).map_or(0, |s| s.ns);
        let body = json!({"conversationId": conv, "userId": user});
        let mut e = Emit::to_rooms(ns, event, vec![body], vec![room.to_owned()]);
        e.except = vec![format!("user:{user}")];
        e.volatile = true;
        self.mirror_typing(conv, user, event == "typing:start");
        self.deliver(&e);
    }

    pub(super) fn typing_stop(&mut self, c: &mut Call) -> Outcome {
        let (sock, user) = (c.sock, c.user.as_str());
        let (conv, room) = self.conversation_room(sock, &c.p)?;
        if self
            .app
            .typing
            .remove(&(user.to_owned(), conv.clone()))
            .is_some()
        {
            self.relay_typing(sock, user, &conv, &room, "typing:stop");
        }
        ack(json!({"ok": true}))
    }

    pub(crate) fn on_typing_expire(&mut self, user: &str, conv: &str, gen: u64) {
        let key = (user.to_owned(), conv.to_owned());
        if self.app.typing.get(&key).is_some_and(|t| t.gen == gen) {
            let t = self.app.typing.remove(&key).expect("checked above");
            self.relay_typing(
                t.socket,
                user,
                conv,
                &format!("conversation:{conv}"),
                "typing:stop",
            );
        }
    }

    /// A disconnecting socket stops the indicators it started.
    pub(super) fn typing_socket_gone(&mut self, sock: usize) {
        let Some(user) = self.sockets.user(sock).map(str::to_owned) else {
            return;
        };
        let mine: Vec<String> = self
            .app
            .typing
            .iter()
            .filter(|((u, _), t)| *u == user && t.socket == sock)
            .map(|((_, c), _)| c.clone())
            .collect();
        for conv in mine {
            self.app.typing.remove(&(user.clone(), conv.clone()));
            self.relay_typing(
                sock,
                &user,
                &conv,
                &format!("conversation:{conv}"),
                "typing:stop",
            );
        }
    }

    pub(super) fn message_new(&mut self, c: &mut Call) -> Outcome {
        let sock = c.sock;
        let (conv, room) = self.conversation_room(sock, &c.p)?;
        let text = c.p.text("text", MAX_MESSAGE_CHARS)?;
        let client_id = c.p.opt_text("clientId", 128)?;
        let attachments = match c.p.take("attachments") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_ATTACHMENTS => items
                .into_iter()
                .map(|i| match i {
                    Value::Object(m) => self.file_meta(&Payload(m)).map(Value::Object),
                    _ => Err(Refusal::invalid("a file must be an object")),
                })
                .collect::<Result<Vec<Value>, Refusal>>()?,
            Some(_) => {
                return Err(Refusal::invalid(format!(
                    "`attachments` must be an array of at most {MAX_ATTACHMENTS} files"
                )))
            }
        };
        let user = c.user.as_str();
        let id = new_id();
        let created_at = now_ms();
        let msg = json!({
            "id": id,
            "conversationId": conv,
            "senderId": user,
            "text": text,
            "attachments": attachments,
            "clientId": client_id,
            "createdAt": created_at,
        });
        let msg = self.relay(sock, &room, "message:new", msg);
        self.forward("message:new", &conv, Some(user), msg);
        ack(json!({"ok": true, "id": id, "createdAt": created_at}))
    }

    pub(super) fn receipt(&mut self, c: &mut Call) -> Outcome {
        let (sock, user, p, event) = (c.sock, c.user.as_str(), &c.p, c.event.name());
        let (conv, room) = self.conversation_room(sock, p)?;
        let message_id = p.id("messageId")?;
        let body = json!({"conversationId": conv, "messageId": message_id, "userId": user, "at": now_ms()});
        let body = self.relay(sock, &room, event, body);
        self.forward(event, &conv, Some(user), body);
        ack(json!({"ok": true}))
    }

    pub(super) fn reaction(&mut self, c: &mut Call) -> Outcome {
        let (sock, user, p, event) = (c.sock, c.user.as_str(), &c.p, c.event.name());
        let (conv, room) = self.conversation_room(sock, p)?;
        let message_id = p.id("messageId")?;
        let emoji = p.text("emoji", 32)?;
        let body = json!({"conversationId": conv, "messageId": message_id, "emoji": emoji, "userId": user});
        let body = self.relay(sock, &room, event, body);
        self.forward(event, &conv, Some(user), body);
        ack(json!({"ok": true}))
    }

    pub(super) fn notification_read(&mut self, c: &mut Call) -> Outcome {
        let (user, p) = (c.user.as_str(), &c.p);
        let body = if p.get("all") == Some(&Value::Bool(true)) {
            json!({"all": true, "userId": user})
        } else {
            json!({"notificationId": p.id("notificationId")?, "userId": user})
        };
        self.forward("notification:read", user, Some(user), body);
        ack(json!({"ok": true}))
    }
}
