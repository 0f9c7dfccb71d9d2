//! HTTP on the shared port: request framing on a connection, routing (Engine.IO path, the
//! conformance echo endpoint, the internal API, health and metrics), CORS and error responses.

use super::conn::ConnKind;
use super::engine::Endpoint;
use super::Server;
use crate::http::request::{self, Request};
use crate::http::response::{error_json, Response};

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

impl Server {
    fn route(&self, path: &str) -> Route {
        let eio = self.config.path.as_str();
        if path == eio || path == eio.trim_end_matches('/') {
            return Route::Engine(Endpoint::SocketIo);
        }
        if self.config.profile == crate::config::Profile::Conformance
            && (path == "/engine.io/" || path == "/engine.io")
        {
            return Route::Engine(Endpoint::Echo);
        }
        match path {
            "/health" => Route::Health,
            "/ready" => Route::Ready,
            "/metrics" => Route::Metrics,
            p if p.starts_with("/api/") => Route::Api,
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
            let parsed = match request::parse(rest) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.metrics.protocol_errors += 1;
                    log::warn!("bad HTTP request on connection {key}: {e}");
                    self.respond(
                        key,
                        Response::new(e.status()).json(error_json(&e.to_string())),
                        false,
                    );
                    return input.len();
                }
            };
            if parsed.chunked {
                self.respond(
                    key,
                    Response::new(411).json(error_json(
                        "chunked bodies are not accepted; send Content-Length",
                    )),
                    false,
                );
                return input.len();
            }
            let body_len = parsed.content_length.unwrap_or(0);
            let route = self.route(parsed.path);
            let limit = match route {
                Route::Engine(_) => self.config.max_payload,
                _ => self.config.max_api_body,
            };
            if body_len > limit {
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
                return input.len();
            }
            let total = parsed.head_len + body_len;
            if rest.len() < total {
                break;
            }
            let req = Req::from_parsed(&parsed, &rest[parsed.head_len..total]);
            consumed += total;
            self.dispatch(key, req, route);
        }
        consumed
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
