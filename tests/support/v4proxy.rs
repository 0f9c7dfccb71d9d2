//! A TCP proxy that behaves like Apache Kafka 4 towards old clients: it reads each request's
//! header and closes the connection on a protocol version KIP-896 removed, as Kafka 4 does.
//! Everything else passes through unchanged, in both directions.
//!
//! ```text
//! request = size:i32 api_key:i16 api_version:i16 ...
//! refused: Produce<3  Fetch<4  ListOffsets<1  OffsetCommit<2  OffsetFetch<1
//! ```

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub const PRODUCE: i16 = 0;
pub const FETCH: i16 = 1;
pub const LIST_OFFSETS: i16 = 2;
pub const OFFSET_COMMIT: i16 = 8;
pub const OFFSET_FETCH: i16 = 9;
pub const FIND_COORDINATOR: i16 = 10;

/// The lowest version Kafka 4 serves for the APIs whose old versions KIP-896 removed.
pub fn kafka4_min_version(api_key: i16) -> i16 {
    match api_key {
        PRODUCE => 3,
        FETCH => 4,
        LIST_OFFSETS => 1,
        OFFSET_COMMIT => 2,
        OFFSET_FETCH => 1,
        _ => 0,
    }
}

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// (api_key, api_version) of every forwarded request.
    pub forwarded: BTreeSet<(i16, i16)>,
    /// (api_key, api_version) of every refused request.
    pub refused: Vec<(i16, i16)>,
}

pub struct V4Proxy {
    pub port: u16,
    pub seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl V4Proxy {
    /// Listens on an ephemeral loopback port and forwards to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> V4Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let seen = Arc::clone(&seen2);
                thread::spawn(move || serve(client, upstream, &seen));
            }
        });
        V4Proxy { port, seen, stop }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for V4Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(client: TcpStream, upstream: u16, seen: &Mutex<Seen>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Responses: copied byte for byte.
    let (mut from_server, mut to_client) = match (server.try_clone(), client.try_clone()) {
        (Ok(s), Ok(c)) => (s, c),
        _ => return,
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    // Requests: framed, checked, forwarded unchanged.
    let (mut from_client, mut to_server) = (client, server);
    let _ = from_client.set_read_timeout(Some(Duration::from_secs(120)));
    loop {
        let mut size = [0u8; 4];
        if from_client.read_exact(&mut size).is_err() {
            break;
        }
        let len = i32::from_be_bytes(size);
        if !(4..=(64 << 20)).contains(&len) {
            break;
        }
        let mut body = vec![0u8; len as usize];
        if from_client.read_exact(&mut body).is_err() {
            break;
        }
        let api_key = i16::from_be_bytes([body[0], body[1]]);
        let api_version = i16::from_be_bytes([body[2], body[3]]);
        if api_version < kafka4_min_version(api_key) {
            seen.lock().unwrap().refused.push((api_key, api_version));
            break;
        }
        seen.lock()
            .unwrap()
            .forwarded
            .insert((api_key, api_version));
        if to_server.write_all(&size).is_err() || to_server.write_all(&body).is_err() {
            break;
        }
    }
    let _ = from_client.shutdown(Shutdown::Both);
    let _ = to_server.shutdown(Shutdown::Both);
}
