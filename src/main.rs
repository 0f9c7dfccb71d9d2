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
    raise_fd_limit(config.max_connections);
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let (listener, activated) = match listeners(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sio-edge: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let internal = match config.edge.internal_addr.map(bind).transpose() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("sio-edge: cannot listen on the internal address: {e}");
            return ExitCode::from(1);
        }
    };
    let internal_local = internal.as_ref().and_then(|l| l.local_addr().ok());
    let local = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let profile = config.profile;
    let path = config.path.clone();
    // Build the server (which installs the SIGTERM/SIGINT handlers) before announcing the
    // port: a supervisor that signals right after the line must get a clean shutdown.
    let mut server = match sio_edge::server::Server::new(listener, internal, config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sio-edge: cannot start the event loop: {e}");
            return ExitCode::from(1);
        }
    };
    // Tests and supervisors read this line to learn the (possibly ephemeral) port.
    println!("sio-edge listening on {local}");
    if let Some(a) = internal_local {
        println!("sio-edge internal listener on {a}");
    }
    let _ = std::io::stdout().flush();
    let how = if activated {
        ", socket from systemd"
    } else {
        ""
    };
    log::info!("listening on {local} (path {path}, profile {profile:?}{how})");
    if let Some(a) = internal_local {
        log::info!("internal listener (/api/*, /metrics) on {a}");
    }
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

/// Descriptors the process needs beyond one per connection (listeners, poll, helper threads).
const SPARE_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard one; warns, naming the setting to change,
/// when even that is below `--max-connections` (accepts past it fail with EMFILE, counted in
/// `sio_accept_errors_total`, and pause for 100 ms each time).
fn raise_fd_limit(max_connections: usize) {
    let wanted = max_connections as u64 + SPARE_FDS;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => log::warn!(
            "open-file limit is {limit}, below --max-connections {max_connections} + {SPARE_FDS}: \
             raise the hard limit (systemd LimitNOFILE=, docker run --ulimit nofile=N:N, \
             ulimit -Hn) or lower --max-connections"
        ),
        Ok(limit) => log::debug!("open-file limit {limit}"),
        Err(e) => log::warn!("cannot read or raise the open-file limit: {e}"),
    }
}

/// The public listener: the socket systemd passed (`LISTEN_FDS`, socket activation: connects
/// queue in the kernel while the service restarts), else a new one bound to `addr`. The flag
/// says which.
fn listeners(addr: std::net::SocketAddr) -> std::io::Result<(std::net::TcpListener, bool)> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 0 {
        if let Some(l) = fds.take_tcp_listener(0)? {
            return Ok((l, true));
        }
        log::warn!("LISTEN_FDS is set but descriptor 3 is not a TCP listener; binding {addr}");
    }
    bind(addr).map(|l| (l, false))
}

/// Binds with SO_REUSEADDR and a deep listen backlog.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}
