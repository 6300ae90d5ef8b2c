//! ProxyRedis: a caching proxy in front of Redis (HTTP and RESP front ends, an in-process
//! LRU cache with a global expiry, and pipelined fetches of misses from Redis).
//!
//! Data flows one way: `net` (event loops, protocols) -> `lru` (cache) -> `backend`
//! (Redis) -> back to the loop through a channel. `reaper` expires entries in the
//! background; `stats` and `throttle` are shared by the loops.
#![forbid(unsafe_code)]

pub mod log;

pub mod backend;
pub mod clock;
pub mod config;
pub mod lru;
pub mod net;
pub mod reaper;
pub mod stats;
pub mod throttle;
