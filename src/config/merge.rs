//! Merging flags and environment into a [`Config`], one function per concern. `from_flags` in
//! mod.rs calls them in a fixed order: later steps read what earlier ones settled (the API key
//! rule reads the host and profile, the default node id reads the port, the Kafka group id reads
//! the node id), and with several bad settings the first one in this order is the one reported.

use super::env::{comma_list, Env};
use super::{Admin, AdminAuth, Config, ConfigError, Cors, Flags, KafkaSettings, Profile};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

type Step = Result<(), ConfigError>;

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The profile and the defaults it changes; flags and variables then override those defaults.
pub(super) fn profile(c: &mut Config, f: &Flags) -> Step {
    if f.conformance && f.bench {
        return Err(bad(
            "--conformance and --bench are different profiles; pick one",
        ));
    }
    if f.conformance {
        // The Socket.IO protocol repository's test suite expects these exact values.
        c.profile = Profile::Conformance;
        c.host = IpAddr::from([127, 0, 0, 1]);
        c.port = 3000;
        c.ping_interval = Duration::from_millis(300);
        c.ping_timeout = Duration::from_millis(200);
        c.connect_timeout = Duration::from_millis(1000);
        c.cors = Cors::Any;
        c.namespaces.push("/custom".into());
        c.allow_anonymous = true;
        c.recovery_window = Duration::ZERO;
    } else if f.bench {
        c.profile = Profile::Bench;
        c.host = IpAddr::from([127, 0, 0, 1]);
        c.allow_anonymous = true;
        c.recovery_window = Duration::ZERO;
    }
    Ok(())
}

/// Where to listen and whom to answer: host, port, endpoint path, CORS origins.
pub(super) fn listen(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    if let Some(h) = env.or(f.host.take(), "SOCKET_IO_HOST") {
        c.host = h
            .trim()
            .parse()
            .map_err(|_| bad(format!("host {h:?} is not an IP address")))?;
    }
    if let Some(p) = env.num(f.port, "SOCKET_IO_PORT")? {
        c.port = p;
    }
    if let Some(p) = env.or(f.path.take(), "SOCKET_IO_PATH") {
        if !p.starts_with('/') {
            return Err(bad(format!("path {p:?} must start with '/'")));
        }
        c.path = if p.ends_with('/') { p } else { format!("{p}/") };
    }
    if let Some(o) = env.or(f.cors_origin.take(), "SOCKET_IO_CORS_ORIGIN") {
        // Browsers send an origin without a trailing slash; people often configure one.
        let list: Vec<String> = o
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        c.cors = if list.iter().any(|s| s == "*") {
            Cors::Any
        } else {
            Cors::List(list)
        };
    }
    Ok(())
}

/// Phase deadlines, the internal listener and who may read `/metrics`.
pub(super) fn edge(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let ms = |v: Option<u64>, name: &str| -> Result<Option<Duration>, ConfigError> {
        match env.num(v, name)? {
            Some(0) => Err(bad(format!("{name} must be above 0 ms"))),
            other => Ok(other.map(Duration::from_millis)),
        }
    };
    let e = &mut c.edge;
    if let Some(d) = ms(f.head_timeout, "SOCKET_IO_HEAD_TIMEOUT")? {
        e.head_timeout = d;
    }
    if let Some(d) = ms(f.body_timeout, "SOCKET_IO_BODY_TIMEOUT")? {
        e.body_timeout = d;
    }
    if let Some(d) = ms(f.upgrade_timeout, "SOCKET_IO_UPGRADE_TIMEOUT")? {
        e.upgrade_timeout = d;
    }
    if let Some(a) = env.or(f.internal_addr.take(), "SOCKET_IO_INTERNAL_ADDR") {
        let addr = a.trim().parse().map_err(|_| {
            bad(format!(
                "internal address {a:?} is not an IP:port such as 127.0.0.1:3002"
            ))
        })?;
        e.internal_addr = Some(addr);
    }
    e.public_metrics = env.switch(f.public_metrics, "SOCKET_IO_PUBLIC_METRICS");
    Ok(())
}

/// The Admin UI namespace: on with a username and a bcrypt password hash, or with
/// `--admin-no-auth`; otherwise it does not exist. Its name may not shadow a served namespace.
pub(super) fn admin(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let username = env.or(f.admin_username.take(), "SOCKET_IO_ADMIN_USERNAME");
    let hash = env.or(
        f.admin_password_hash.take(),
        "SOCKET_IO_ADMIN_PASSWORD_HASH",
    );
    let no_auth = env.switch(f.admin_no_auth, "SOCKET_IO_ADMIN_NO_AUTH");
    let namespace = env.or(f.admin_namespace.take(), "SOCKET_IO_ADMIN_NAMESPACE");
    let read_only = env.switch(f.admin_read_only, "SOCKET_IO_ADMIN_READ_ONLY");
    let auth = match (username, hash) {
        (Some(username), Some(password_hash)) => {
            if password_hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(bad(
                    "SOCKET_IO_ADMIN_PASSWORD_HASH must be a bcrypt hash such as $2b$10$...",
                ));
            }
            Some(AdminAuth {
                username,
                password_hash,
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(bad(
                "SOCKET_IO_ADMIN_USERNAME and SOCKET_IO_ADMIN_PASSWORD_HASH go together",
            ))
        }
        (None, None) if no_auth => None,
        (None, None) => {
            if namespace.is_some() || read_only {
                return Err(bad(
                    "the admin namespace needs SOCKET_IO_ADMIN_USERNAME and SOCKET_IO_ADMIN_PASSWORD_HASH (or --admin-no-auth for development)",
                ));
            }
            return Ok(());
        }
    };
    let namespace = namespace.unwrap_or_else(|| "/admin".into());
    if !namespace.starts_with('/') || namespace.contains(',') || namespace.len() > 128 {
        return Err(bad(format!(
            "admin namespace {namespace:?} must start with '/', have no ',' and be at most 128 bytes"
        )));
    }
    if c.namespaces.contains(&namespace) {
        return Err(bad(format!(
            "admin namespace {namespace:?} is already an application namespace"
        )));
    }
    c.admin = Some(Admin {
        namespace,
        auth,
        read_only,
    });
    Ok(())
}

/// Client token keys and claims, and the internal API key.
pub(super) fn auth(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let secrets = [
        env.or(f.jwt_secret.take(), "JWT_SECRET"),
        env.or(f.nextauth_secret.take(), "NEXTAUTH_SECRET"),
    ];
    c.jwt_secrets
        .extend(secrets.into_iter().flatten().map(String::into_bytes));
    // Auth.js v5's AUTH_SECRET and its rotation list (AUTH_SECRET_1..3, or comma separated).
    crate::auth::secrets::add_from_env(&mut c.jwt_secrets, &|name| env.raw(name));
    if let Some(path) = f
        .jwt_public_key
        .take()
        .or_else(|| env.var("JWT_PUBLIC_KEY_FILE").map(PathBuf::from))
    {
        c.jwt_public_key = Some(public_key(&path)?);
    }
    c.jwt_issuer = env.or(f.jwt_issuer.take(), "JWT_ISSUER");
    c.jwt_audience = env.or(f.jwt_audience.take(), "JWT_AUDIENCE");
    c.api_key = env
        .or(f.internal_api_key.take(), "INTERNAL_API_KEY")
        .or_else(|| env.var("SOCKETIO_API_KEY"));
    if let Some(k) = &c.api_key {
        // A short key is guessable; tolerated only where nobody else can reach the API.
        if k.len() < 16 && c.profile == Profile::Production && !c.host.is_loopback() {
            return Err(bad(
                "INTERNAL_API_KEY must be at least 16 characters when listening beyond loopback",
            ));
        }
    }
    Ok(())
}

/// The session endpoint for database sessions and its timeout; the URL is checked now (plain
/// `http://` only), so a typo stops the server at start rather than refusing every client.
pub(super) fn session_check(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let timeout = match env.num(f.session_timeout, "SOCKET_IO_SESSION_TIMEOUT")? {
        Some(0) => return Err(bad("SOCKET_IO_SESSION_TIMEOUT must be above 0 ms")),
        Some(ms) => Duration::from_millis(ms),
        None => crate::session_check::DEFAULT_TIMEOUT,
    };
    if let Some(url) = env.or(f.session_url.take(), "SOCKET_IO_SESSION_URL") {
        let endpoint = crate::session_check::Endpoint::parse(&url)
            .map_err(|e| bad(format!("SOCKET_IO_SESSION_URL {e}")))?;
        c.session_check = Some(crate::session_check::Settings { endpoint, timeout });
    }
    Ok(())
}

/// Reads a PEM public key at start, so a missing or unusable file stops the server now rather
/// than failing every client later.
fn public_key(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        bad(format!(
            "cannot read JWT public key {}: {e}",
            path.display()
        ))
    })?;
    crate::auth::check_public_key(&pem)
        .map_err(|e| bad(format!("JWT public key {}: {e}", path.display())))?;
    Ok(pem)
}

/// What the Engine.IO handshake announces (ping interval and timeout, largest payload) and how
/// long a new session has to connect a namespace.
pub(super) fn engine_io(c: &mut Config, f: &Flags, env: &Env) -> Step {
    if let Some(ms) = env.num(f.ping_interval, "SOCKET_IO_PING_INTERVAL")? {
        c.ping_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = env.num(f.ping_timeout, "SOCKET_IO_PING_TIMEOUT")? {
        c.ping_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = env.num(f.max_payload, "SOCKET_IO_MAX_PAYLOAD")? {
        c.max_payload = n;
    }
    if let Some(ms) = env.num(f.connect_timeout, "SOCKET_IO_CONNECT_TIMEOUT")? {
        c.connect_timeout = Duration::from_millis(ms);
    }
    Ok(())
}

/// Extra namespaces: repeated flags, else the comma-separated variable. `/` is always served.
pub(super) fn namespaces(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let mut extra = std::mem::take(&mut f.namespace);
    if extra.is_empty() {
        if let Some(list) = env.var("SOCKET_IO_NAMESPACES") {
            extra = comma_list(&list);
        }
    }
    for ns in extra {
        if !ns.starts_with('/') || ns.contains(',') || ns.len() > 128 {
            return Err(bad(format!(
                "namespace {ns:?} must start with '/', have no ',' and be at most 128 bytes"
            )));
        }
        if !c.namespaces.contains(&ns) {
            c.namespaces.push(ns);
        }
    }
    Ok(())
}

/// Per-connection and per-node limits: outbound queue, API body, connection count.
pub(super) fn connection_limits(c: &mut Config, f: &Flags, env: &Env) -> Step {
    if let Some(n) = env.num(f.max_outbound_bytes, "SOCKET_IO_MAX_OUTBOUND_BYTES")? {
        c.max_outbound_bytes = n;
    }
    if let Some(n) = env.num(f.max_api_body, "SOCKET_IO_MAX_API_BODY")? {
        c.max_api_body = n;
    }
    if let Some(n) = env.num(f.max_connections, "SOCKET_IO_MAX_CONNECTIONS")? {
        c.max_connections = n;
    }
    Ok(())
}

/// How long the in-memory stores keep things: presence grace, the offline mailbox, the
/// connection state recovery window.
pub(super) fn stores(c: &mut Config, f: &Flags, env: &Env) -> Step {
    if let Some(ms) = env.num(f.presence_grace, "SOCKET_IO_PRESENCE_GRACE")? {
        c.presence_grace = Duration::from_millis(ms);
    }
    if let Some(n) = env.num(f.mailbox_size, "SOCKET_IO_MAILBOX_SIZE")? {
        c.mailbox_size = n;
    }
    if let Some(s) = env.num(f.mailbox_ttl, "SOCKET_IO_MAILBOX_TTL")? {
        c.mailbox_ttl = Duration::from_secs(s);
    }
    if let Some(ms) = env.num(f.recovery_window, "SOCKET_IO_RECOVERY_WINDOW")? {
        c.recovery_window = Duration::from_millis(ms);
    }
    Ok(())
}

/// Per-socket event limits: the rate-limit scale and the largest shared file.
pub(super) fn event_limits(c: &mut Config, f: &Flags, env: &Env) -> Step {
    if let Some(k) = env.num(f.rate_limit_scale, "SOCKET_IO_RATE_LIMIT_SCALE")? {
        if !(k > 0.0 && k.is_finite()) {
            return Err(bad("rate limit scale must be a positive number"));
        }
        c.rate_limit_scale = k;
    }
    if let Some(n) = env.num(f.max_file_size, "SOCKET_IO_MAX_FILE_SIZE")? {
        c.max_file_size = n;
    }
    Ok(())
}

/// This node's id: given, or the host name plus the port.
pub(super) fn node_id(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    c.node_id = match env.or(f.node_id.take(), "NODE_ID") {
        Some(id) if crate::store::grants::valid_id(&id) => id,
        Some(id) => {
            return Err(bad(format!(
                "node id {id:?} must be 1 to 128 of [A-Za-z0-9_.:@-]"
            )))
        }
        None => {
            let host = env
                .raw("HOSTNAME")
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| crate::store::grants::valid_id(h))
                .unwrap_or_else(|| "node".into());
            // Stable across restarts, so a restarted node resumes its Kafka offsets.
            format!("{host}-{}", c.port)
        }
    };
    Ok(())
}

/// The Redis URL, checked for a scheme the bridge can connect to.
pub(super) fn redis(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    c.redis_url = env.or(f.redis_url.take(), "REDIS_URL");
    if let Some(u) = &c.redis_url {
        if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix://")) {
            return Err(bad(format!(
                "REDIS_URL must start with redis://, rediss:// or unix:// (got {u:?})"
            )));
        }
    }
    Ok(())
}

/// Kafka settings, only when some broker is named; the group id defaults from the node id.
pub(super) fn kafka(c: &mut Config, f: &mut Flags, env: &Env) -> Step {
    let Some(brokers) = env
        .or(f.kafka_brokers.take(), "KAFKA_BROKERS")
        .map(|v| comma_list(&v))
        .filter(|b| !b.is_empty())
    else {
        return Ok(());
    };
    let topics = env
        .or(f.kafka_topics.take(), "KAFKA_TOPICS")
        .map(|v| comma_list(&v))
        .unwrap_or_else(|| vec!["realtime-events".into()]);
    if topics.is_empty() {
        return Err(bad("KAFKA_TOPICS names no topic"));
    }
    let start = env
        .or(f.kafka_start.take(), "KAFKA_START")
        .unwrap_or_else(|| "latest".into());
    let start_at_latest = match start.as_str() {
        "latest" => true,
        "earliest" => false,
        other => {
            return Err(bad(format!(
                "KAFKA_START must be latest or earliest (got {other:?})"
            )))
        }
    };
    c.kafka = Some(KafkaSettings {
        brokers,
        topics,
        group_id: env
            .or(f.kafka_group_id.take(), "KAFKA_GROUP_ID")
            .unwrap_or_else(|| format!("sio-edge-{}", c.node_id)),
        client_events_topic: env
            .or(
                f.kafka_client_events_topic.take(),
                "KAFKA_CLIENT_EVENTS_TOPIC",
            )
            .unwrap_or_else(|| "client-events".into()),
        start_at_latest,
    });
    Ok(())
}

/// The switches and the log filter. A profile's anonymous access stays on whatever the
/// variable says.
pub(super) fn switches(c: &mut Config, f: &mut Flags, env: &Env) {
    c.allow_anonymous |= env.switch(f.allow_anonymous, "SOCKET_IO_ALLOW_ANONYMOUS");
    c.diagnostics = env.switch(f.diagnostics, "SOCKET_IO_DIAGNOSTICS");
    if let Some(l) = env.or(f.log.take(), "RUST_LOG") {
        c.log = l;
    }
}

/// Rules over the merged result: values the loop cannot run with, and a production server
/// with no way to authenticate anyone.
pub(super) fn validate(c: &Config) -> Step {
    if c.ping_interval.is_zero() || c.ping_timeout.is_zero() || c.connect_timeout.is_zero() {
        return Err(bad(
            "ping interval, ping timeout and connect timeout must be above 0 ms",
        ));
    }
    if c.max_payload < 64 {
        return Err(bad("max payload must be at least 64 bytes"));
    }
    if c.max_outbound_bytes < 4096 {
        return Err(bad("max outbound bytes must be at least 4096"));
    }
    if c.max_connections == 0 {
        return Err(bad("max connections must be above 0"));
    }
    if c.profile == Profile::Production
        && !c.allow_anonymous
        && c.jwt_secrets.is_empty()
        && c.jwt_public_key.is_none()
        && c.session_check.is_none()
    {
        return Err(bad(
            "no way to authenticate clients: set AUTH_SECRET (or JWT_SECRET, NEXTAUTH_SECRET, a JWT public key, or SOCKET_IO_SESSION_URL), or pass --allow-anonymous for local development",
        ));
    }
    Ok(())
}
