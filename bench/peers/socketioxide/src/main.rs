//! The bench contract (bench/CONTRACT.md) on socketioxide: every socket joins room `bench`;
//! `bench:publish` is relayed as `bench:msg` to room `bench` (or to the payload's `room`);
//! `bench:join` joins a room and acks; `POST /api/emit` emits to rooms.
//!
//! One tokio current_thread runtime, so it competes on one core like sio-edge and Node.
//! Environment: `PORT` (default 3002, 0 = ephemeral), `HOST` (default 127.0.0.1),
//! `BENCH_API_KEY` (default `bench`), `BENCH_MAX_BUFFER` (packets queued per socket before
//! emits to it fail; default 8192, about sio-edge's 1 MiB outbound limit in 116-byte frames).

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Json;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::socket::Sid;
use socketioxide::SocketIo;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = env_or("PORT", "3002").parse().expect("PORT must be a port number");
    let host = env_or("HOST", "127.0.0.1");
    let max_buffer: usize = env_or("BENCH_MAX_BUFFER", "8192")
        .parse()
        .expect("BENCH_MAX_BUFFER must be a number");
    let api_key = env_or("BENCH_API_KEY", "bench");

    let (layer, io) = SocketIo::builder().max_buffer_size(max_buffer).build_layer();
    io.ns("/", async |s: SocketRef| {
        s.join("bench");
        s.on(
            "bench:publish",
            async |io: SocketIo, Data(payload): Data<Value>| {
                let room = match payload.get("room").and_then(Value::as_str) {
                    Some(r) => r.to_owned(),
                    None => "bench".to_owned(),
                };
                // A full per-socket buffer drops the message for that socket: the load
                // generator counts it as lost.
                let _ = io.to(room).emit("bench:msg", &payload).await;
            },
        );
        s.on(
            "bench:join",
            async |s: SocketRef, Data(room): Data<String>, ack: AckSender| {
                s.join(room);
                let _ = ack.send(&());
            },
        );
    });

    let app = axum::Router::new()
        .route(
            "/api/emit",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let io = io.clone();
                let api_key = api_key.clone();
                async move { api_emit(io, &api_key, headers, body).await }
            }),
        )
        .layer(layer);

    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .expect("cannot bind");
    println!("socketioxide peer listening on {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("server failed");
}

/// `POST /api/emit` `{"event","data","rooms":[..]}` with header `x-api-key`.
async fn api_emit(
    io: SocketIo,
    api_key: &str,
    headers: HeaderMap,
    body: Value,
) -> (StatusCode, &'static str) {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(api_key) {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"unauthorized\"}");
    }
    let Some(event) = body.get("event").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, "{\"error\":\"event\"}");
    };
    let rooms: Vec<String> = body
        .get("rooms")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if rooms.is_empty() {
        return (StatusCode::BAD_REQUEST, "{\"error\":\"no target\"}");
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    // A socket id addresses that socket (as in Node, where every socket is in the room named
    // by its id); anything else is a room.
    let mut named = Vec::new();
    for r in rooms {
        match r.parse::<Sid>().ok().and_then(|sid| io.get_socket(sid)) {
            Some(s) => {
                let _ = s.emit(event, &data);
            }
            None => named.push(r),
        }
    }
    if !named.is_empty() {
        let _ = io.to(named).emit(event, &data).await;
    }
    (StatusCode::ACCEPTED, "{}")
}
