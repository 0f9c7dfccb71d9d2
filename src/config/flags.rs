//! The command-line flags. Each option names the environment variable that also sets it; the
//! merge with the environment lives in merge.rs.

use argh::FromArgs;
use std::path::PathBuf;

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
    /// the app's session endpoint for database sessions (an opaque session cookie), e.g.
    /// http://web:3000/api/auth/session; plain http only [SOCKET_IO_SESSION_URL] (default: none)
    #[argh(option)]
    pub session_url: Option<String>,
    /// ms a session check may take before the CONNECT is refused [SOCKET_IO_SESSION_TIMEOUT]
    /// (default 2000)
    #[argh(option)]
    pub session_timeout: Option<u64>,
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
    /// ms a request head may take from its first byte (or the connection's accept) before
    /// the connection is answered 408 and closed [SOCKET_IO_HEAD_TIMEOUT] (default 10000)
    #[argh(option)]
    pub head_timeout: Option<u64>,
    /// ms a request body may take after its head [SOCKET_IO_BODY_TIMEOUT] (default 30000)
    #[argh(option)]
    pub body_timeout: Option<u64>,
    /// ms a WebSocket has to complete an upgrade of a polling session before it is closed
    /// [SOCKET_IO_UPGRADE_TIMEOUT] (default 10000)
    #[argh(option)]
    pub upgrade_timeout: Option<u64>,
    /// a second listener, e.g. 127.0.0.1:3002, that alone serves /api/* and /metrics
    /// [SOCKET_IO_INTERNAL_ADDR] (default: none, they are on the public port)
    #[argh(option)]
    pub internal_addr: Option<String>,
    /// serve /metrics on the public port without the internal API key
    /// [SOCKET_IO_PUBLIC_METRICS=1]
    #[argh(switch)]
    pub public_metrics: bool,
    /// serve the Socket.IO Admin UI protocol on this namespace (needs a username and password
    /// hash, or --admin-no-auth) [SOCKET_IO_ADMIN_NAMESPACE] (default /admin when enabled)
    #[argh(option)]
    pub admin_namespace: Option<String>,
    /// the Admin UI login name; with a password hash it enables the admin namespace
    /// [SOCKET_IO_ADMIN_USERNAME]
    #[argh(option)]
    pub admin_username: Option<String>,
    /// bcrypt hash of the Admin UI password [SOCKET_IO_ADMIN_PASSWORD_HASH]
    #[argh(option)]
    pub admin_password_hash: Option<String>,
    /// enable the admin namespace without a login (local development only)
    /// [SOCKET_IO_ADMIN_NO_AUTH=1]
    #[argh(switch)]
    pub admin_no_auth: bool,
    /// admin namespace shows but cannot act: no emit, join, leave or disconnect
    /// [SOCKET_IO_ADMIN_READ_ONLY=1]
    #[argh(switch)]
    pub admin_read_only: bool,
    /// log filter such as `info` or `sio_edge=debug,warn` [RUST_LOG] (default info)
    #[argh(option)]
    pub log: Option<String>,
}
