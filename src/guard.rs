//! Long-lived threads under a guard: the backend's workers, the forwarding lane, the
//! tracking listeners, the reaper, a cluster's control thread and the catalog loader.
//!
//! The rule: a panic in one of them is a bug that leaves the state it owns unknown (a
//! tracking thread that dies leaves fills going on with no invalidation; a dead worker
//! leaves its queue unanswered). Rather than serve on with a part silently gone, the guard
//! logs one error line naming the thread and what it said, and ends the process with exit
//! code [`EXIT_PANICKED`], so that its supervisor (systemd, Kubernetes, Docker) starts a
//! fresh one; the cache is lost, Redis is untouched. Event loops keep their own rule: a
//! panic while serving one connection closes that connection only.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

/// Exit code after a guarded thread panicked (`EX_SOFTWARE`: an internal software error).
pub const EXIT_PANICKED: i32 = 70;

/// Starts `body` on a thread named `name`, under the guard (see the module doc).
pub fn spawn<F>(name: String, body: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(body)) {
                exit_after(&format!("thread '{name}'"), panic.as_ref());
            }
        })
}

/// Runs `body`, part of thread `name`'s work that owns state no other part can recover (an
/// event loop's own connections to Redis): a panic there ends the process as a guarded
/// thread's would (see the module doc).
#[inline]
pub fn or_exit<R>(name: &str, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(panic) => exit_after(name, panic.as_ref()),
    }
}

/// Logs that `who` panicked (with what it said) and ends the process (see the module doc).
fn exit_after(who: &str, panic: &(dyn std::any::Any + Send)) -> ! {
    let said = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    crate::error!(
        "{who} panicked ({said}); exiting with code {EXIT_PANICKED} so that the proxy is \
         restarted whole"
    );
    std::process::exit(EXIT_PANICKED);
}

/// Test-only: panics when PROXY_TEST_PANIC_IN names `point` (`tracking`, `worker`,
/// `lane`, `reaper`), so a system test can see the guard act. Only in debug builds (what
/// `cargo test` runs) and with the `test-hooks` feature; never in a release build.
#[cfg(any(feature = "test-hooks", debug_assertions))]
pub fn test_panic(point: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let wanted = POINT.get_or_init(|| std::env::var("PROXY_TEST_PANIC_IN").ok());
    if wanted.as_deref() == Some(point) {
        panic!("PROXY_TEST_PANIC_IN={point}");
    }
}
