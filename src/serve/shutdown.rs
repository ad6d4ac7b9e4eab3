//! Shutdown on SIGTERM and SIGINT.
//!
//! Consumes: the process's termination signals. Produces: a [`Stop`] flag that the scheduler
//! asks between the steps of a cycle and between cycles, and the HTTP listener between
//! requests: the step in progress finishes (and is saved) before the service exits. A second
//! signal, once the flag is set, ends the process at once (exit code 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the service is asked to stop.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// A flag no signal sets (for embedding and tests).
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A flag set by SIGTERM and SIGINT; a second signal exits the process at once.
    pub fn on_signals() -> std::io::Result<Stop> {
        let stop = Stop::new();
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            // Registered first, so it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop.0))?;
            signal_hook::flag::register(sig, Arc::clone(&stop.0))?;
        }
        Ok(stop)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
