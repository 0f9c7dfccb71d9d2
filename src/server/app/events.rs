//! The platform's client events in one table: name, variant, rate-limit class and handler. An
//! incoming event name is looked up once ([`Event::parse`]); everything after that uses the
//! variant. The event contract is docs/EVENTS.md.

use super::validate::{Payload, Refusal};
use crate::server::Server;
use crate::store::ratelimit::Class;
use bytes::Bytes;
use serde_json::Value;

/// What a handler answers.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Done: the ack carries this value.
    Ack(Value),
    /// The handler answers later itself (it waits for Redis) with the call's ack id.
    Later,
}

/// A handler's result: a reply, or a refusal sent as `{ok:false, error, message}`.
pub type Outcome = Result<Reply, Refusal>;

/// `Ok(Reply::Ack(v))`.
pub fn ack(v: Value) -> Outcome {
    Ok(Reply::Ack(v))
}

/// One client event on its way through a handler.
#[derive(Debug)]
pub struct Call {
    pub event: Event,
    pub sock: usize,
    pub user: String,
    /// The client's ack id, for a handler that answers later.
    pub ack: Option<u64>,
    pub p: Payload,
    pub attachments: Vec<Bytes>,
}

type Handler = fn(&mut Server, &mut Call) -> Outcome;

macro_rules! events {
    ($($variant:ident $name:literal $class:ident $handler:ident;)*) => {
        /// A client event the platform handles.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Event { $($variant),* }

        /// The table: every row is (variant, wire name, rate-limit class, handler).
        const EVENTS: &[(Event, &str, Class, Handler)] = &[
            $((Event::$variant, $name, Class::$class, Server::$handler)),*
        ];
    };
}

events! {
    RoomJoin "room:join" Rooms room_join;
    RoomLeave "room:leave" Rooms room_leave;
    PresenceSubscribe "presence:subscribe" Presence presence_subscribe;
    PresenceUnsubscribe "presence:unsubscribe" Presence presence_unsubscribe;
    TypingStart "typing:start" Typing typing_start;
    TypingStop "typing:stop" Typing typing_stop;
    MessageNew "message:new" Chat message_new;
    MessageDelivered "message:delivered" Chat receipt;
    MessageRead "message:read" Chat receipt;
    ReactionAdd "reaction:add" Chat reaction;
    ReactionRemove "reaction:remove" Chat reaction;
    NotificationRead "notification:read" Chat notification_read;
    CallInvite "call:invite" Signal call_invite;
    CallAccept "call:accept" Signal call_accept;
    CallReject "call:reject" Signal call_reject;
    CallEnd "call:end" Signal call_end;
    CallSignal "call:signal" Signal call_signal;
    DocumentEdit "document:edit" Collab document_edit;
    DocumentCursor "document:cursor" Collab document_cursor;
    WhiteboardStroke "whiteboard:stroke" Collab whiteboard_stroke;
    FileShared "file:shared" Chat file_shared;
    ClassMessage "class:message" Chat class_message;
    QuizAnswer "quiz:answer" Other quiz_answer;
    ClassJoin "class:join" Other class_join;
    ClassLeave "class:leave" Other class_leave;
}

impl Event {
    /// The variant for a wire name; `None` for an unknown event.
    pub fn parse(name: &str) -> Option<Event> {
        EVENTS.iter().find(|row| row.1 == name).map(|row| row.0)
    }

    fn row(self) -> &'static (Event, &'static str, Class, Handler) {
        EVENTS
            .iter()
            .find(|row| row.0 == self)
            .expect("every variant has a row: the macro builds both from one list")
    }

    pub fn name(self) -> &'static str {
        self.row().1
    }

    pub fn class(self) -> Class {
        self.row().2
    }

    /// Runs the event's handler.
    pub fn handle(self, server: &mut Server, call: &mut Call) -> Outcome {
        (self.row().3)(server, call)
    }
}

/// The event name of a client EVENT's first argument (a string, or a number as the reference
/// server accepts).
pub fn event_name(first: &Value) -> std::borrow::Cow<'_, str> {
    match first {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_own_row() {
        for &(event, name, class, _) in EVENTS {
            assert_eq!(Event::parse(name), Some(event), "{name}");
            assert_eq!(event.name(), name);
            assert_eq!(event.class(), class);
        }
        assert_eq!(Event::parse("room:joined"), None);
        assert_eq!(Event::parse(""), None);
    }

    #[test]
    fn rate_limit_classes_of_the_contract() {
        use Class::*;
        let cases = [
            ("room:join", Rooms),
            ("presence:subscribe", Presence),
            ("typing:start", Typing),
            ("message:new", Chat),
            ("file:shared", Chat),
            ("class:message", Chat),
            ("call:signal", Signal),
            ("document:cursor", Collab),
            ("whiteboard:stroke", Collab),
            ("quiz:answer", Other),
            ("class:join", Other),
        ];
        for (name, class) in cases {
            assert_eq!(Event::parse(name).map(Event::class), Some(class), "{name}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = EVENTS.iter().map(|r| r.1).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EVENTS.len());
    }
}
