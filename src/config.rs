//! Configuration: `argh` flags, each also read from the seed platform's environment variables
//! (flags win), validated into a [`Config`] at start.

use argh::FromArgs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// sio-edge: a single-threaded Socket.IO v4 edge server.
///
/// Every option can also be set by the environment variable named in brackets; a flag wins
/// over its variable.
#[derive(FromArgs, Debug, Default)]
pub struct Flags {
    /// address to listen on [SOCKET_IO_HOST] (default 0.0.0.0)
    #[argh(option)]
    pub host: Option<String>,
    /// port to listen on, 0 for an ephemeral port [SOCKET_IO_PORT] (default 3001)
    #[argh(option)]
    pub port: Option<u16>,
    /// path of the Engine.IO endpoint [SOCKET_IO_PATH] (default /socket.io/)
    #[argh(option)]
    pub path: Option<String>,
    /// allowed CORS origins, comma separated, `*` for any [SOCKET_IO_CORS_ORIGIN]
    /// (default http://localhost:3000)
    #[argh(option)]
    pub cors_origin: Option<String>,
    /// the HS256 secret for client tokens [JWT_SECRET]
    #[argh(option)]
    pub jwt_secret: Option<String>,
    /// second accepted HS256 secret [NEXTAUTH_SECRET]
    #[argh(option)]
    pub nextauth_secret: Option<String>,
    /// a PEM public key file for RS256 (RSA) or ES256 (P-256) tokens [JWT_PUBLIC_KEY_FILE]
    #[argh(option)]
    pub jwt_public_key: Option<PathBuf>,
    /// required `iss` claim [JWT_ISSUER]
    #[argh(option)]
    pub jwt_issuer: Option<String>,
    /// required `aud` claim [JWT_AUDIENCE]
    #[argh(option)]
    pub jwt_audience: Option<String>,
    /// key for the internal HTTP API [INTERNAL_API_KEY, alias SOCKETIO_API_KEY]
    #[argh(option)]
    pub internal_api_key: Option<String>,
    /// heartbeat interval in ms [SOCKET_IO_PING_INTERVAL] (default 25000)
    #[argh(option)]
    pub ping_interval: Option<u64>,
    /// heartbeat timeout in ms [SOCKET_IO_PING_TIMEOUT] (default 20000)
    #[argh(option)]
    pub ping_timeout: Option<u64>,
    /// largest accepted message or POST body in bytes [SOCKET_IO_MAX_PAYLOAD] (default 1000000)
    #[argh(option)]
    pub max_payload: Option<usize>,
    /// ms a new session has to connect a namespace [SOCKET_IO_CONNECT_TIMEOUT] (default 45000)
    #[argh(option)]
    pub connect_timeout: Option<u64>,
    /// extra namespace to serve; repeat for several [SOCKET_IO_NAMESPACES, comma separated]
    #[argh(option)]
    pub namespace: Vec<String>,
    /// per-connection outbound queue limit in bytes; a slower client is disconnected
    /// [SOCKET_IO_MAX_OUTBOUND_BYTES] (default 1048576)
    #[argh(option)]
    pub max_outbound_bytes: Option<usize>,
    /// largest internal API request body in bytes [SOCKET_IO_MAX_API_BODY] (default 1048576)
    #[argh(option)]
    pub max_api_body: Option<usize>,
    /// most concurrent connections; more are refused [SOCKET_IO_MAX_CONNECTIONS] (default 100000)
    #[argh(option)]
    pub max_connections: Option<usize>,
    /// ms a user stays online after their last socket disconnects [SOCKET_IO_PRESENCE_GRACE]
    /// (default 5000)
    #[argh(option)]
    pub presence_grace: Option<u64>,
    /// offline notifications kept per user [SOCKET_IO_MAILBOX_SIZE] (default 100)
    #[argh(option)]
    pub mailbox_size: Option<usize>,
    /// seconds an offline notification is kept [SOCKET_IO_MAILBOX_TTL] (default 604800)
    #[argh(option)]
    pub mailbox_ttl: Option<u64>,
    /// ms a disconnected socket can be recovered, 0 to turn connection state recovery off
    /// [SOCKET_IO_RECOVERY_WINDOW] (default 120000; off in the conformance and bench profiles)
    #[argh(option)]
    pub recovery_window: Option<u64>,
    /// multiply every per-socket rate limit by this [SOCKET_IO_RATE_LIMIT_SCALE] (default 1)
    #[argh(option)]
    pub rate_limit_scale: Option<f32>,
    /// largest `file:shared` size in bytes [SOCKET_IO_MAX_FILE_SIZE] (default 104857600)
    #[argh(option)]
    pub max_file_size: Option<u64>,
    /// the Redis URL for the presence/grant mirror and multi-node fanout, e.g. redis://127.0.0.1:6379
    /// [REDIS_URL] (default: none, fully in-process)
    #[argh(option)]
    pub redis_url: Option<String>,
    /// the Kafka bootstrap brokers, comma separated [KAFKA_BROKERS] (default: none)
    #[argh(option)]
    pub kafka_brokers: Option<String>,
    /// the Kafka topics to consume, comma separated [KAFKA_TOPICS] (default realtime-events)
    #[argh(option)]
    pub kafka_topics: Option<String>,
    /// the Kafka group id for this node's committed offsets [KAFKA_GROUP_ID]
    /// (default sio-edge-<node id>)
    #[argh(option)]
    pub kafka_group_id: Option<String>,
    /// the Kafka topic for client events to persist [KAFKA_CLIENT_EVENTS_TOPIC]
    /// (default client-events)
    #[argh(option)]
    pub kafka_client_events_topic: Option<String>,
    /// where a node with no committed offset starts: latest or earliest [KAFKA_START]
    /// (default latest)
    #[argh(option)]
    pub kafka_start: Option<String>,
    /// this node's id in Redis keys and the Kafka group id [NODE_ID] (default: host name + port)
    #[argh(option)]
    pub node_id: Option<String>,
    /// accept sockets without a token (local development only) [SOCKET_IO_ALLOW_ANONYMOUS=1]
    #[argh(switch)]
    pub allow_anonymous: bool,
    /// let sockets emit `echo` with an ack that returns the arguments [SOCKET_IO_DIAGNOSTICS=1]
    #[argh(switch)]
    pub diagnostics: bool,
    /// behave like the Socket.IO protocol repository's reference test server
    #[argh(switch)]
    pub conformance: bool,
    /// benchmark profile: no auth, join room `bench`, relay `bench:publish` as `bench:msg`
    #[argh(switch)]
    pub bench: bool,
    /// log filter such as `info` or `sio_edge=debug,warn` [RUST_LOG] (default info)
    #[argh(option)]
    pub log: Option<String>,
}

/// Which built-in event handlers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Production,
    Conformance,
    Bench,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub path: String,
    pub cors: Cors,
    pub jwt_secrets: Vec<Vec<u8>>,
    pub jwt_public_key: Option<Vec<u8>>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub api_key: Option<String>,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub max_payload: usize,
    pub connect_timeout: Duration,
    pub namespaces: Vec<String>,
    pub max_outbound_bytes: usize,
    pub max_api_body: usize,
    pub max_connections: usize,
    pub allow_anonymous: bool,
    pub diagnostics: bool,
    pub presence_grace: Duration,
    pub mailbox_size: usize,
    pub mailbox_ttl: Duration,
    /// Zero turns connection state recovery off.
    pub recovery_window: Duration,
    pub rate_limit_scale: f32,
    pub max_file_size: u64,
    pub redis_url: Option<String>,
    pub kafka: Option<KafkaSettings>,
    pub node_id: String,
    pub profile: Profile,
    pub log: String,
}

/// Kafka settings; present only when brokers are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    pub group_id: String,
    pub client_events_topic: String,
    pub start_at_latest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    Any,
    List(Vec<String>),
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request `Origin`, if it is allowed.
    pub fn allow<'a>(&'a self, origin: &'a str) -> Option<&'a str> {
        match self {
            Cors::Any => Some("*"),
            Cors::List(list) => list.iter().any(|o| o == origin).then_some(origin),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3001,
            path: "/socket.io/".into(),
            cors: Cors::List(vec!["http://localhost:3000".into()]),
            jwt_secrets: Vec::new(),
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            api_key: None,
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(45_000),
            namespaces: vec!["/".into()],
            max_outbound_bytes: 1 << 20,
            max_api_body: 1 << 20,
            max_connections: 100_000,
            allow_anonymous: false,
            diagnostics: false,
            presence_grace: Duration::from_millis(5000),
            mailbox_size: 100,
            mailbox_ttl: Duration::from_secs(7 * 24 * 3600),
            recovery_window: Duration::from_millis(120_000),
            rate_limit_scale: 1.0,
            max_file_size: 100 << 20,
            redis_url: None,
            kafka: None,
            node_id: String::new(),
            profile: Profile::Production,
            log: "info".into(),
        }
    }
}

/// A configuration mistake, reported at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Reads a variable, treating an empty value as unset.
fn env(name: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

fn parse_num<T: std::str::FromStr>(
    flag: Option<T>,
    var: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<T>, ConfigError> {
    if flag.is_some() {
        return Ok(flag);
    }
    match env(var, lookup) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{var}={v:?} is not a valid number"))),
    }
}

/// The trimmed, non-empty items of a comma-separated list.
fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_switch(flag: bool, var: &str, lookup: &dyn Fn(&str) -> Option<String>) -> bool {
    flag || env(var, lookup).is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
}

impl Config {
    /// Merges flags with the environment (read through `lookup`) and validates the result.
    ///
    /// # Errors
    /// A message naming the bad setting.
    pub fn from_flags(
        flags: Flags,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if flags.conformance && flags.bench {
            return Err(bad(
                "--conformance and --bench are different profiles; pick one",
            ));
        }
        if flags.conformance {
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
        } else if flags.bench {
            c.profile = Profile::Bench;
            c.host = IpAddr::from([127, 0, 0, 1]);
            c.allow_anonymous = true;
            c.recovery_window = Duration::ZERO;
        }

        if let Some(h) = flags.host.or_else(|| env("SOCKET_IO_HOST", lookup)) {
            c.host = h
                .trim()
                .parse()
                .map_err(|_| bad(format!("host {h:?} is not an IP address")))?;
        }
        if let Some(p) = parse_num(flags.port, "SOCKET_IO_PORT", lookup)? {
            c.port = p;
        }
        if let Some(p) = flags.path.or_else(|| env("SOCKET_IO_PATH", lookup)) {
            if !p.starts_with('/') {
                return Err(bad(format!("path {p:?} must start with '/'")));
            }
            c.path = if p.ends_with('/') { p } else { format!("{p}/") };
        }
        if let Some(o) = flags
            .cors_origin
            .or_else(|| env("SOCKET_IO_CORS_ORIGIN", lookup))
        {
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
        for s in [
            flags.jwt_secret.or_else(|| env("JWT_SECRET", lookup)),
            flags
                .nextauth_secret
                .or_else(|| env("NEXTAUTH_SECRET", lookup)),
        ]
        .into_iter()
        .flatten()
        {
            c.jwt_secrets.push(s.into_bytes());
        }
        crate::auth::secrets::add_from_env(&mut c.jwt_secrets, lookup);
        if let Some(path) = flags
            .jwt_public_key
            .or_else(|| env("JWT_PUBLIC_KEY_FILE", lookup).map(PathBuf::from))
        {
            let pem = std::fs::read(&path).map_err(|e| {
                bad(format!(
                    "cannot read JWT public key {}: {e}",
                    path.display()
                ))
            })?;
            crate::auth::check_public_key(&pem)
                .map_err(|e| bad(format!("JWT public key {}: {e}", path.display())))?;
            c.jwt_public_key = Some(pem);
        }
        c.jwt_issuer = flags.jwt_issuer.or_else(|| env("JWT_ISSUER", lookup));
        c.jwt_audience = flags.jwt_audience.or_else(|| env("JWT_AUDIENCE", lookup));
        c.api_key = flags
            .internal_api_key
            .or_else(|| env("INTERNAL_API_KEY", lookup))
            .or_else(|| env("SOCKETIO_API_KEY", lookup));
        if let Some(k) = &c.api_key {
            if k.len() < 16 && c.profile == Profile::Production && !c.host.is_loopback() {
                return Err(bad("INTERNAL_API_KEY must be at least 16 characters when listening beyond loopback"));
            }
        }
        if let Some(ms) = parse_num(flags.ping_interval, "SOCKET_IO_PING_INTERVAL", lookup)? {
            c.ping_interval = Duration::from_millis(ms);
        }
        if let Some(ms) = parse_num(flags.ping_timeout, "SOCKET_IO_PING_TIMEOUT", lookup)? {
            c.ping_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = parse_num(flags.max_payload, "SOCKET_IO_MAX_PAYLOAD", lookup)? {
            c.max_payload = n;
        }
        if let Some(ms) = parse_num(flags.connect_timeout, "SOCKET_IO_CONNECT_TIMEOUT", lookup)? {
            c.connect_timeout = Duration::from_millis(ms);
        }
        let mut extra = flags.namespace;
        if extra.is_empty() {
            if let Some(list) = env("SOCKET_IO_NAMESPACES", lookup) {
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
        if let Some(n) = parse_num(
            flags.max_outbound_bytes,
            "SOCKET_IO_MAX_OUTBOUND_BYTES",
            lookup,
        )? {
            c.max_outbound_bytes = n;
        }
        if let Some(n) = parse_num(flags.max_api_body, "SOCKET_IO_MAX_API_BODY", lookup)? {
            c.max_api_body = n;
        }
        if let Some(n) = parse_num(flags.max_connections, "SOCKET_IO_MAX_CONNECTIONS", lookup)? {
            c.max_connections = n;
        }
        if let Some(ms) = parse_num(flags.presence_grace, "SOCKET_IO_PRESENCE_GRACE", lookup)? {
            c.presence_grace = Duration::from_millis(ms);
        }
        if let Some(n) = parse_num(flags.mailbox_size, "SOCKET_IO_MAILBOX_SIZE", lookup)? {
            c.mailbox_size = n;
        }
        if let Some(s) = parse_num(flags.mailbox_ttl, "SOCKET_IO_MAILBOX_TTL", lookup)? {
            c.mailbox_ttl = Duration::from_secs(s);
        }
        if let Some(ms) = parse_num(flags.recovery_window, "SOCKET_IO_RECOVERY_WINDOW", lookup)? {
            c.recovery_window = Duration::from_millis(ms);
        }
        if let Some(k) = parse_num(flags.rate_limit_scale, "SOCKET_IO_RATE_LIMIT_SCALE", lookup)? {
            if !(k > 0.0 && k.is_finite()) {
                return Err(bad("rate limit scale must be a positive number"));
            }
            c.rate_limit_scale = k;
        }
        if let Some(n) = parse_num(flags.max_file_size, "SOCKET_IO_MAX_FILE_SIZE", lookup)? {
            c.max_file_size = n;
        }
        c.node_id = match flags.node_id.or_else(|| env("NODE_ID", lookup)) {
            Some(id) if crate::store::grants::valid_id(&id) => id,
            Some(id) => {
                return Err(bad(format!(
                    "node id {id:?} must be 1 to 128 of [A-Za-z0-9_.:@-]"
                )))
            }
            None => {
                let host = lookup("HOSTNAME")
                    .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                    .map(|h| h.trim().to_owned())
                    .filter(|h| crate::store::grants::valid_id(h))
                    .unwrap_or_else(|| "node".into());
                // Stable across restarts, so a restarted node resumes its Kafka offsets.
                format!("{host}-{}", c.port)
            }
        };
        c.redis_url = flags.redis_url.or_else(|| env("REDIS_URL", lookup));
        if let Some(u) = &c.redis_url {
            if !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("unix://"))
            {
                return Err(bad(format!(
                    "REDIS_URL must start with redis://, rediss:// or unix:// (got {u:?})"
                )));
            }
        }
        if let Some(brokers) = flags
            .kafka_brokers
            .or_else(|| env("KAFKA_BROKERS", lookup))
            .map(|v| comma_list(&v))
            .filter(|b| !b.is_empty())
        {
            let topics = flags
                .kafka_topics
                .or_else(|| env("KAFKA_TOPICS", lookup))
                .map(|v| comma_list(&v))
                .unwrap_or_else(|| vec!["realtime-events".into()]);
            if topics.is_empty() {
                return Err(bad("KAFKA_TOPICS names no topic"));
            }
            let start = flags
                .kafka_start
                .or_else(|| env("KAFKA_START", lookup))
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
                group_id: flags
                    .kafka_group_id
                    .or_else(|| env("KAFKA_GROUP_ID", lookup))
                    .unwrap_or_else(|| format!("sio-edge-{}", c.node_id)),
                client_events_topic: flags
                    .kafka_client_events_topic
                    .or_else(|| env("KAFKA_CLIENT_EVENTS_TOPIC", lookup))
                    .unwrap_or_else(|| "client-events".into()),
                start_at_latest,
            });
        }
        c.allow_anonymous |= env_switch(flags.allow_anonymous, "SOCKET_IO_ALLOW_ANONYMOUS", lookup);
        c.diagnostics = env_switch(flags.diagnostics, "SOCKET_IO_DIAGNOSTICS", lookup);
        if let Some(l) = flags.log.or_else(|| env("RUST_LOG", lookup)) {
            c.log = l;
        }

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
        {
            return Err(bad(
                "no way to authenticate clients: set JWT_SECRET (or NEXTAUTH_SECRET, or a JWT public key), or pass --allow-anonymous for local development",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(flags: Flags, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_flags(flags, &move |k| {
            vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn env_is_read_and_flags_win() {
        let c = cfg(
            Flags {
                port: Some(4000),
                ..Flags::default()
            },
            &[
                ("SOCKET_IO_PORT", "3002"),
                ("JWT_SECRET", "s"),
                ("SOCKET_IO_PING_INTERVAL", "1000"),
                ("SOCKETIO_API_KEY", "k-0123456789abcdef"),
            ],
        )
        .unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.ping_interval, Duration::from_millis(1000));
        assert_eq!(c.api_key.as_deref(), Some("k-0123456789abcdef"));
    }

    #[test]
    fn production_without_auth_is_refused() {
        let e = cfg(Flags::default(), &[]).unwrap_err();
        assert!(e.to_string().contains("JWT_SECRET"));
        assert!(cfg(
            Flags {
                allow_anonymous: true,
                ..Flags::default()
            },
            &[]
        )
        .is_ok());
    }

    #[test]
    fn bad_numbers_and_namespaces_are_named() {
        let e = cfg(
            Flags::default(),
            &[("SOCKET_IO_PORT", "x"), ("JWT_SECRET", "s")],
        )
        .unwrap_err();
        assert!(e.to_string().contains("SOCKET_IO_PORT"));
        let e = cfg(
            Flags {
                namespace: vec!["admin".into()],
                allow_anonymous: true,
                ..Flags::default()
            },
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("admin"));
    }

    #[test]
    fn conformance_profile_defaults() {
        let c = cfg(
            Flags {
                conformance: true,
                ..Flags::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.ping_interval, Duration::from_millis(300));
        assert_eq!(c.namespaces, vec!["/", "/custom"]);
        assert_eq!(c.cors, Cors::Any);
    }

    #[test]
    fn cors_list() {
        let c = cfg(
            Flags {
                cors_origin: Some("http://a.test, http://b.test/".into()),
                allow_anonymous: true,
                ..Flags::default()
            },
            &[],
        )
        .unwrap();
        assert_eq!(c.cors.allow("http://b.test"), Some("http://b.test"));
        assert_eq!(c.cors.allow("http://evil.test"), None);
    }
}
