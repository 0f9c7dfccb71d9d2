//! HTTP/1.1 responses: a small builder that writes the status line, headers and body into one
//! buffer.

use bytes::Bytes;

/// A response under construction.
pub struct Response {
    head: Vec<u8>,
    body: Vec<u8>,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

impl Response {
    pub fn new(status: u16) -> Self {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
        Response {
            head,
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.head.extend_from_slice(name.as_bytes());
        self.head.extend_from_slice(b": ");
        self.head.extend_from_slice(value.as_bytes());
        self.head.extend_from_slice(b"\r\n");
        self
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self = self.header("Content-Type", content_type);
        self.body = body.into();
        self
    }

    pub fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body("application/json", body)
    }

    /// Finishes the head (with Content-Length and, if asked, `Connection: close`) and returns
    /// head and body as one buffer.
    pub fn finish(mut self, close: bool) -> Bytes {
        self.end_head(self.body.len(), close);
        self.head.extend_from_slice(&self.body);
        Bytes::from(self.head)
    }

    /// Finishes a head whose body follows separately (the polling GET body), returning the head.
    pub fn finish_head(mut self, content_type: &str, body_len: usize, close: bool) -> Bytes {
        self = self.header("Content-Type", content_type);
        self.end_head(body_len, close);
        Bytes::from(self.head)
    }

    /// Appends `Connection: close` if asked, `Content-Length` and the blank line.
    fn end_head(&mut self, body_len: usize, close: bool) {
        if close {
            self.head.extend_from_slice(b"Connection: close\r\n");
        }
        self.head
            .extend_from_slice(format!("Content-Length: {body_len}\r\n\r\n").as_bytes());
    }
}

/// `{"error":"..."}` with the message JSON-escaped.
pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_complete_response() {
        let r = Response::new(404).json("{}").finish(true);
        assert_eq!(
            &r[..],
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
