//! Collaboration and classes: document edits in a per-document total order, volatile cursors
//! and whiteboard strokes, shared files, live quizzes with batched answer counts, and live
//! classes with throttled viewer counts.

use super::events::{ack, Call, Outcome};
use super::validate::{json_len, Payload, Refusal};
use crate::engineio::new_id;
use crate::server::deliver::Emit;
use crate::server::Server;
use crate::store::grants::classify;
use crate::store::now_ms;
use crate::timer::Timer;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// Largest document cursor payload.
pub const MAX_CURSOR_BYTES: usize = 1024;
/// Quiz answer counts go out at most this often.
pub const QUIZ_FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Class viewer counts go out at most this often.
pub const CLASS_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A live quiz: the open question and its answers.
#[derive(Debug, Default)]
pub struct Quiz {
    /// The open question, if any.
    pub question: Option<String>,
    /// The question the pending counts belong to (it may have closed since).
    pub counted: Option<String>,
    pub answered: HashSet<String>,
    pub counts: BTreeMap<String, u64>,
    pub flush_pending: bool,
}

impl Server {
    pub(super) fn document_edit(&mut self, c: &mut Call) -> Outcome {
        let sock = c.sock;
        let doc = c.p.id("docId")?;
        let room = format!("document:{doc}");
        self.require_room(sock, &room)?;
        let ops =
            c.p.take("ops")
                .filter(|v| !v.is_null())
                .ok_or_else(|| Refusal::invalid("`ops` is required"))?;
        let seq = {
            let s = self.app.doc_seq.entry(doc.clone()).or_insert(0);
            *s += 1;
            *s
        };
        let body = json!({"docId": doc, "seq": seq, "ops": ops, "userId": c.user});
        let attachments = std::mem::take(&mut c.attachments);
        self.relay_with(sock, &room, "document:edit", body, attachments, false);
        ack(json!({"ok": true, "seq": seq}))
    }

    pub(super) fn document_cursor(&mut self, c: &mut Call) -> Outcome {
        let sock = c.sock;
        let doc = c.p.id("docId")?;
        let room = format!("document:{doc}");
        self.require_room(sock, &room)?;
        let cursor = c.p.take("cursor").unwrap_or(Value::Null);
        if json_len(&cursor) > MAX_CURSOR_BYTES {
            return Err(Refusal::invalid(format!(
                "`cursor` larger than {MAX_CURSOR_BYTES} bytes"
            )));
        }
        let body = json!({"docId": doc, "cursor": cursor, "userId": c.user});
        self.relay_with(sock, &room, "document:cursor", body, Vec::new(), true);
        ack(json!({"ok": true}))
    }

    pub(super) fn whiteboard_stroke(&mut self, c: &mut Call) -> Outcome {
        let sock = c.sock;
        let room = c.p.text("room", 200)?;
        classify(&room).map_err(Refusal::invalid)?;
        self.require_room(sock, &room)?;
        let stroke =
            c.p.take("stroke")
                .filter(|v| !v.is_null())
                .ok_or_else(|| Refusal::invalid("`stroke` is required"))?;
        let body = json!({"room": room, "stroke": stroke, "userId": c.user});
        let attachments = std::mem::take(&mut c.attachments);
        self.relay_with(sock, &room, "whiteboard:stroke", body, attachments, true);
        ack(json!({"ok": true}))
    }

    /// Validates `{url, name, size, mime}` of a shared file.
    pub(super) fn file_meta(&self, p: &Payload) -> Result<Map<String, Value>, Refusal> {
        let url = p.text("url", 2048)?;
        // Browsers read `\` as `/`, so `/\host` is `//host`: off-site, not relative.
        let relative = url.starts_with('/') && !url.starts_with("//");
        if !(url.starts_with("https://") || relative)
            || url.chars().any(|c| c.is_whitespace() || c == '\\')
        {
            return Err(Refusal::invalid(
                "`url` must be https:// or a relative /path",
            ));
        }
        let name = p.text("name", 255)?;
        let size = p
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| Refusal::invalid("`size` must be a non-negative integer"))?;
        if size > self.config.max_file_size {
            return Err(Refusal::invalid(format!(
                "`size` above the {} byte limit",
                self.config.max_file_size
            )));
        }
        let mime = p.text("mime", 127)?;
        let valid_mime = mime.split_once('/').is_some_and(|(a, b)| {
            let ok = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
            };
            ok(a) && ok(b)
        });
        if !valid_mime {
            return Err(Refusal::invalid("`mime` must be type/subtype"));
        }
        let mut file = Map::new();
        file.insert("url".into(), json!(url));
        file.insert("name".into(), json!(name));
        file.insert("size".into(), json!(size));
        file.insert("mime".into(), json!(mime));
        Ok(file)
    }

    pub(super) fn file_shared(&mut self, c: &mut Call) -> Outcome {
        let (sock, user, p) = (c.sock, c.user.as_str(), &c.p);
        let room = p.text("room", 200)?;
        classify(&room).map_err(Refusal::invalid)?;
        self.require_room(sock, &room)?;
        let mut file = self.file_meta(p)?;
        file.insert("room".into(), json!(room));
        file.insert("userId".into(), json!(user));
        let body = self.relay(sock, &room, "file:shared", Value::Object(file));
        let key = room
            .split_once(':')
            .map_or(room.as_str(), |(_, id)| id)
            .to_owned();
        self.forward("file:shared", &key, Some(user), body);
        ack(json!({"ok": true}))
    }

    /// `quiz:update` from the internal API opens or closes a question.
    pub(crate) fn quiz_control(&mut self, data: &Value) {
        let (Some(quiz), Some(state)) = (
            data.get("quizId"),
            data.get("state").and_then(Value::as_str),
        ) else {
            return;
        };
        let quiz = match quiz {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        let question = data
            .get("questionId")
            .map(|q| q.as_str().map_or_else(|| q.to_string(), str::to_owned));
        match state {
            "open" => {
                // Counts still pending for the previous question go out first.
                if self.app.quizzes.get(&quiz).is_some_and(|q| q.flush_pending) {
                    self.on_quiz_flush(&quiz);
                }
                let q = self.app.quizzes.entry(quiz).or_default();
                q.question = question.clone();
                q.counted = question;
                q.answered.clear();
                q.counts.clear();
            }
            "closed" => {
                if let Some(q) = self.app.quizzes.get_mut(&quiz) {
                    q.question = None;
                    // Pending counts go out at their flush, which then forgets the quiz.
                    if !q.flush_pending {
                        self.app.quizzes.remove(&quiz);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn quiz_answer(&mut self, c: &mut Call) -> Outcome {
        let (sock, user, p) = (c.sock, c.user.as_str(), &c.p);
        let quiz_id = p.id("quizId")?;
        let question = p.id("questionId")?;
        let answer = p.text("answer", 64)?;
        self.require_room(sock, &format!("quiz:{quiz_id}"))?;
        let Some(quiz) = self.app.quizzes.get_mut(&quiz_id) else {
            return Err(Refusal::new("closed", "no open question"));
        };
        if quiz.question.as_deref() != Some(question.as_str()) {
            return Err(Refusal::new("closed", "this question is not open"));
        }
        if !quiz.answered.insert(user.to_owned()) {
            return Err(Refusal::new("duplicate", "already answered"));
        }
        *quiz.counts.entry(answer.clone()).or_insert(0) += 1;
        if !quiz.flush_pending {
            quiz.flush_pending = true;
            self.timers.at(
                Instant::now() + QUIZ_FLUSH_EVERY,
                Timer::QuizFlush {
                    quiz: quiz_id.clone(),
                },
            );
        }
        self.forward(
            "quiz:answer",
            &quiz_id,
            Some(user),
            json!({"quizId": quiz_id, "questionId": question, "answer": answer, "userId": user}),
        );
        ack(json!({"ok": true}))
    }

    pub(crate) fn on_quiz_flush(&mut self, quiz_id: &str) {
        let Some(quiz) = self.app.quizzes.get_mut(quiz_id) else {
            return;
        };
        quiz.flush_pending = false;
        let counts: Map<String, Value> = quiz
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let body = json!({"quizId": quiz_id, "questionId": quiz.counted, "counts": counts});
        if quiz.question.is_none() {
            self.app.quizzes.remove(quiz_id);
        }
        let rooms = vec![format!("quiz:{quiz_id}")];
        self.deliver(&Emit::to_rooms(0, "quiz:update", vec![body], rooms));
    }

    pub(super) fn class_join(&mut self, c: &mut Call) -> Outcome {
        let class = c.p.id("classId")?;
        let room = format!("class:{class}");
        self.may_join(c.sock, &room)?;
        self.join_checked(c.sock, &room)?;
        ack(json!({"ok": true, "viewers": self.viewers(&class)}))
    }

    pub(super) fn class_leave(&mut self, c: &mut Call) -> Outcome {
        let class = c.p.id("classId")?;
        self.leave(c.sock, &format!("class:{class}"));
        ack(json!({"ok": true}))
    }

    pub(super) fn class_message(&mut self, c: &mut Call) -> Outcome {
        let (sock, user, p) = (c.sock, c.user.as_str(), &c.p);
        let class = p.id("classId")?;
        let room = format!("class:{class}");
        self.require_room(sock, &room)?;
        let text = p.text("text", 2000)?;
        let id = new_id();
        let body = json!({"id": id, "classId": class, "userId": user, "text": text, "createdAt": now_ms()});
        let body = self.relay(sock, &room, "class:message", body);
        self.forward("class:message", &class, Some(user), body);
        ack(json!({"ok": true, "id": id}))
    }

    fn viewers(&self, class: &str) -> usize {
        self.sockets.room_len(0, &format!("class:{class}"))
    }

    /// Schedules a viewer-count update for a class (at most one per interval).
    pub(crate) fn class_changed(&mut self, class: &str) {
        if self.app.classes_dirty.insert(class.to_owned()) {
            self.timers.at(
                Instant::now() + CLASS_FLUSH_EVERY,
                Timer::ClassFlush {
                    class: class.to_owned(),
                },
            );
        }
    }

    pub(crate) fn on_class_flush(&mut self, class: &str) {
        if !self.app.classes_dirty.remove(class) {
            return;
        }
        let viewers = self.viewers(class);
        let body = json!({"classId": class, "viewers": viewers});
        let mut e = Emit::to_rooms(
            0,
            "class:update",
            vec![body],
            vec![format!("class:{class}")],
        );
        e.volatile = true;
        self.deliver(&e);
    }
}
