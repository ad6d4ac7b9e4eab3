//! The evaluation context: what every builtin and both evaluators are given for one run.
//!
//! Consumes: the run's injected `now`, a random seed, parameter values and [`Limits`].
//! Produces: a [`Ctx`] that builds checked string and binary results, counts steps, charges
//! the per-evaluation byte budget and draws the run's deterministic random numbers. It lives
//! with the builtins (which take it) so that `builtins` does not depend on `eval`; `eval`
//! re-exports it.

use super::Fault;
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
    /// Most bytes one evaluation may build in total (E0513): the bytes of every string and
    /// binary a function or operator makes, plus [`VALUE_BYTES`] per value of every collection
    /// it makes. Values passed through unchanged (an attribute, a variable, a string a
    /// function returns whole) cost nothing.
    pub max_total_bytes: usize,
}

/// What one value of a collection costs against [`Limits::max_total_bytes`].
pub const VALUE_BYTES: usize = std::mem::size_of::<Value>();

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_values: 1_000_000,
            max_steps: 1_000_000,
            max_total_bytes: 64 << 20,
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
    /// The seed given at creation: [`Ctx::seed_for`] derives per-object sequences from it.
    seed: u64,
    steps: u64,
    /// Bytes built so far by this evaluation (see [`Limits::max_total_bytes`]).
    spent: usize,
}

impl Ctx {
    pub fn new(now: DateTime, seed: u64) -> Ctx {
        Ctx {
            limits: Limits::default(),
            now,
            params: Vec::new(),
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            seed,
            steps: 0,
            spent: 0,
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

    /// Starts a new evaluation (resets the step counter and the byte budget).
    pub fn begin(&mut self) {
        self.steps = 0;
        self.spent = 0;
    }

    /// Charges `bytes` built by the evaluation against its budget; fails with E0513 once the
    /// evaluation has built more than [`Limits::max_total_bytes`] in total.
    pub fn charge(&mut self, bytes: usize) -> Result<(), Box<Fault>> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.limits.max_total_bytes {
            return Err(Fault::new(
                "E0513",
                format!(
                    "evaluation built more than its budget of {} bytes",
                    self.limits.max_total_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Whether `bytes` more can be charged without exceeding the budget.
    pub fn can_charge(&self, bytes: usize) -> bool {
        self.spent.saturating_add(bytes) <= self.limits.max_total_bytes
    }

    /// Charges a collection of `n` new values (see [`VALUE_BYTES`]).
    pub fn charge_values(&mut self, n: usize) -> Result<(), Box<Fault>> {
        self.charge(n.saturating_mul(VALUE_BYTES))
    }

    /// Counts one evaluation step.
    pub fn step(&mut self) -> Result<(), Box<Fault>> {
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
    pub fn check_bytes(&self, bytes: usize) -> Result<(), Box<Fault>> {
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
    pub fn check_values(&self, n: usize) -> Result<(), Box<Fault>> {
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

    /// A new string result, checked against the size limit and charged to the budget.
    pub fn string(&mut self, s: String) -> Result<Value, Box<Fault>> {
        self.check_bytes(s.len())?;
        self.charge(s.len())?;
        Ok(Value::Str(s.into()))
    }

    /// A string result copied from a slice (one allocation), checked against the size limit
    /// and charged to the budget.
    pub fn str_slice(&mut self, s: &str) -> Result<Value, Box<Fault>> {
        self.check_bytes(s.len())?;
        self.charge(s.len())?;
        Ok(Value::Str(s.into()))
    }

    /// A new binary result, checked against the size limit and charged to the budget.
    pub fn binary(&mut self, b: Vec<u8>) -> Result<Value, Box<Fault>> {
        self.check_bytes(b.len())?;
        self.charge(b.len())?;
        Ok(Value::Bin(b.into()))
    }

    /// Starts the random sequence of one object (`key` names it, e.g. its kind and id), so
    /// what `Guid()` and `RandomNum()` give an object depends on the seed and the object alone,
    /// never on which objects were evaluated before it (a delta sync, a parallel sync and a
    /// full sync agree).
    pub fn seed_for(&mut self, key: u64) {
        // SplitMix64 of the seed and the key: distinct keys give unrelated, nonzero states.
        let mut z = self
            .seed
            .wrapping_add(key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        self.rng = if z == 0 { 0x9E37_79B9_7F4A_7C15 } else { z };
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
