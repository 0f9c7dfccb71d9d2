//! HTTP/1.1 request heads (`sio_edge::http::request::parse`): every byte a client sends before
//! the server knows what it is talking to. Checks that a complete head never claims more bytes
//! than it was given, that re-parsing exactly the head gives the same answer (the server
//! parses again as bytes trickle in), and that the accessors the server calls never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sio_edge::http::request;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(req)) = request::parse(data) else {
        return;
    };
    assert!(req.head_len <= data.len(), "head_len past the input");
    assert!(req.head_len <= request::MAX_HEAD_LEN);
    let _ = (req.keep_alive(), req.bearer());
    for key in ["EIO", "transport", "sid", "t"] {
        if let Some(v) = req.query_param(key) {
            assert!(req.query.contains(v));
        }
    }
    let again = request::parse(&data[..req.head_len])
        .expect("the head alone parsed differently")
        .expect("the head alone is incomplete");
    assert_eq!(again.head_len, req.head_len);
    assert_eq!(
        (again.method, again.path, again.query),
        (req.method, req.path, req.query)
    );
    assert_eq!(again.content_length, req.content_length);
});
