//! Unit tests for merging flags and environment into a `Config`: precedence, profiles, each
//! concern's parsing, and the messages that name a bad setting.

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

/// The message of a refused configuration, for exact comparisons.
fn refusal(flags: Flags, vars: &[(&str, &str)]) -> String {
    cfg(flags, vars).unwrap_err().to_string()
}

fn anonymous() -> Flags {
    Flags {
        allow_anonymous: true,
        ..Flags::default()
    }
}

#[test]
fn bad_number_message_names_variable_and_value() {
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_MAX_PAYLOAD", "1e6")]),
        "invalid configuration: SOCKET_IO_MAX_PAYLOAD=\"1e6\" is not a valid number"
    );
}

#[test]
fn empty_variables_count_as_unset() {
    let c = cfg(anonymous(), &[("SOCKET_IO_PORT", "  "), ("REDIS_URL", "")]).unwrap();
    assert_eq!(c.port, 3001);
    assert_eq!(c.redis_url, None);
}

#[test]
fn listen_host_and_path() {
    let c = cfg(
        anonymous(),
        &[("SOCKET_IO_HOST", " 127.0.0.1 "), ("SOCKET_IO_PATH", "/io")],
    )
    .unwrap();
    assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(c.path, "/io/", "a trailing slash is added");
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_HOST", "localhost")]),
        "invalid configuration: host \"localhost\" is not an IP address"
    );
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_PATH", "io/")]),
        "invalid configuration: path \"io/\" must start with '/'"
    );
}

#[test]
fn cors_star_anywhere_in_the_list_means_any() {
    let c = cfg(anonymous(), &[("SOCKET_IO_CORS_ORIGIN", "http://a.test,*")]).unwrap();
    assert_eq!(c.cors, Cors::Any);
}

#[test]
fn both_jwt_secrets_are_kept_in_order() {
    let c = cfg(
        Flags {
            nextauth_secret: Some("second".into()),
            ..Flags::default()
        },
        &[("JWT_SECRET", "first"), ("NEXTAUTH_SECRET", "ignored")],
    )
    .unwrap();
    assert_eq!(c.jwt_secrets, vec![b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn unreadable_public_key_is_named() {
    let e = refusal(
        Flags::default(),
        &[("JWT_PUBLIC_KEY_FILE", "/nonexistent/sio-edge-key.pem")],
    );
    assert!(
        e.starts_with(
            "invalid configuration: cannot read JWT public key /nonexistent/sio-edge-key.pem: "
        ),
        "{e}"
    );
}

#[test]
fn short_api_key_only_on_loopback() {
    let vars = [("INTERNAL_API_KEY", "short"), ("JWT_SECRET", "s")];
    assert_eq!(
        refusal(Flags::default(), &vars),
        "invalid configuration: INTERNAL_API_KEY must be at least 16 characters when listening beyond loopback"
    );
    let loopback = Flags {
        host: Some("127.0.0.1".into()),
        ..Flags::default()
    };
    assert_eq!(
        cfg(loopback, &vars).unwrap().api_key.as_deref(),
        Some("short")
    );
    // INTERNAL_API_KEY wins over its alias.
    let c = cfg(
        anonymous(),
        &[
            ("INTERNAL_API_KEY", "primary-0123456789"),
            ("SOCKETIO_API_KEY", "alias-0123456789ab"),
        ],
    )
    .unwrap();
    assert_eq!(c.api_key.as_deref(), Some("primary-0123456789"));
}

#[test]
fn namespaces_from_env_unless_flags_given() {
    let vars = [("SOCKET_IO_NAMESPACES", " /a, ,/b,/a ")];
    let c = cfg(anonymous(), &vars).unwrap();
    assert_eq!(
        c.namespaces,
        vec!["/", "/a", "/b"],
        "deduplicated, blanks skipped"
    );
    let c = cfg(
        Flags {
            namespace: vec!["/c".into()],
            ..anonymous()
        },
        &vars,
    )
    .unwrap();
    assert_eq!(c.namespaces, vec!["/", "/c"]);
}

#[test]
fn durations_use_their_units() {
    let c = cfg(
        anonymous(),
        &[
            ("SOCKET_IO_MAILBOX_TTL", "60"),
            ("SOCKET_IO_PRESENCE_GRACE", "250"),
            ("SOCKET_IO_RECOVERY_WINDOW", "0"),
            ("SOCKET_IO_CONNECT_TIMEOUT", "1500"),
        ],
    )
    .unwrap();
    assert_eq!(c.mailbox_ttl, Duration::from_secs(60));
    assert_eq!(c.presence_grace, Duration::from_millis(250));
    assert_eq!(c.recovery_window, Duration::ZERO);
    assert_eq!(c.connect_timeout, Duration::from_millis(1500));
}

#[test]
fn limits_are_checked() {
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_RATE_LIMIT_SCALE", "0")]),
        "invalid configuration: rate limit scale must be a positive number"
    );
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_MAX_PAYLOAD", "63")]),
        "invalid configuration: max payload must be at least 64 bytes"
    );
    assert_eq!(
        refusal(anonymous(), &[("SOCKET_IO_PING_TIMEOUT", "0")]),
        "invalid configuration: ping interval, ping timeout and connect timeout must be above 0 ms"
    );
    let c = cfg(anonymous(), &[("SOCKET_IO_RATE_LIMIT_SCALE", "2.5")]).unwrap();
    assert_eq!(c.rate_limit_scale, 2.5);
}

#[test]
fn node_id_defaults_to_host_name_and_port() {
    let c = cfg(
        anonymous(),
        &[("HOSTNAME", " edge-1\n"), ("SOCKET_IO_PORT", "4100")],
    )
    .unwrap();
    assert_eq!(c.node_id, "edge-1-4100");
    assert_eq!(
        refusal(anonymous(), &[("NODE_ID", "a b")]),
        "invalid configuration: node id \"a b\" must be 1 to 128 of [A-Za-z0-9_.:@-]"
    );
}

#[test]
fn redis_url_scheme_is_checked() {
    let c = cfg(anonymous(), &[("REDIS_URL", "unix:///run/redis.sock")]).unwrap();
    assert_eq!(c.redis_url.as_deref(), Some("unix:///run/redis.sock"));
    assert_eq!(
        refusal(anonymous(), &[("REDIS_URL", "http://r:6379")]),
        "invalid configuration: REDIS_URL must start with redis://, rediss:// or unix:// (got \"http://r:6379\")"
    );
}

#[test]
fn kafka_defaults_follow_the_node_id() {
    let c = cfg(
        anonymous(),
        &[("KAFKA_BROKERS", "b1:9092, b2:9092"), ("NODE_ID", "n7")],
    )
    .unwrap();
    assert_eq!(
        c.kafka,
        Some(KafkaSettings {
            brokers: vec!["b1:9092".into(), "b2:9092".into()],
            topics: vec!["realtime-events".into()],
            group_id: "sio-edge-n7".into(),
            client_events_topic: "client-events".into(),
            start_at_latest: true,
        })
    );
    let c = cfg(anonymous(), &[("KAFKA_BROKERS", " , ")]).unwrap();
    assert_eq!(c.kafka, None, "a list of blanks names no broker");
}

#[test]
fn kafka_settings_are_checked() {
    let brokers = ("KAFKA_BROKERS", "b1:9092");
    assert_eq!(
        refusal(anonymous(), &[brokers, ("KAFKA_START", "oldest")]),
        "invalid configuration: KAFKA_START must be latest or earliest (got \"oldest\")"
    );
    assert_eq!(
        refusal(anonymous(), &[brokers, ("KAFKA_TOPICS", ",")]),
        "invalid configuration: KAFKA_TOPICS names no topic"
    );
    let c = cfg(anonymous(), &[brokers, ("KAFKA_START", "earliest")]).unwrap();
    assert!(!c.kafka.unwrap().start_at_latest);
}

#[test]
fn switches_read_truthy_values() {
    let c = cfg(
        Flags::default(),
        &[
            ("SOCKET_IO_ALLOW_ANONYMOUS", "yes"),
            ("SOCKET_IO_DIAGNOSTICS", "0"),
            ("RUST_LOG", "debug"),
        ],
    )
    .unwrap();
    assert!(c.allow_anonymous);
    assert!(!c.diagnostics);
    assert_eq!(c.log, "debug");
    let c = cfg(
        Flags {
            bench: true,
            ..Flags::default()
        },
        &[("SOCKET_IO_ALLOW_ANONYMOUS", "0")],
    )
    .unwrap();
    assert!(c.allow_anonymous, "the bench profile stays anonymous");
}

#[test]
fn two_profiles_are_refused() {
    let both = Flags {
        conformance: true,
        bench: true,
        ..Flags::default()
    };
    assert_eq!(
        refusal(both, &[]),
        "invalid configuration: --conformance and --bench are different profiles; pick one"
    );
}

#[test]
fn session_url_is_checked_at_start() {
    let secret = ("AUTH_SECRET", "s");
    let c = cfg(
        Flags::default(),
        &[
            secret,
            ("SOCKET_IO_SESSION_URL", "http://web:3000/api/auth/session"),
        ],
    )
    .unwrap();
    let s = c.session_check.expect("configured");
    assert_eq!(s.endpoint.to_string(), "http://web:3000/api/auth/session");
    assert_eq!(s.timeout, std::time::Duration::from_secs(2));
    let c = cfg(
        Flags {
            session_url: Some("http://127.0.0.1:9/s".into()),
            session_timeout: Some(150),
            ..Flags::default()
        },
        &[],
    )
    .unwrap();
    // A session endpoint alone is a way to authenticate clients.
    assert_eq!(
        c.session_check.unwrap().timeout,
        std::time::Duration::from_millis(150)
    );
    assert!(cfg(Flags::default(), &[secret])
        .unwrap()
        .session_check
        .is_none());
    let https = refusal(
        Flags::default(),
        &[
            secret,
            (
                "SOCKET_IO_SESSION_URL",
                "https://app.example/api/auth/session",
            ),
        ],
    );
    assert!(https.contains("https is not supported"), "{https}");
    assert_eq!(
        refusal(
            Flags::default(),
            &[secret, ("SOCKET_IO_SESSION_TIMEOUT", "0")]
        ),
        "invalid configuration: SOCKET_IO_SESSION_TIMEOUT must be above 0 ms"
    );
}

/// A bcrypt hash of "secret" at cost 4 (tests only).
const ADMIN_HASH: &str = "$2b$04$zDxJbq1ktInyLKgT3IKx4eNfDhaw1qIlmMI9Lvmx0XqaDBB6BDBbq";

#[test]
fn admin_namespace_exists_only_when_configured() {
    let c = cfg(Flags::default(), &[("JWT_SECRET", "s")]).unwrap();
    assert!(c.admin.is_none());
    let c = cfg(
        Flags::default(),
        &[
            ("JWT_SECRET", "s"),
            ("SOCKET_IO_ADMIN_USERNAME", "admin"),
            ("SOCKET_IO_ADMIN_PASSWORD_HASH", ADMIN_HASH),
        ],
    )
    .unwrap();
    let admin = c.admin.unwrap();
    assert_eq!(admin.namespace, "/admin");
    assert_eq!(admin.auth.unwrap().username, "admin");
    assert!(!admin.read_only);
    let c = cfg(
        Flags {
            admin_no_auth: true,
            admin_read_only: true,
            admin_namespace: Some("/ops".into()),
            ..Flags::default()
        },
        &[("JWT_SECRET", "s")],
    )
    .unwrap();
    let admin = c.admin.unwrap();
    assert_eq!((admin.namespace.as_str(), admin.read_only), ("/ops", true));
    assert!(admin.auth.is_none());
}

#[test]
fn admin_settings_are_checked() {
    let only_user = cfg(
        Flags::default(),
        &[("JWT_SECRET", "s"), ("SOCKET_IO_ADMIN_USERNAME", "admin")],
    );
    assert!(only_user.unwrap_err().to_string().contains("go together"));
    let bad_hash = cfg(
        Flags::default(),
        &[
            ("JWT_SECRET", "s"),
            ("SOCKET_IO_ADMIN_USERNAME", "admin"),
            ("SOCKET_IO_ADMIN_PASSWORD_HASH", "plain"),
        ],
    );
    assert!(bad_hash.unwrap_err().to_string().contains("bcrypt"));
    let no_login = cfg(
        Flags {
            admin_read_only: true,
            ..Flags::default()
        },
        &[("JWT_SECRET", "s")],
    );
    assert!(no_login
        .unwrap_err()
        .to_string()
        .contains("--admin-no-auth"));
    let shadow = cfg(
        Flags {
            admin_no_auth: true,
            admin_namespace: Some("/".into()),
            ..Flags::default()
        },
        &[("JWT_SECRET", "s")],
    );
    assert!(shadow.unwrap_err().to_string().contains("already"));
}
