//! HTTP/1.1 request heads, parsed with `httparse` into a borrowed view of the few headers the
//! server reads, plus query-string access.

/// Header lines a request may carry; more is refused with 431.
pub const MAX_HEADERS: usize = 48;
/// Bytes a request head may take before it is complete; more is refused with 431.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// A parsed request head. Everything borrows from the input buffer.
#[derive(Debug, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// HTTP/1.0 requests close after the response unless they ask for keep-alive.
    pub http10: bool,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub connection_close: bool,
    pub connection_keep_alive: bool,
    /// `Upgrade: websocket` together with `Connection: upgrade`.
    pub upgrade_websocket: bool,
    pub ws_key: Option<&'a str>,
    pub ws_version: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// `Host`, for the same-origin check of browser handshakes.
    pub host: Option<&'a str>,
    /// `Cookie`, for session cookies on the handshake.
    pub cookie: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub api_key: Option<&'a str>,
    pub acr_headers: Option<&'a str>,
    /// Length of the head, including the blank line.
    pub head_len: usize,
}

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed HTTP request")]
    Malformed,
    #[error("request head too large")]
    HeadTooLarge,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding")]
    BadTransferEncoding,
}

impl RequestError {
    pub fn status(self) -> u16 {
        match self {
            RequestError::HeadTooLarge => 431,
            _ => 400,
        }
    }
}

/// Parses a request head from the start of `buf`; `Ok(None)` means more bytes are needed.
///
/// # Errors
/// A malformed head, one over [`MAX_HEAD_LEN`] or [`MAX_HEADERS`], or a bad Content-Length.
pub fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD_LEN {
                Err(RequestError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(_) => return Err(RequestError::Malformed),
    };
    if head_len > MAX_HEAD_LEN {
        return Err(RequestError::HeadTooLarge);
    }
    let target = req.path.ok_or(RequestError::Malformed)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = Request {
        method: req.method.ok_or(RequestError::Malformed)?,
        path,
        query,
        http10: req.version == Some(0),
        head_len,
        ..Request::default()
    };
    let mut connection_upgrade = false;
    let mut upgrade_header_websocket = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value)?;
            if out.content_length.is_some_and(|old| old != n) {
                return Err(RequestError::BadContentLength);
            }
            out.content_length = Some(n);
            continue;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if out.chunked || !chunked_last_once(h.value) {
                return Err(RequestError::BadTransferEncoding);
            }
            out.chunked = true;
            continue;
        }
        let Ok(value) = std::str::from_utf8(h.value) else {
            continue;
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    out.connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    out.connection_keep_alive = true;
                } else if token.eq_ignore_ascii_case("upgrade") {
                    connection_upgrade = true;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_header_websocket = value.eq_ignore_ascii_case("websocket");
        } else {
            out.keep_header(name, value);
        }
    }
    out.upgrade_websocket = upgrade_header_websocket && connection_upgrade;
    Ok(Some(out))
}

impl<'a> Request<'a> {
    /// Keeps the value of a header the server reads later (the others are ignored).
    fn keep_header(&mut self, name: &str, value: &'a str) {
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        let slot = if is("sec-websocket-key") {
            &mut self.ws_key
        } else if is("sec-websocket-version") {
            &mut self.ws_version
        } else if is("origin") {
            &mut self.origin
        } else if is("host") {
            &mut self.host
        } else if is("cookie") {
            &mut self.cookie
        } else if is("authorization") {
            &mut self.authorization
        } else if is("x-api-key") {
            &mut self.api_key
        } else if is("access-control-request-headers") {
            &mut self.acr_headers
        } else {
            return;
        };
        *slot = Some(value);
    }
}

/// A Content-Length value. RFC 9112: 1*DIGIT; anything else leaves the framing unknown.
fn content_length(v: &[u8]) -> Result<usize, RequestError> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::BadContentLength);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(RequestError::BadContentLength)
}

/// Whether a Transfer-Encoding value ends in `chunked` and names it once: only those have a
/// defined length (answered 411 later); anything else would desync framing with a proxy.
fn chunked_last_once(value: &[u8]) -> bool {
    let codings: Vec<&[u8]> = value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let chunked = |c: &[u8]| c.eq_ignore_ascii_case(b"chunked");
    codings.last().is_some_and(|c| chunked(c)) && codings.iter().filter(|c| chunked(c)).count() == 1
}

/// The first value of `key` in a query string, undecoded.
pub fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

impl<'a> Request<'a> {
    /// The first value of query parameter `key`, undecoded (Engine.IO values need no decoding).
    pub fn query_param(&self, key: &str) -> Option<&'a str> {
        query_param(self.query, key)
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        if self.http10 {
            self.connection_keep_alive
        } else {
            !self.connection_close
        }
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&'a str> {
        let auth = self.authorization?;
        let (scheme, token) = auth.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim())
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! req {
        ($name:ident, $bytes:expr, |$r:ident| $body:expr) => {
            #[test]
            fn $name() {
                let $r = parse($bytes).unwrap().unwrap();
                $body
            }
        };
    }

    req!(polling_get, b"GET /socket.io/?EIO=4&transport=polling&t=N8 HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:3000\r\n\r\n", |r| {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/socket.io/");
        assert_eq!(r.query_param("EIO"), Some("4"));
        assert_eq!(r.query_param("transport"), Some("polling"));
        assert_eq!(r.query_param("sid"), None);
        assert_eq!(r.origin, Some("http://localhost:3000"));
        assert_eq!(r.host, Some("x"));
        assert!(r.keep_alive());
    });

    req!(websocket_upgrade, b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: abc==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer tok.en\r\n\r\n", |r| {
        assert!(r.upgrade_websocket);
        assert_eq!(r.ws_key, Some("abc=="));
        assert_eq!(r.bearer(), Some("tok.en"));
    });

    req!(
        post_with_body_length,
        b"POST /api/emit HTTP/1.0\r\nContent-Length: 12\r\nx-api-key: k\r\n\r\n{\"a\":1}",
        |r| {
            assert_eq!(r.content_length, Some(12));
            assert_eq!(r.api_key, Some("k"));
            assert!(!r.keep_alive());
            assert_eq!(r.head_len, 61);
        }
    );

    #[test]
    fn partial_head_needs_more() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn malformed_and_oversized_heads() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").unwrap_err(),
            RequestError::Malformed
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_LEN + 1));
        assert_eq!(parse(&big).unwrap_err(), RequestError::HeadTooLarge);
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n").unwrap_err(),
            RequestError::BadContentLength
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err(),
            RequestError::BadContentLength
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .unwrap_err(),
            RequestError::BadContentLength
        );
    }

    #[test]
    fn bearer_requires_scheme() {
        let r = parse(b"GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.bearer(), None);
    }
}
