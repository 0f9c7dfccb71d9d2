//! The `sio-edge` binary: read the configuration, bind, run the loop.

use sio_edge::config::{Config, Flags};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let flags: Flags = argh::from_env();
    let config = match Config::from_flags(flags, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sio-edge: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sio_edge::logger::init(&config.log) {
        eprintln!("sio-edge: invalid log filter: {e}");
        return ExitCode::from(2);
    }
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = match bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sio-edge: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let profile = config.profile;
    let path = config.path.clone();
    // Build the server (which installs the SIGTERM/SIGINT handlers) before announcing the
    // port: a supervisor that signals right after the line must get a clean shutdown.
    let mut server = match sio_edge::server::Server::new(listener, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sio-edge: cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    // Tests and supervisors read this line to learn the (possibly ephemeral) port.
    println!("sio-edge listening on {local}");
    let _ = std::io::stdout().flush();
    log::info!("listening on {local} (path {path}, profile {profile:?})");
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// The listen backlog: connection bursts (a deploy, a reconnect storm) must not overflow it.
/// std and mio use 128; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds with SO_REUSEADDR and a deep listen backlog.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
