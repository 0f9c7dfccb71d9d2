//! One blocking HTTP/1.1 GET with a deadline, for the session-check worker threads: plain
//! `http://` over a std `TcpStream` (connect, write and every read bounded by what is left of
//! the deadline), `Connection: close`, the response read whole (at most [`MAX_RESPONSE`]) and
//! its body taken by `Content-Length`, chunked transfer coding (as Next.js route handlers
//! often answer), or the end of the connection.
//!
//! ```text
//! GET /api/auth/session HTTP/1.1
//! Host: web:3000
//! Accept: application/json
//! Cookie: authjs.session-token=<opaque id>
//! User-Agent: sio-edge
//! Connection: close
//! ```
//!
//! Name resolution (`ToSocketAddrs`) cannot be given a deadline; the loop keeps its own timer
//! for each check, so a slow resolver delays only the worker.

use super::Endpoint;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

/// Largest response (head and body) read; a session body is a few hundred bytes.
pub const MAX_RESPONSE: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A response: its status and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a GET gave no response. The texts go to the log: none includes the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("no answer before the deadline")]
    Timeout,
    #[error("cannot resolve the host: {0}")]
    Resolve(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("connection failed: {0}")]
    Io(String),
    #[error("invalid response: {0}")]
    BadResponse(&'static str),
    #[error("response larger than {MAX_RESPONSE} bytes")]
    TooLarge,
}

fn io_error(e: &io::Error) -> FetchError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FetchError::Timeout,
        _ => FetchError::Io(e.kind().to_string()),
    }
}

/// What is left until `deadline`; `Timeout` when nothing is.
fn left(deadline: Instant) -> Result<std::time::Duration, FetchError> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(FetchError::Timeout)
    } else {
        Ok(d)
    }
}

/// The request bytes: a GET of the endpoint's path with the one cookie.
fn request(endpoint: &Endpoint, cookie: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nCookie: {cookie}\r\n\
         User-Agent: sio-edge\r\nConnection: close\r\n\r\n",
        endpoint.path, endpoint.authority
    )
    .into_bytes()
}

/// GETs the endpoint with `Cookie: <cookie>` and returns the response by `deadline`.
///
/// # Errors
/// A [`FetchError`]: the deadline passed, the host did not resolve or accept, the connection
/// broke, or the response was malformed or too large.
pub fn get(endpoint: &Endpoint, cookie: &str, deadline: Instant) -> Result<Response, FetchError> {
    if cookie.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(FetchError::BadResponse("cookie with a line break"));
    }
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| FetchError::Resolve(e.kind().to_string()))?
        .collect();
    let mut last = FetchError::Resolve("no address".into());
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => last = FetchError::Timeout,
            Err(e) => last = FetchError::Connect(e.kind().to_string()),
        }
    }
    let mut stream = stream.ok_or(last)?;
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| io_error(&e))?;
    stream
        .write_all(&request(endpoint, cookie))
        .map_err(|e| io_error(&e))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| io_error(&e))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(&e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(resp) = parse_response(&buf, n == 0)? {
            return Ok(resp);
        }
        if buf.len() > MAX_RESPONSE {
            return Err(FetchError::TooLarge);
        }
    }
}

/// A whole response from `buf`, `None` while more is needed. `eof`: the peer closed, so
/// nothing more will come (a body without a length ends here).
///
/// # Errors
/// [`FetchError::BadResponse`] for a malformed or truncated response.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => {
            return Err(FetchError::BadResponse("closed before the end of the head"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(FetchError::BadResponse("malformed head")),
    };
    let status = head.code.unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    for h in head.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(FetchError::BadResponse("bad Content-Length"))?;
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h
                .value
                .split(|&b| b == b',')
                .any(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let rest = &buf[head_len..];
    let body = if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if eof => return Err(FetchError::BadResponse("closed inside a chunk")),
            None => return Ok(None),
        }
    } else if let Some(n) = length {
        if rest.len() >= n {
            rest[..n].to_vec()
        } else if eof {
            return Err(FetchError::BadResponse("closed before the end of the body"));
        } else {
            return Ok(None);
        }
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(Response { status, body }))
}

/// The body of a chunked transfer coding, `None` while the last chunk has not arrived.
/// Trailers after the last chunk are not read (nothing here needs them).
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, FetchError> {
    let bad = FetchError::BadResponse("malformed chunk");
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return if rest.len() > 64 { Err(bad) } else { Ok(None) };
        };
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| bad.clone())?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad.clone())?;
        if size == 0 {
            return Ok(Some(body));
        }
        let data = &rest[eol + 2..];
        if size > MAX_RESPONSE {
            return Err(FetchError::TooLarge);
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err(bad);
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn parsed(raw: &str, eof: bool) -> Result<Option<Response>, FetchError> {
        parse_response(raw.as_bytes(), eof)
    }

    fn body(raw: &str, eof: bool) -> String {
        let r = parsed(raw, eof).unwrap().expect("complete");
        String::from_utf8(r.body).unwrap()
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n";
        assert_eq!(
            body(&format!("{head}Content-Length: 4\r\n\r\nnullXX"), false),
            "null"
        );
        assert_eq!(
            parsed(&format!("{head}Content-Length: 4\r\n\r\nnu"), false),
            Ok(None)
        );
        let chunked = format!(
            "{head}Transfer-Encoding: chunked\r\n\r\n4;x=y\r\n{{\"us\r\n2\r\ner\r\n0\r\n\r\n"
        );
        assert_eq!(body(&chunked, false), "{\"user");
        assert_eq!(parsed(&chunked[..chunked.len() - 7], false), Ok(None));
        assert_eq!(body(&format!("{head}\r\n{{}}"), true), "{}");
        assert_eq!(parsed(&format!("{head}\r\n{{}}"), false), Ok(None));
        assert_eq!(parsed("HTTP/1.1 200 OK\r\nContent-Le", false), Ok(None));
    }

    #[test]
    fn truncated_and_malformed_responses_fail() {
        for (raw, eof) in [
            ("HTTP/1.1 200 OK\r\nContent-Le", true),
            ("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnull", true),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnu",
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
                false,
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false),
            ("SSH-2.0-OpenSSH\r\n\r\n", false),
        ] {
            assert!(
                matches!(parsed(raw, eof), Err(FetchError::BadResponse(_))),
                "{raw:?}"
            );
        }
    }

    /// Serves one connection on a loopback port: reads the request head, hands it back through
    /// the join handle, and writes `answer` (or nothing, holding the connection, if `None`).
    fn serve_once(answer: Option<&'static str>) -> (Endpoint, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&b[..n]);
            }
            match answer {
                Some(a) => s.write_all(a.as_bytes()).unwrap(),
                // Hold the connection until the client gives up and closes it.
                None => while s.read(&mut b).is_ok_and(|n| n > 0) {},
            }
            String::from_utf8(req).unwrap()
        });
        let url = format!("http://127.0.0.1:{port}/api/auth/session?x=1");
        (Endpoint::parse(&url).unwrap(), handle)
    }

    #[test]
    fn get_sends_the_cookie_and_reads_the_answer() {
        let (ep, server) = serve_once(Some(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             d\r\n{\"user\":null}\r\n0\r\n\r\n",
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        let resp = get(&ep, "authjs.session-token=abc-123", deadline).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"{\"user\":null}");
        let req = server.join().unwrap();
        let host = format!("Host: 127.0.0.1:{}\r\n", ep.port);
        assert!(
            req.starts_with("GET /api/auth/session?x=1 HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(req.contains(&host), "{req}");
        assert!(
            req.contains("\r\nCookie: authjs.session-token=abc-123\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
    }

    #[test]
    fn a_silent_endpoint_times_out() {
        let (ep, server) = serve_once(None);
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(get(&ep, "a=b", deadline), Err(FetchError::Timeout));
        drop(server);
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = Endpoint::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(matches!(
            get(&ep, "a=b", deadline),
            Err(FetchError::Connect(_))
        ));
        assert!(matches!(
            get(&ep, "a=b\r\nX: y", deadline),
            Err(FetchError::BadResponse(_))
        ));
    }
}
