//! Keep-alive HTTP/1.1 connections for `POST /api/emit` (the notify scenario): one request
//! in flight per connection, no pipelining; a due request waits in a queue when all are busy.

use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// One API connection.
pub struct ApiConn {
    pub stream: TcpStream,
    pub connected: bool,
    /// The target group of the request in flight.
    pub busy: Option<usize>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
}

/// What reading a connection produced.
pub enum ApiRead {
    /// Nothing complete yet.
    Pending,
    /// One response; `true` for a 2xx status.
    Done(bool),
    /// The connection is unusable.
    Closed,
}

impl ApiConn {
    pub fn new(stream: TcpStream) -> ApiConn {
        ApiConn {
            stream,
            connected: false,
            busy: None,
            inbuf: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Queues `req` and writes what the socket takes.
    ///
    /// # Errors
    /// The socket failed.
    pub fn send(&mut self, req: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(req);
        self.flush()
    }

    /// Writes queued bytes once connected.
    ///
    /// # Errors
    /// The connect or the socket failed.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.connected {
            if let Some(e) = self.stream.take_error()? {
                return Err(e);
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads until `WouldBlock` and returns the response, if one is complete.
    pub fn read(&mut self, rbuf: &mut [u8]) -> ApiRead {
        loop {
            match self.stream.read(rbuf) {
                Ok(0) => return ApiRead::Closed,
                Ok(n) => self.inbuf.extend_from_slice(&rbuf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ApiRead::Closed,
            }
        }
        match response_len(&self.inbuf) {
            Ok(Some((len, ok))) => {
                self.inbuf.drain(..len);
                ApiRead::Done(ok)
            }
            Ok(None) => ApiRead::Pending,
            Err(()) => ApiRead::Closed,
        }
    }
}

/// The length of the first complete response in `buf` and whether it was 2xx. Bodies are
/// framed by `Content-Length` or chunked encoding (Node's default without a length).
fn response_len(buf: &[u8]) -> Result<Option<(usize, bool)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let ok = (200..300).contains(&resp.code.unwrap_or(0));
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if let Some(cl) = header("content-length") {
        let cl: usize = cl.parse().map_err(|_| ())?;
        return Ok((buf.len() >= head + cl).then_some((head + cl, ok)));
    }
    if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let end = b"0\r\n\r\n";
        let body = &buf[head..];
        return Ok(body
            .windows(end.len())
            .position(|w| w == end)
            .filter(|&p| p == 0 || body[..p].ends_with(b"\r\n"))
            .map(|p| (head + p + end.len(), ok)));
    }
    Ok(Some((head, ok)))
}

/// The request for one personal delivery to the socket `sid`.
pub fn emit_request(host: &str, key: &str, sid: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 80);
    body.extend_from_slice(b"{\"event\":\"bench:msg\",\"data\":");
    body.extend_from_slice(payload);
    body.extend_from_slice(b",\"rooms\":[\"");
    body.extend_from_slice(sid.as_bytes());
    body.extend_from_slice(b"\"]}");
    let mut req = format!(
        "POST /api/emit HTTP/1.1\r\nHost: {host}\r\nx-api-key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_frame_by_length_or_chunks() {
        let r = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}HTTP";
        assert_eq!(response_len(r), Ok(Some((r.len() - 4, true))));
        assert_eq!(response_len(&r[..r.len() - 5]), Ok(None));
        let c = b"HTTP/1.1 401 No\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(response_len(c), Ok(Some((c.len(), false))));
        assert_eq!(response_len(b"garbage\r\n\r\n"), Err(()));
    }

    #[test]
    fn emit_request_carries_key_length_and_target() {
        let req = emit_request("h:1", "k", "S1", b"{\"seq\":1}");
        let text = String::from_utf8(req).unwrap();
        let body = "{\"event\":\"bench:msg\",\"data\":{\"seq\":1},\"rooms\":[\"S1\"]}";
        assert!(text.contains("x-api-key: k\r\n"));
        assert!(text.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())));
    }
}
