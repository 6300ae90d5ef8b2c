//! The table of configuration keys: name, default and help, the one source of the flags,
//! of `--help` and of every default.

/// One configuration key: name, default, and help text.
pub struct Key {
    /// The variable's name.
    pub name: &'static str,
    /// Its default, as it would be written in the env file.
    pub default: &'static str,
    /// What it means and what is allowed.
    pub help: &'static str,
}

/// Every configuration key, in the order `--help` lists them.
pub const KEYS: &[Key] = &[
    Key {
        name: "PROXY_HOST",
        default: "127.0.0.1",
        help: "address the HTTP and RESP ports bind (the admin port too, unless \
               PROXY_ADMIN_HOST); empty or 0.0.0.0: all interfaces. Not set: 127.0.0.1, this \
               machine only, unless PROXY_AUTH_FILE is set (then all interfaces), as Redis's \
               protected mode. Beyond loopback without PROXY_AUTH_FILE, a warning is logged",
    },
    Key {
        name: "PROXY_PORT",
        default: "8000",
        help: "HTTP port (1-65535)",
    },
    Key {
        name: "PROXY_RESP_PORT",
        default: "6380",
        help: "Redis-protocol port; 0 disables it",
    },
    Key {
        name: "PROXY_ADMIN_PORT",
        default: "0",
        help: "port for /stats and /metrics (and /healthz, /readyz), which then leave the \
               HTTP port (404 there); 0 keeps them on the HTTP port",
    },
    Key {
        name: "PROXY_ADMIN_HOST",
        default: "",
        help: "address the admin port binds (127.0.0.1 keeps it local); empty means \
               PROXY_HOST's (its default included)",
    },
    Key {
        name: "PROXY_MAX_KEYS",
        default: "1000",
        help: "cache capacity in keys (>= 1)",
    },
    Key {
        name: "PROXY_TTL_MS",
        default: "10000",
        help: "expiry of an entry in ms, counted from when it was cached (>= 1)",
    },
    Key {
        name: "PROXY_WORKERS",
        default: "0",
        help: "event loops; 0 means one per core",
    },
    Key {
        name: "PROXY_MAX_CONNECTIONS",
        default: "10000",
        help: "client connections held at once, all ports together (>= 1)",
    },
    Key {
        name: "PROXY_RATE_LIMIT_RPS",
        default: "0",
        help: "lookups per second over the whole process; 0 means unlimited",
    },
    Key {
        name: "PROXY_CLIENT_RATE_LIMIT_RPS",
        default: "0",
        help: "lookups per second per principal (per client address when anonymous), so one \
               client cannot take the whole PROXY_RATE_LIMIT_RPS; 0 means off",
    },
    Key {
        name: "PROXY_IDLE_TIMEOUT_MS",
        default: "60000",
        help: "an idle or half-sent connection is closed after this many ms (>= 1); a RESP \
               connection only while it has not authenticated (PROXY_AUTH_FILE), unless \
               PROXY_RESP_IDLE_TIMEOUT_MS is set",
    },
    Key {
        name: "PROXY_RESP_IDLE_TIMEOUT_MS",
        default: "0",
        help: "an idle RESP connection is closed after this many ms, authenticated or not; 0 \
               keeps it open as Redis's `timeout 0` does (a half-sent command is closed \
               either way)",
    },
    Key {
        name: "PROXY_REQUEST_TIMEOUT_MS",
        default: "5000",
        help: "a request (HTTP head and body, one RESP command) must be complete this long after its first byte; then 408 / -ERR request timeout and a close",
    },
    Key {
        name: "PROXY_MAX_BUFFER_BYTES",
        default: "0",
        help: "reply bytes buffered over all connections; past it, connections holding unsent replies are not read until they drain (transactions being queued have a budget of this size of their own); 0 means 1/16 of RAM (64 MiB to 4 GiB)",
    },
    Key {
        name: "PROXY_MAX_BULK_BYTES",
        default: "536870912",
        help: "largest argument of a RESP command (a value to SET), as Redis's proto-max-bulk-len (1024 to 4294967296); a request being received counts in PROXY_MAX_BUFFER_BYTES past its first 64 KiB",
    },
    Key {
        name: "PROXY_MAX_REPLY_BYTES",
        default: "67108864",
        help: "largest single reply; a bigger one (an MGET of huge values) is answered with an error, never built",
    },
    Key {
        name: "PROXY_MAX_KEY_BYTES",
        default: "1024",
        help: "longest key accepted, in bytes (1-65535); longer gets 400",
    },
    Key {
        name: "PROXY_FORWARD",
        default: "reads",
        help: "RESP commands the proxy does not answer itself: none (unknown command), reads (read-only commands forwarded to Redis, others refused), all (writes too; a write removes its keys from the cache before its reply)",
    },
    Key {
        name: "PROXY_FORWARD_ALLOW",
        default: "",
        help: "comma-separated commands (`keys`, `eval_ro`, `script|kill`) forwarded although Redis files them under @dangerous or @scripting, or with a negative count (srandmember, hrandfield, zrandmember); @admin commands still need an admin principal",
    },
    Key {
        name: "PROXY_FORWARD_DENY",
        default: "",
        help: "comma-separated commands (`name` or `container|sub`) never forwarded, whatever PROXY_FORWARD and the principal",
    },
    Key {
        name: "PROXY_INVALIDATION",
        default: "tracking",
        help: "tracking: Redis announces writes (CLIENT TRACKING BCAST) and they drop cached keys at once; off: cached values live PROXY_TTL_MS",
    },
    Key {
        name: "PROXY_TRACKING_PREFIXES",
        default: "",
        help: "comma-separated key prefixes to be told about (empty: every key)",
    },
    Key {
        name: "PROXY_TRACKING_TABLE_MAX_KEYS",
        default: "1000000",
        help: "most keys remembered for the proxy's own clients' CLIENT TRACKING (as Redis's tracking-table-max-keys); past it, keys are let go with an invalidation to their readers",
    },
    Key {
        name: "PROXY_STALE_IF_ERROR_MS",
        default: "0",
        help: "how long past its TTL an entry may be answered (X-Cache: STALE) while Redis is unreachable or a fetch fails or times out; 0 means never",
    },
    Key {
        name: "PROXY_AUTH_FILE",
        default: "",
        help: "file of principals, one per line: name role(read|admin) sha256-hex-of-token \
               [prefix,prefix...]; empty: authentication off, every client may read every key",
    },
    Key {
        name: "PROXY_TLS_CERT_FILE",
        default: "",
        help: "PEM certificate chain of the proxy (its own certificate first); set with PROXY_TLS_KEY_FILE, both the HTTP and the RESP port speak TLS 1.2/1.3 only; reread on SIGHUP",
    },
    Key {
        name: "PROXY_TLS_KEY_FILE",
        default: "",
        help: "PEM private key of PROXY_TLS_CERT_FILE (PKCS#8, PKCS#1 or SEC1); reread on SIGHUP",
    },
    Key {
        name: "PROXY_TLS_CLIENT_CA_FILE",
        default: "",
        help: "PEM CA certificates; when set, every client must present a certificate issued by one of them (mutual TLS); reread on SIGHUP",
    },
    Key {
        name: "REDIS_HOST",
        default: "redis",
        help: "host name or address of the backing Redis",
    },
    Key {
        name: "REDIS_PORT",
        default: "6379",
        help: "port of the backing Redis (1-65535)",
    },
    Key {
        name: "REDIS_CONNECTIONS",
        default: "4",
        help: "pooled connections to Redis (1-256)",
    },
    Key {
        name: "REDIS_TIMEOUT_MS",
        default: "1000",
        help: "connect and read timeout towards Redis in ms (>= 1)",
    },
    Key {
        name: "REDIS_USERNAME",
        default: "",
        help: "Redis ACL user name; unset means none",
    },
    Key {
        name: "REDIS_PASSWORD",
        default: "",
        help: "Redis password; unset means no AUTH",
    },
    Key {
        name: "REDIS_DB",
        default: "0",
        help: "Redis database number to SELECT (>= 0)",
    },
    Key {
        name: "REDIS_CLUSTER_NODES",
        default: "",
        help: "seeds of a Redis Cluster, host:port,host:port,...; empty means the standalone \
               Redis at REDIS_HOST:REDIS_PORT",
    },
    Key {
        name: "REDIS_READ_FROM",
        default: "master",
        help: "cluster only: where misses and forwarded reads go: master, replica or nearest",
    },
    Key {
        name: "REDIS_TLS",
        default: "no",
        help: "yes: connect to Redis over TLS, its certificate checked against REDIS_HOST (a DNS name or an IP address in the certificate)",
    },
    Key {
        name: "REDIS_TLS_CA_FILE",
        default: "",
        help: "PEM CA certificates Redis's certificate must come from; unset means the system's trusted roots",
    },
    Key {
        name: "REDIS_TLS_CERT_FILE",
        default: "",
        help: "PEM client certificate chain shown to Redis (with REDIS_TLS_KEY_FILE), for tls-auth-clients",
    },
    Key {
        name: "REDIS_TLS_KEY_FILE",
        default: "",
        help: "PEM private key of REDIS_TLS_CERT_FILE",
    },
    Key {
        name: "REDIS_TLS_INSECURE_SKIP_VERIFY",
        default: "no",
        help: "yes: do NOT check Redis's certificate at all (anyone on the path can read and change the traffic); for tests only",
    },
    Key {
        name: "PROXY_LOG",
        default: "info",
        help: "log filter: a level (off, error, warn, info, debug, trace), or comma-separated \
               directives target=level, per module: warn,proxyredis::backend=debug",
    },
    Key {
        name: "PROXY_LOG_FORMAT",
        default: "text",
        help: "log lines on stderr: text (RFC 3339 UTC timestamp, level, module, message) or \
               json (one object per line: timestamp, level, target, message)",
    },
];
