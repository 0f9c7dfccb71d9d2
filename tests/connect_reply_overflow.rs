//! A CONNECT whose reply overflows a polling client's outbound queue closes that session
//! cleanly (the connect hooks must not touch the socket the overflow removed), and the server
//! keeps serving.

mod fixture;

use fixture::Server;

#[test]
fn connect_reply_that_overflows_the_queue_closes_only_that_session() {
    // The bench profile joins every new socket to a room in its connect hook.
    let server = Server::start(&["--bench", "--max-outbound-bytes", "4096"]);
    let polling = server.polling();
    // 98 CONNECT_ERRORs of 41 bytes and one of 52 queue 4,070 bytes (no GET takes them); the
    // CONNECT reply (33 bytes) then passes the 4,096-byte limit.
    let mut body = Vec::new();
    for i in 0..98 {
        body.extend_from_slice(format!("40/n{i:05},\x1e").as_bytes());
    }
    body.extend_from_slice(b"40/nabcdefghijklmnop,");
    let resp = polling.post(&body);
    assert_eq!(resp.status, 200, "unknown namespaces: {}", resp.text());
    assert_eq!(
        polling.post(b"40").status,
        200,
        "the CONNECT POST itself is answered"
    );
    assert_eq!(
        polling.get().status,
        400,
        "the overflowing session is closed"
    );
    assert_eq!(server.get("/health").status, 200, "the server still serves");
    let fresh = server.polling();
    assert_eq!(fresh.post(b"40").status, 200);
    assert!(
        fresh.get().text().starts_with("40{\"sid\":"),
        "a new client still connects"
    );
}
