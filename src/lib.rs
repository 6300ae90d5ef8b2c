//! ProxyRedis: a caching proxy in front of Redis (HTTP and RESP front ends, an in-process
//! LRU cache with a global expiry, and pipelined fetches of misses from Redis).
//!
//! Layers, top to bottom; a module imports only modules below it:
//!
//! ```text
//!   main.rs (binary)   config, build the parts, start the threads, wait for a signal
//!   apps               the switch the event loops run: HTTP on listener 0, RESP on 1
//!   http, resp         the protocol applications: parse, answer from the cache or ask
//!                      the backend, render
//!   services           what the applications share (cache, backend, limits, admin)
//!   admin              reads every counter, renders /stats, /metrics, INFO
//!   net                the transport: event loops, connections, buffers, idle timers
//!   backend            Redis: single flight, upstream, connections, typed errors
//!   lru, reaper        the cache and its expiry thread
//!   stats, clock, config, log, throttle, auth, tls, guard   leaves (auth: principals,
//!                      per-client limits; tls: certificates and keys read into rustls
//!                      configurations; guard: long-lived threads that end the process
//!                      when they panic)
//! ```
//!
//! Data flows: loop -> application -> cache; on a miss application -> backend -> Redis,
//! and back to the loop through its mailbox channel.
#![forbid(unsafe_code)]

pub mod log;

pub mod admin;
pub mod apps;
pub mod auth;
pub mod backend;
pub mod clock;
pub mod config;
pub mod guard;
pub mod http;
pub mod lru;
pub mod net;
pub mod reaper;
pub mod resp;
pub mod services;
pub mod stats;
pub mod throttle;
pub mod tls;
