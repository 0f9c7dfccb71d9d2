//! HTTP on the shared port: request framing on a connection with its phase deadlines, routing
//! (Engine.IO path, the conformance echo endpoint, the internal API, health and metrics; the
//! internal routes only on the internal listener when there is one), decisions made from the
//! head before a body is read, CORS and error responses.

use super::conn::{ConnKind, Phase};
use super::engine::Endpoint;
use super::Server;
use crate::config::Profile;
use crate::engineio::EioError;
use crate::http::request::{self, Request};
use crate::http::response::{error_json, Response};
use subtle::ConstantTimeEq;

/// An owned copy of what the handlers need from one request.
#[derive(Debug, Default)]
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub eio: Option<String>,
    pub transport: Option<String>,
    pub sid: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub cookie: Option<String>,
    pub bearer: Option<String>,
    pub api_key: Option<String>,
    pub acr_headers: Option<String>,
    pub keep_alive: bool,
    pub upgrade_websocket: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    pub body: Vec<u8>,
}

impl Req {
    fn from_parsed(r: &Request<'_>, body: &[u8]) -> Self {
        Req {
            method: r.method.to_owned(),
            path: r.path.to_owned(),
            query: r.query.to_owned(),
            eio: r.query_param("EIO").map(str::to_owned),
            transport: r.query_param("transport").map(str::to_owned),
            sid: r.query_param("sid").map(str::to_owned),
            origin: r.origin.map(str::to_owned),
            host: r.host.map(str::to_owned),
            cookie: r.cookie.map(str::to_owned),
            bearer: r.bearer().map(str::to_owned),
            api_key: r.api_key.map(str::to_owned),
            acr_headers: r.acr_headers.map(str::to_owned),
            keep_alive: r.keep_alive(),
            upgrade_websocket: r.upgrade_websocket,
            ws_key: r.ws_key.map(str::to_owned),
            ws_version: r.ws_version.map(str::to_owned),
            body: body.to_vec(),
        }
    }
}

/// Where a request path goes.
enum Route {
    Engine(Endpoint),
    Health,
    Ready,
    Metrics,
    Api,
    NotFound,
}

/// What the head of a request decided.
enum Head {
    /// Route it once the body is in (`total` bytes from the start of the head).
    Route(Route, usize),
    /// Answered already (an error); the connection closes.
    Answered,
}

impl Server {
    /// Where `path` goes on a public (`internal == false`) or internal-listener connection.
    fn route(&self, path: &str, internal: bool) -> Route {
        let eio = self.config.path.as_str();
        let internal_listener = self.config.edge.internal_addr.is_some();
        let private = match path {
            "/metrics" => Some(Route::Metrics),
            p if p.starts_with("/api/") => Some(Route::Api),
            _ => None,
        };
        if let Some(r) = private {
            // With an internal listener the public port does not know these routes.
            return if internal || !internal_listener {
                r
            } else {
                Route::NotFound
            };
        }
        match path {
            "/health" => Route::Health,
            "/ready" => Route::Ready,
            _ if internal => Route::NotFound,
            p if p == eio || p == eio.trim_end_matches('/') => Route::Engine(Endpoint::SocketIo),
            "/engine.io/" | "/engine.io" if self.config.profile == Profile::Conformance => {
                Route::Engine(Endpoint::Echo)
            }
            _ => Route::NotFound,
        }
    }

    /// Consumes complete requests from `input`; returns how many bytes were used.
    pub(crate) fn on_http_input(&mut self, key: usize, input: &[u8]) -> usize {
        let mut consumed = 0;
        loop {
            let Some(conn) = self.io.get(key) else {
                return input.len();
            };
            // Requests behind a held long-poll wait for it (HTTP/1.1 answers in order).
            if conn.deferred
                || conn.close_after_flush
                || !matches!(conn.kind, ConnKind::Http { pending_poll: None })
            {
                break;
            }
            let rest = &input[consumed..];
            if rest.is_empty() {
                break;
            }
            if conn.phase == Phase::Idle {
                // A request starts: its head is due within the head timeout from now.
                self.io.set_phase(key, Phase::Head);
            }
            let parsed = match request::parse(rest) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.metrics.protocol_errors += 1;
                    log::warn!("bad HTTP request on connection {key}: {e}");
                    let resp = Response::new(e.status()).json(error_json(&e.to_string()));
                    self.respond(key, resp, false);
                    return input.len();
                }
            };
            let (route, total) = match self.check_head(key, &parsed) {
                Head::Route(route, total) => (route, total),
                Head::Answered => return input.len(),
            };
            if rest.len() < total {
                // Decide from the head before waiting for a body.
                if self.refuse_before_body(key, &parsed, &route) {
                    return input.len();
                }
                self.io.set_phase(key, Phase::Body);
                break;
            }
            let req = Req::from_parsed(&parsed, &rest[parsed.head_len..total]);
            consumed += total;
            self.dispatch(key, req, route);
            self.after_request(key);
        }
        consumed
    }

    /// Framing and size checks of a complete head.
    fn check_head(&mut self, key: usize, parsed: &Request<'_>) -> Head {
        if parsed.chunked {
            let msg = "chunked bodies are not accepted; send Content-Length";
            self.respond(key, Response::new(411).json(error_json(msg)), false);
            return Head::Answered;
        }
        let body_len = parsed.content_length.unwrap_or(0);
        let internal = self.io.get(key).is_some_and(|c| c.internal);
        let route = self.route(parsed.path, internal);
        let limit = match route {
            Route::Engine(_) => self.config.max_payload,
            _ => self.config.max_api_body,
        };
        if body_len <= limit {
            return Head::Route(route, parsed.head_len + body_len);
        }
        self.metrics.protocol_errors += 1;
        log::warn!(
            "request body of {body_len} bytes over the {limit}-byte limit on {}",
            parsed.path
        );
        if let (Route::Engine(_), Some(sid)) = (&route, parsed.query_param("sid")) {
            if let Some(s) = self.engine.by_sid(sid) {
                self.engine
                    .close(s, super::engine::CloseReason::PayloadTooLarge);
            }
        }
        let resp = self
            .cors(parsed.origin, Response::new(413))
            .json(error_json(&format!("body larger than {limit} bytes")));
        self.respond(key, resp, false);
        Head::Answered
    }

    /// A request whose body is still to come is answered from its head when the head alone
    /// settles it: an unknown sid (400), a missing or wrong internal key (401). Credentials
    /// are checked before a body is read; the connection then closes.
    fn refuse_before_body(&mut self, key: usize, parsed: &Request<'_>, route: &Route) -> bool {
        match route {
            Route::Engine(_) => {
                let Some(sid) = parsed.query_param("sid") else {
                    return false;
                };
                if self.lookup_session(sid).is_some() {
                    return false;
                }
                self.respond_eio_error(key, parsed.origin, EioError::UnknownSid, false);
                true
            }
            Route::Api | Route::Metrics => {
                let internal = self.io.get(key).is_some_and(|c| c.internal);
                if matches!(route, Route::Metrics) && self.metrics_open(internal) {
                    return false;
                }
                match self.key_check(parsed.bearer(), parsed.api_key) {
                    Ok(()) => false,
                    Err(resp) => {
                        self.respond(key, resp, false);
                        true
                    }
                }
            }
            _ => false,
        }
    }

    /// Between requests a connection is idle (its next head starts the head deadline); one
    /// that became a WebSocket, holds a poll or waits for a deferred answer is the session's.
    fn after_request(&mut self, key: usize) {
        let Some(c) = self.io.get(key) else { return };
        let phase = if matches!(c.kind, ConnKind::Http { pending_poll: None }) && !c.deferred {
            Phase::Idle
        } else {
            Phase::Session
        };
        self.io.set_phase(key, phase);
    }

    /// `/metrics` needs no key on the internal listener, or with `--public-metrics`.
    fn metrics_open(&self, internal: bool) -> bool {
        internal || self.config.edge.public_metrics
    }

    /// The internal key check: `Err` is the response to send (503 when the API is off, 401).
    pub(crate) fn key_check(
        &mut self,
        bearer: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<(), Response> {
        let Some(expected) = self.config.api_key.as_deref() else {
            let msg = "internal API disabled: set INTERNAL_API_KEY";
            return Err(Response::new(503).json(error_json(msg)));
        };
        let presented = bearer.or(api_key).unwrap_or("");
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            return Ok(());
        }
        self.metrics.api_unauthorized += 1;
        log::warn!("internal API request with a missing or wrong key");
        Err(Response::new(401)
            .header("WWW-Authenticate", "Bearer")
            .json(error_json("unauthorized")))
    }

    fn dispatch(&mut self, key: usize, req: Req, route: Route) {
        if req.method == "OPTIONS" {
            let mut resp = self.cors(req.origin.as_deref(), Response::new(204)).header(
                "Access-Control-Allow-Methods",
                "GET,HEAD,PUT,PATCH,POST,DELETE",
            );
            if let Some(h) = &req.acr_headers {
                resp = resp.header("Access-Control-Allow-Headers", h);
            }
            self.respond(key, resp, req.keep_alive);
            return;
        }
        match route {
            Route::Engine(endpoint) => self.on_engine_request(key, req, endpoint),
            Route::Health => self.respond(
                key,
                Response::new(200).json(r#"{"status":"ok"}"#),
                req.keep_alive,
            ),
            Route::Ready => {
                // Ready while serving: Redis or Kafka being down degrades, it does not stop us.
                let status = if self.shutting_down { 503 } else { 200 };
                let body = self.readiness().to_string();
                self.respond(key, Response::new(status).json(body), req.keep_alive);
            }
            Route::Metrics => {
                let internal = self.io.get(key).is_some_and(|c| c.internal);
                if !self.metrics_open(internal) {
                    if let Err(resp) = self.key_check(req.bearer.as_deref(), req.api_key.as_deref())
                    {
                        return self.respond(key, resp, req.keep_alive);
                    }
                }
                let text = self.render_metrics();
                self.respond(
                    key,
                    Response::new(200).body("text/plain; version=0.0.4", text),
                    req.keep_alive,
                );
            }
            Route::Api => self.on_api(key, req),
            Route::NotFound => {
                self.metrics.http_errors += 1;
                self.respond(
                    key,
                    Response::new(404).json(error_json("not found")),
                    req.keep_alive,
                );
            }
        }
    }

    /// Adds CORS headers when the request's origin is allowed.
    pub(crate) fn cors(&self, origin: Option<&str>, resp: Response) -> Response {
        let Some(origin) = origin else { return resp };
        match self.config.cors.allow(origin) {
            Some("*") => resp.header("Access-Control-Allow-Origin", "*"),
            Some(allowed) => resp
                .header("Access-Control-Allow-Origin", allowed)
                .header("Access-Control-Allow-Credentials", "true")
                .header("Vary", "Origin"),
            None => resp.header("Vary", "Origin"),
        }
    }

    /// Queues a complete response; without keep-alive the connection closes once it is out.
    pub(crate) fn respond(&mut self, key: usize, resp: Response, keep_alive: bool) {
        let close = !keep_alive || self.shutting_down;
        if self.queue(key, resp.finish(close)) && close {
            self.io.close_after_flush(key);
        }
    }

    /// An Engine.IO error: 400 (or 403) with `{"code":N,"message":"..."}`.
    pub(crate) fn respond_eio_error(
        &mut self,
        key: usize,
        origin: Option<&str>,
        err: crate::engineio::EioError,
        keep_alive: bool,
    ) {
        self.metrics.http_errors += 1;
        let resp = self
            .cors(origin, Response::new(err.status()))
            .json(err.body());
        self.respond(key, resp, keep_alive);
    }
}
