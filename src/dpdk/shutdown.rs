//! Clean shutdown: one process-wide stop flag, set by SIGINT or SIGTERM (or by the program),
//! that workers poll between bursts. A second signal exits at once.

use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::low_level;

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Makes SIGINT and SIGTERM set the stop flag; once it is set, another signal ends the process
/// with status 128 + signal. Idempotent.
pub fn install() -> io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| {
        for sig in [SIGINT, SIGTERM] {
            // SAFETY: the action is async-signal-safe: an atomic swap and `_exit`.
            let r = unsafe {
                low_level::register(sig, move || {
                    if STOP.swap(true, Ordering::SeqCst) {
                        low_level::exit(128 + sig);
                    }
                })
            };
            if let Err(e) = r {
                result = Err(e);
                return;
            }
        }
    });
    result
}

/// Returns true once a stop was requested: workers finish their burst and return.
#[inline]
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Requests a stop, as a signal would (a run that ends after a set time, a test).
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Clears the flag, so that a later run in the same process polls again (tests).
pub fn clear() {
    STOP.store(false, Ordering::SeqCst);
}
