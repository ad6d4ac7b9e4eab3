//! Evaluation of compiled expressions.
//!
//! Consumes: lowered expressions ([`crate::ir`]) and an object's attribute values. Produces:
//! [`Value`]s or located runtime errors. [`Ctx`] carries what one evaluation may use: the
//! resource [`Limits`], the run's single `now`, a deterministic random source and the
//! parameters. `interp` is the reference interpreter.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod adhoc;
pub mod interp;
pub mod json;

use crate::builtins::Fault;
use crate::value::{DateTime, Value};

/// Resource limits per expression evaluation. Hitting one is a coded runtime error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string or binary a function may produce, in bytes (E0510).
    pub max_bytes: usize,
    /// Most values a multi-valued result may hold (E0511).
    pub max_values: usize,
    /// Most expression nodes one evaluation may visit (E0512).
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_values: 1_000_000,
            max_steps: 1_000_000,
        }
    }
}

/// The evaluation context of one run.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub limits: Limits,
    /// The run's single notion of "now" (`Now()`), injected so runs are reproducible.
    pub now: DateTime,
    /// Parameter values (`%Domain.FQDN%`), by name.
    pub params: Vec<(String, Value)>,
    rng: u64,
    steps: u64,
}

impl Ctx {
    pub fn new(now: DateTime, seed: u64) -> Ctx {
        Ctx {
            limits: Limits::default(),
            now,
            params: Vec::new(),
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            steps: 0,
        }
    }

    /// A context for tests and tools: the Unix epoch as `now`, a fixed seed.
    pub fn fixed() -> Ctx {
        Ctx::new(DateTime::UNIX_EPOCH, 1)
    }

    pub fn with_limits(mut self, limits: Limits) -> Ctx {
        self.limits = limits;
        self
    }

    /// Starts a new evaluation (resets the step counter).
    pub fn begin(&mut self) {
        self.steps = 0;
    }

    /// Counts one evaluation step.
    pub fn step(&mut self) -> Result<(), Fault> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(Fault::new(
                "E0512",
                format!("evaluation exceeded {} steps", self.limits.max_steps),
            ));
        }
        Ok(())
    }

    /// Fails with E0510 when a result of `bytes` bytes would exceed the limit. Call it before
    /// allocating (PadLeft with a huge length must not allocate).
    pub fn check_bytes(&self, bytes: usize) -> Result<(), Fault> {
        if bytes > self.limits.max_bytes {
            return Err(Fault::new(
                "E0510",
                format!(
                    "result of {bytes} bytes exceeds the limit of {} bytes",
                    self.limits.max_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Fails with E0511 when a collection of `n` values would exceed the limit.
    pub fn check_values(&self, n: usize) -> Result<(), Fault> {
        if n > self.limits.max_values {
            return Err(Fault::new(
                "E0511",
                format!(
                    "result of {n} values exceeds the limit of {}",
                    self.limits.max_values
                ),
            ));
        }
        Ok(())
    }

    /// A string result, checked against the size limit.
    pub fn string(&self, s: String) -> Result<Value, Fault> {
        self.check_bytes(s.len())?;
        Ok(Value::Str(s.into()))
    }

    /// The next number of the run's deterministic random sequence (xorshift64*).
    pub fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The value of a parameter.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}
