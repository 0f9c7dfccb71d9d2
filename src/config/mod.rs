//! Configuration: `argh` flags, each also read from the seed platform's environment variables
//! (flags win), validated into a [`Config`] at start.
//!
//! # Layout
//! - flags.rs: the [`Flags`] the binary parses.
//! - env.rs: a flag, else its variable; numbers, switches and comma lists.
//! - merge.rs: one function per concern (listen, auth, session check, Engine.IO, namespaces, limits, stores,
//!   node id, Redis, Kafka, switches, the admin UI namespace) and the final cross-setting checks.

mod env;
mod flags;
mod merge;
#[cfg(test)]
mod tests;

pub use flags::Flags;

use std::net::IpAddr;
use std::time::Duration;

/// Which built-in event handlers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Production,
    Conformance,
    Bench,
}

/// Validated configuration. Mostly flat because src/server reads the fields by path (grouping
/// them would rename those paths); settings added since come in groups (`edge`).
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
    /// Deadlines and listeners of a public edge.
    pub edge: Edge,
    /// The app's session endpoint for database sessions, when configured.
    pub session_check: Option<crate::session_check::Settings>,
    /// The Socket.IO Admin UI namespace; `None` (the default) means it does not exist.
    pub admin: Option<Admin>,
}

/// The Socket.IO Admin UI's namespace (`@socket.io/admin-ui`'s `instrument()` protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// Namespace name, `/admin` by default.
    pub namespace: String,
    /// `None` only with `--admin-no-auth` (development).
    pub auth: Option<AdminAuth>,
    /// Advertise no commands and ignore them (the UI hides its actions).
    pub read_only: bool,
}

/// Basic authentication of the admin namespace, as the reference's `auth: {type: "basic"}`.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminAuth {
    pub username: String,
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`), checked at start.
    pub password_hash: String,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash stays out of logs and panics.
        f.debug_struct("AdminAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What a hostile peer meets: phase deadlines and where the internal routes are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// A request head must be complete this long after its first byte (or the accept).
    pub head_timeout: Duration,
    /// A request body must be complete this long after its head.
    pub body_timeout: Duration,
    /// A WebSocket probing an upgrade must complete it within this.
    pub upgrade_timeout: Duration,
    /// The internal listener for `/api/*` and `/metrics`, when configured.
    pub internal_addr: Option<std::net::SocketAddr>,
    /// `/metrics` on the public port without the key (only without an internal listener).
    pub public_metrics: bool,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            upgrade_timeout: Duration::from_secs(10),
            internal_addr: None,
            public_metrics: false,
        }
    }
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
            edge: Edge::default(),
            session_check: None,
            admin: None,
        }
    }
}

/// A configuration mistake, reported at start.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Merges flags with the environment (read through `lookup`) and validates the result.
    ///
    /// # Errors
    /// A message naming the bad setting.
    pub fn from_flags(
        mut flags: Flags,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let env = env::Env::new(lookup);
        let f = &mut flags;
        let mut c = Config::default();
        merge::profile(&mut c, f)?;
        merge::listen(&mut c, f, &env)?;
        merge::auth(&mut c, f, &env)?;
        merge::session_check(&mut c, f, &env)?;
        merge::engine_io(&mut c, f, &env)?;
        merge::namespaces(&mut c, f, &env)?;
        merge::connection_limits(&mut c, f, &env)?;
        merge::stores(&mut c, f, &env)?;
        merge::event_limits(&mut c, f, &env)?;
        merge::node_id(&mut c, f, &env)?;
        merge::redis(&mut c, f, &env)?;
        merge::kafka(&mut c, f, &env)?;
        merge::switches(&mut c, f, &env);
        merge::edge(&mut c, f, &env)?;
        merge::admin(&mut c, f, &env)?;
        merge::validate(&c)?;
        Ok(c)
    }
}
