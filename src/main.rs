//! The `proxyredis` binary: config, build the parts, start the threads, wait for a signal.
//!
//! ```text
//! config (+ auth and TLS files; --check-config stops here) -> cache + reaper
//!        -> listeners (per loop) -> backend threads
//!        -> admin, services -> applications (per loop) -> event loops
//!        -> wait for SIGTERM/SIGINT (SIGHUP: reread the TLS files) -> drain loops
//!        -> stop backend, reaper -> exit 0
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use proxyredis::admin::Admin;
use proxyredis::apps::{self, Apps};
use proxyredis::auth::{self, Access, Principals};
use proxyredis::backend::Backend;
use proxyredis::clock::Clock;
use proxyredis::config::{self, Config};
use proxyredis::lru::Cache;
use proxyredis::net::{Bound, Limits, NetShared};
use proxyredis::reaper::Reaper;
use proxyredis::services::Services;
use proxyredis::stats::LoopStats;
use proxyredis::throttle::Throttle;
use proxyredis::tls::{self, ServerTls};
use proxyredis::{error, http, info, log, resp, warn};

/// jemalloc, with its background threads on: freed memory goes back to the OS within
/// about ten seconds of a burst (its dirty-page decay), where glibc's malloc kept the
/// high-water mark of a burst of forwarded replies for the life of the process.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Burst allowed above PROXY_RATE_LIMIT_RPS: a tenth of a second's worth, at least one.
fn burst_for(rate: u64) -> u64 {
    (rate / 10).max(1)
}

/// How long shutdown waits for backend threads after the loops have drained (at most
/// 800 ms), so the process exits within a second even while Redis hangs.
const BACKEND_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Most time a loop's own deadline for a miss comes after REDIS_TIMEOUT_MS.
const MISS_SLACK: std::time::Duration = std::time::Duration::from_millis(50);

/// Requests per second allowed on /stats and /readyz together, so pollers cannot crowd out
/// lookups (/metrics has its own budget, `http::SCRAPE_RATE`).
const ADMIN_RATE: u64 = 20;

fn main() -> ExitCode {
    let (invocation, check_only) = match config::Command::parse(std::env::args_os()) {
        Ok(config::Command::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(config::Command::HashToken(token)) => return hash_token(Some(token)),
        Ok(config::Command::Run(invocation)) => (invocation, false),
        Ok(config::Command::CheckConfig(invocation)) => (invocation, true),
        Err(e) => {
            eprintln!("proxyredis: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match invocation.config() {
        Ok(c) => c,
        Err(e) => return bad_config(invocation.log_format(), &e),
    };
    let principals = match &config.auth_file {
        None => None,
        Some(path) => match Principals::load(path) {
            Ok(p) => Some(p),
            Err(e) => {
                let e = format!("invalid PROXY_AUTH_FILE={:?}: {e}", path.display());
                return bad_config(config.log_format, &e);
            }
        },
    };
    log::init(&config.log_filter, config.log_format);
    // Certificates and keys are configuration too: one line and exit 2 when they do not load.
    let server_tls = match load_tls(&config) {
        Ok(t) => t,
        Err(e) => return bad_config(config.log_format, &e),
    };
    if check_only {
        // Everything above reads and checks; nothing is bound and Redis is not contacted.
        let client_auth = principals
            .as_ref()
            .map_or("off".to_string(), |p| format!("{}-principals", p.len()));
        println!(
            "configuration ok: {} client_auth={client_auth}",
            config.summary()
        );
        return ExitCode::SUCCESS;
    }
    info!("starting: {}", config.summary());

    let clock = Clock::real();
    let cache = Cache::for_loops(
        config.max_keys,
        config.ttl,
        clock.clone(),
        config.worker_count(),
    )
    .with_stale_window(config.stale_if_error);
    let cache = Arc::new(cache);
    let reaper = Reaper::spawn(Arc::clone(&cache));

    let mut listeners = [("", 0u16); 3];
    listeners[apps::HTTP] = (&config.host, config.port);
    listeners[apps::RESP] = (&config.host, config.resp_port);
    let admin_host = match config.admin_host.as_str() {
        "" => &config.host,
        host => host,
    };
    listeners[apps::ADMIN] = (admin_host, config.admin_port);
    let bound = match Bound::bind_each(&listeners, config.worker_count()) {
        Ok(b) => b,
        // Another process serves one of the ports (a second proxy, say): refuse to start
        // rather than share it. One line naming the port; exit 2 like a bad setting.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            error!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            error!("cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    if config.auth_file.is_none() {
        warn_if_exposed(&listeners);
    }
    let loop_stats: Vec<Arc<LoopStats>> = (0..bound.len())
        .map(|_| Arc::new(LoopStats::new(http::counters(), resp::counters())))
        .collect();
    let (backend, backend_threads) = Backend::start(&config, Arc::clone(&cache), bound.mailboxes());
    let limits = Limits {
        idle_timeout: config.idle_timeout,
        kept_idle_timeout: config.resp_idle_timeout,
        max_connections: config.max_connections,
        reserved_listener: (config.admin_port != 0).then_some(apps::ADMIN),
        request_timeout: config.request_timeout,
        // The backend answers within its timeout; the loop's own deadline comes a little
        // later, so it fires only when the backend is stuck.
        miss_timeout: config.redis_timeout + (config.redis_timeout / 10).min(MISS_SLACK),
        max_buffer_bytes: config.max_buffer_bytes,
    };
    let net = Arc::new(NetShared::new(limits, clock.clone()).with_tls(server_tls.clone()));
    let client_rps = config.client_rate_limit_rps;
    let access = Access::new(principals, client_rps, burst_for(client_rps), &clock);
    info!("{}", Access::describe(access.as_ref(), client_rps));
    let services = Arc::new(Services {
        admin: Admin::new(
            loop_stats.clone(),
            Arc::clone(&cache),
            Arc::clone(&backend),
            Arc::clone(&net),
        ),
        throttle: Throttle::new(
            config.rate_limit_rps,
            burst_for(config.rate_limit_rps),
            clock.clone(),
        ),
        access,
        admin_throttle: Throttle::new(ADMIN_RATE, ADMIN_RATE, clock.clone()),
        scrape_throttle: Throttle::new(http::SCRAPE_RATE, http::SCRAPE_RATE, clock.clone()),
        cache,
        backend,
        max_key_bytes: config.max_key_bytes,
        max_reply_bytes: config.max_reply_bytes,
        max_bulk_bytes: config.max_bulk_bytes,
        max_queued_bytes: config.max_buffer_bytes,
        forward: config.forward,
        forward_allow: config.forward_allow.clone(),
        forward_deny: config.forward_deny.clone(),
        redis_db: config.redis_db,
        cluster: !config.cluster_nodes.is_empty(),
        tracking_prefixes: config.tracking_prefixes.clone(),
        clock: clock.clone(),
        buffered: Arc::clone(&net.buffered),
    });
    let apps: Vec<Apps> = loop_stats
        .iter()
        .map(|stats| Apps::new(&services, stats, config.admin_port != 0))
        .collect();
    let admin = match config.admin_port {
        0 => String::new(),
        port => format!(", admin (/stats, /metrics) port {admin_host}:{port}"),
    };
    info!(
        "listening: http{} port {}, resp port {}{}{admin}",
        if server_tls.is_some() { "s" } else { "" },
        config.port,
        config.resp_port,
        if server_tls.is_some() { " (TLS)" } else { "" },
    );
    let running = bound.run(net, apps, loop_stats);

    wait_for_signal(server_tls.as_deref());
    info!("signal received: draining");
    running.shutdown();
    backend_threads.stop(BACKEND_STOP_GRACE);
    reaper.stop();
    info!("stopped");
    ExitCode::SUCCESS
}

/// Without PROXY_AUTH_FILE: one warning line when some of `listeners` (host, port; port 0
/// is none) are bound to an address that other machines can reach, naming them, what it
/// means and how to close them.
fn warn_if_exposed(listeners: &[(&str, u16); 3]) {
    let names = [
        (apps::HTTP, "http"),
        (apps::RESP, "resp"),
        (apps::ADMIN, "admin"),
    ];
    let exposed: Vec<(&str, String)> = names
        .iter()
        .map(|&(i, name)| (name, listeners[i]))
        .filter(|&(_, (host, port))| port != 0 && beyond_loopback(host))
        .map(
            |(name, (host, port))| match host.parse::<std::net::IpAddr>() {
                Ok(ip) => (name, std::net::SocketAddr::new(ip, port).to_string()),
                Err(_) if host.is_empty() => (name, format!("0.0.0.0:{port}")),
                Err(_) => (name, format!("{host}:{port}")),
            },
        )
        .collect();
    if exposed.is_empty() {
        return;
    }
    let list: Vec<String> = exposed.iter().map(|(n, a)| format!("{n} {a}")).collect();
    let (what, key) = if exposed.iter().all(|&(name, _)| name == "admin") {
        ("reads /stats and /metrics", "PROXY_ADMIN_HOST")
    } else {
        (
            "reads every key (and sends what PROXY_FORWARD lets through)",
            "PROXY_HOST",
        )
    };
    warn!(
        "listening beyond loopback without PROXY_AUTH_FILE ({}): anyone who can reach these \
         ports {what} with no credentials; set PROXY_AUTH_FILE to require tokens, or \
         {key}=127.0.0.1 to serve this machine only",
        list.join(", ")
    );
}

/// Whether `host` (empty: every interface; an address; a name, resolved as the listeners
/// resolve it) reaches beyond loopback. A name that does not resolve counts as beyond: the
/// warning is the safe side.
fn beyond_loopback(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    if host.is_empty() {
        return true;
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return !ip.to_canonical().is_loopback();
    }
    (host, 0).to_socket_addrs().map_or(true, |mut addrs| {
        addrs.any(|a| !a.ip().to_canonical().is_loopback())
    })
}

/// A configuration that cannot run: one line on stderr (`proxyredis: ...`, or a JSON log
/// line at error level when PROXY_LOG_FORMAT=json, so log shippers index it too), exit 2.
fn bad_config(format: log::Format, error: &dyn std::fmt::Display) -> ExitCode {
    match format {
        log::Format::Text => eprintln!("proxyredis: {error}"),
        log::Format::Json => log::json_error(&error.to_string()),
    }
    ExitCode::from(2)
}

/// `--hash-token TOKEN` (or `-`: the first line of stdin, keeping the token out of the
/// process list and shell history): prints the SHA-256 hex that the auth file holds.
fn hash_token(arg: Option<String>) -> ExitCode {
    let token = match arg.as_deref() {
        Some("-") => {
            let mut line = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut line) {
                eprintln!("proxyredis: cannot read the token from stdin: {e}");
                return ExitCode::from(2);
            }
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        Some(token) => token.to_string(),
        None => {
            eprintln!("proxyredis: --hash-token needs a token (or - to read it from stdin)");
            return ExitCode::from(2);
        }
    };
    println!("{}", auth::digest_hex(token.as_bytes()));
    ExitCode::SUCCESS
}

/// Reads and checks the TLS files of both sides: the proxy's certificate (returned, for
/// the listeners and SIGHUP) and Redis's CA and client certificate (read again by the
/// backend when it connects). Installs the process's crypto first.
fn load_tls(config: &Config) -> Result<Option<Arc<ServerTls>>, config::ConfigError> {
    tls::install_crypto();
    if let Some(redis) = &config.redis_tls {
        tls::check_redis(redis)?;
        if redis.insecure_skip_verify {
            warn!(
                "REDIS_TLS_INSECURE_SKIP_VERIFY=yes: the certificate of Redis is NOT checked; \
                 anyone between the proxy and Redis can read and change every value and \
                 credential. Use REDIS_TLS_CA_FILE instead outside tests"
            );
        }
    }
    config
        .tls
        .as_ref()
        .map(|files| ServerTls::load(files).map(Arc::new))
        .transpose()
}

/// Blocks until SIGTERM or SIGINT; a second signal afterwards exits at once. SIGHUP
/// rereads the TLS files (connections already open keep their session) and is otherwise
/// only logged: it no longer ends the process.
fn wait_for_signal(server_tls: Option<&ServerTls>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install signal handlers: {e}");
            std::process::exit(1);
        }
    };
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        match server_tls {
            None => info!("SIGHUP: no TLS certificate configured, nothing to reload"),
            Some(tls) => match tls.reload() {
                Ok(()) => info!(
                    "SIGHUP: TLS certificate reloaded from {}; new connections use it",
                    tls.files().cert.display()
                ),
                Err(e) => error!("SIGHUP: TLS certificate not reloaded, the old one stays: {e}"),
            },
        }
    }
    std::thread::spawn(move || {
        if signals.forever().any(|s| s != SIGHUP) {
            std::process::exit(130);
        }
    });
}
