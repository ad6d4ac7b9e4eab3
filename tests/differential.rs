//! Differential testing of the JIT against the reference interpreter.
//!
//! A seeded generator builds random well-typed expressions over random attribute values (absent,
//! single and multi-valued, at the edges of the number range) and both engines must return the
//! same value, or the same error code, message and location. Guard tests prove the comparison
//! catches a real difference. `DIFF_CASES` sets the number of generated cases (default 2000),
//! `DIFF_SEED` the seed; a failure prints the seed, the expression and the inputs.
//!
//! The conformance suite (`tests/conformance.rs`) runs every case on both engines too.

use idflow::eval::interp::{EvalError, Object};
use idflow::eval::{Ctx, EngineKind, Limits, Program, adhoc, jit_available};
use idflow::value::Value;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The generator of typed expression text.
struct Gen<'r> {
    rng: &'r mut Rng,
    /// Names of the `$variables` in scope, with their type (`s` or `n`).
    vars: Vec<(String, char)>,
}

const NUM_LITS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "7",
    "512",
    "514",
    "9223372036854775807",
    "-9223372036854775807",
    "&H10",
];
const STR_LITS: &[&str] = &[
    "\"\"",
    "\"a\"",
    "\" x \"",
    "\"Hello\"",
    "\"SMTP:\"",
    "\",\"",
    "\"10\"",
];

impl Gen<'_> {
    /// A literal, one of two attributes, or a `$variable` of type `ty` in scope (`fallback`
    /// when there is none).
    fn leaf(&mut self, lits: &[&str], attrs: [&str; 2], ty: char, fallback: &str) -> String {
        match self.rng.below(5) {
            0 | 1 => self.rng.pick(lits).to_string(),
            2 => attrs[0].into(),
            3 => attrs[1].into(),
            _ => self.var(ty).unwrap_or_else(|| fallback.into()),
        }
    }

    fn num(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.rng.chance(30);
        if leaf {
            return self.leaf(NUM_LITS, ["[n1]", "[n2]"], 'n', "[n1]");
        }
        let d = d - 1;
        match self.rng.below(14) {
            0 => format!("BitAnd({}, {})", self.num(d), self.num(d)),
            1 => format!("BitOr({}, {})", self.num(d), self.num(d)),
            2 => format!("({} + {})", self.num(d), self.num(d)),
            3 => format!("({} - {})", self.num(d), self.num(d)),
            4 => format!("({} * {})", self.num(d), self.num(d)),
            5 => format!("({} / {})", self.num(d), self.num(d)),
            6 => format!("-{}", self.num(d)),
            7 => format!("IIF({}, {}, {})", self.bool(d), self.num(d), self.num(d)),
            8 => format!("Len({})", self.str(d)),
            9 => "Count([mn])".into(),
            10 => "ValueCount(\"ms\")".into(),
            11 => format!("InStr({}, {})", self.str(d), self.str(d)),
            12 => format!("CNum({})", self.str(d)),
            _ => format!("[mn] + {}", self.num(d)),
        }
    }

    fn str(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.rng.chance(30);
        if leaf {
            return self.leaf(STR_LITS, ["[s1]", "[s2]"], 's', "[s2]");
        }
        let d = d - 1;
        match self.rng.below(16) {
            0 => format!("Left({}, {})", self.str(d), self.num(d)),
            1 => format!("Right({}, {})", self.str(d), self.num(d)),
            2 => format!("Trim({})", self.str(d)),
            3 => format!("UCase({})", self.str(d)),
            4 => format!("LCase({})", self.str(d)),
            5 => format!("{} & {}", self.str(d), self.str(d)),
            6 => format!("{} & {} & {}", self.str(d), self.str(d), self.str(d)),
            7 => format!("[s1] & \" \" & [s2] & {}", self.num(d)),
            8 => format!("IIF({}, {}, {})", self.bool(d), self.str(d), self.str(d)),
            9 => format!(
                "Switch({}, {}, {}, {})",
                self.bool(d),
                self.str(d),
                self.bool(d),
                self.str(d)
            ),
            10 => "Join([ms])".into(),
            11 => format!("CStr({})", self.num(d)),
            12 => self.with('s', d),
            13 => format!("Left([ms], {})", self.num(d)),
            14 => format!("Error({})", self.str(d)),
            _ => format!("Mid({}, {}, {})", self.str(d), self.num(d), self.num(d)),
        }
    }

    fn bool(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.rng.chance(25);
        if leaf {
            return self.rng.pick(&["True", "False", "[b1]"]).to_string();
        }
        let d = d - 1;
        let cmp = ["=", "<>", "<", "<=", ">", ">="];
        match self.rng.below(13) {
            0 => format!("IsPresent({})", self.any(d)),
            1 => format!("IsNull({})", self.any(d)),
            2 => format!("IsNullOrEmpty({})", self.any(d)),
            3 | 4 => {
                let op = cmp[self.rng.below(cmp.len())];
                format!("{} {op} {}", self.num(d), self.num(d))
            }
            5 => format!("{} = {}", self.str(d), self.str(d)),
            6 => format!("{} <> {}", self.str(d), self.str(d)),
            7 => format!("({} && {})", self.bool(d), self.bool(d)),
            8 => format!("({} || {})", self.bool(d), self.bool(d)),
            9 => format!("IsBitSet({}, {})", self.num(d), self.num(d)),
            10 => format!("IIF({}, {}, {})", self.bool(d), self.bool(d), self.bool(d)),
            11 => format!("[mn] > {}", self.num(d)),
            _ => format!("[b1] = {}", self.bool(d)),
        }
    }

    fn any(&mut self, d: u32) -> String {
        match self.rng.below(5) {
            0 => self.num(d),
            1 => self.str(d),
            2 => self.bool(d),
            _ => self.multi(d),
        }
    }

    fn multi(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.rng.chance(30);
        if leaf {
            return self.rng.pick(&["[ms]", "[mn]"]).to_string();
        }
        let d = d - 1;
        match self.rng.below(7) {
            0 => format!("Split({}, \",\")", self.str(d)),
            1 => {
                let v = self.fresh('s');
                let body = self.str(d);
                self.vars.pop();
                format!("Select({v}, [ms], {body})")
            }
            2 => {
                let v = self.fresh('n');
                let body = self.bool(d);
                self.vars.pop();
                format!("Where({v}, [mn], {body})")
            }
            3 => "RemoveDuplicates([ms])".into(),
            4 => format!("IIF([mn] > {}, [mn], {})", self.num(d), self.num(d)),
            5 => format!("[mn] * {}", self.num(d)),
            _ => "UCase([ms])".to_string(),
        }
    }

    fn with(&mut self, ty: char, d: u32) -> String {
        let value = if ty == 's' { self.str(d) } else { self.num(d) };
        let v = self.fresh(ty);
        let body = if ty == 's' { self.str(d) } else { self.num(d) };
        self.vars.pop();
        format!("With({v}, {value}, {body})")
    }

    fn fresh(&mut self, ty: char) -> String {
        let v = format!("$v{}", self.vars.len());
        self.vars.push((v.clone(), ty));
        v
    }

    fn var(&mut self, ty: char) -> Option<String> {
        let of: Vec<&String> = self
            .vars
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n)
            .collect();
        if of.is_empty() {
            None
        } else {
            Some(of[self.rng.below(of.len())].clone())
        }
    }
}

/// Random attribute values: each attribute absent, a typical value, or an edge value.
fn inputs(rng: &mut Rng) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let strs = [
        "",
        "a",
        " padded ",
        "Hello World",
        "10",
        "x,y,,z",
        "SMTP:a@b",
    ];
    let nums = [0, 1, -1, 2, 514, 66048, i64::MAX, i64::MIN, 7];
    let s = |rng: &mut Rng| Value::from(strs[rng.below(strs.len())]);
    let n = |rng: &mut Rng| Value::Num(nums[rng.below(nums.len())]);
    for name in ["s1", "s2"] {
        if !rng.chance(20) {
            out.push((name.to_string(), s(rng)));
        }
    }
    for name in ["n1", "n2"] {
        if !rng.chance(20) {
            out.push((name.to_string(), n(rng)));
        }
    }
    if !rng.chance(20) {
        out.push(("b1".into(), Value::Bool(rng.chance(50))));
    }
    if !rng.chance(20) {
        let k = 1 + rng.below(4);
        out.push(("ms".into(), Value::many((0..k).map(|_| s(rng)).collect())));
    } else {
        // Absent, but typed through a one-valued collection elsewhere: keep it absent.
    }
    if !rng.chance(20) {
        let k = 1 + rng.below(4);
        out.push(("mn".into(), Value::many((0..k).map(|_| n(rng)).collect())));
    }
    out
}

/// One engine's outcome, as compared: the value or the error's code, message and location.
type Outcome = Result<Value, Box<EvalError>>;

/// The difference between two outcomes, if any.
fn differ(reference: &Outcome, other: &Outcome) -> Option<String> {
    match (reference, other) {
        (Ok(a), Ok(b)) if a == b => None,
        (Err(a), Err(b)) if a == b => None,
        (a, b) => Some(format!("interp: {a:?}\n  jit:    {b:?}")),
    }
}

/// A generated case, ready to run: the expression text and its inputs.
struct Case {
    text: String,
    attrs: Vec<(String, Value)>,
}

fn generate(rng: &mut Rng) -> Case {
    let mut g = Gen {
        rng,
        vars: Vec::new(),
    };
    let depth = 1 + g.rng.below(5) as u32;
    let text = match g.rng.below(4) {
        0 => g.num(depth),
        1 => g.str(depth),
        2 => g.bool(depth),
        _ => g.multi(depth),
    };
    Case {
        text,
        attrs: inputs(rng),
    }
}

fn ctx() -> Ctx {
    Ctx::fixed().with_limits(Limits {
        max_bytes: 4096,
        max_values: 64,
        max_steps: 10_000,
        max_total_bytes: 1 << 20,
    })
}

/// Statistics that keep the property test honest: it must exercise values and errors.
#[derive(Default, Debug)]
struct Stats {
    checked: usize,
    rejected: usize,
    values: usize,
    errors: usize,
    multi: usize,
    /// Errors for exceeding the evaluation's byte budget (E0513).
    budget: usize,
}

/// Runs `n` generated cases from `seed` on both engines; returns the mismatches.
fn run_generated(
    seed: u64,
    n: usize,
    interp_ctx: fn(usize) -> Ctx,
    jit_ctx: fn(usize) -> Ctx,
) -> (Vec<String>, Stats) {
    let mut rng = Rng(seed | 1);
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    // Compile in batches: one JIT module holds many expressions, as for a bundle.
    let mut batch = Vec::new();
    for i in 0..n {
        let case = generate(&mut rng);
        match adhoc::prepare("gen", &case.text, &case.attrs, &[]) {
            Ok(p) => batch.push((i, case, p)),
            Err(_) => stats.rejected += 1,
        }
        if batch.len() == 200 || i + 1 == n {
            let exprs: Vec<_> = batch.iter().map(|(_, _, p)| &p.expr).collect();
            let interp = Program::try_new(EngineKind::Interp, &exprs).unwrap();
            let jit = Program::try_new(EngineKind::Jit, &exprs).unwrap();
            for (k, (i, case, p)) in batch.iter().enumerate() {
                let obj = Object {
                    attrs: &p.values,
                    imported: &p.values,
                };
                let a = interp.eval(&mut interp_ctx(*i), k, &p.expr, obj);
                let b = jit.eval(&mut jit_ctx(*i), k, &p.expr, obj);
                stats.checked += 1;
                match &a {
                    Ok(Value::Many(_)) => stats.multi += 1,
                    Ok(_) => stats.values += 1,
                    Err(e) => {
                        stats.errors += 1;
                        if e.code == "E0513" {
                            stats.budget += 1;
                        }
                    }
                }
                if let Some(d) = differ(&a, &b) {
                    failures.push(format!(
                        "case {i} (seed {seed}): `{}`\n  inputs: {:?}\n  {d}",
                        case.text, case.attrs
                    ));
                }
            }
            batch.clear();
        }
    }
    (failures, stats)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_expressions_agree_on_both_engines() {
    if !jit_available() {
        eprintln!("no JIT on this machine: nothing to compare");
        return;
    }
    let seed = env_or("DIFF_SEED", 0x0001_DF10_u64);
    let n = env_or("DIFF_CASES", 2000usize);
    let (failures, stats) = run_generated(seed, n, |_| ctx(), |_| ctx());
    eprintln!("{stats:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        stats.checked,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generator must keep producing checked expressions of every kind of outcome, or this
    // test would pass without testing anything.
    assert!(
        stats.checked * 2 > n,
        "too few expressions checked: {stats:?}"
    );
    assert!(stats.values > n / 10, "too few plain values: {stats:?}");
    assert!(
        stats.multi > n / 50,
        "too few multi-valued results: {stats:?}"
    );
    assert!(stats.errors > n / 100, "too few runtime errors: {stats:?}");
}

/// Tight limits, the same on both engines: step, size, value-count and budget errors must come at the
/// same node (loops count steps in generated code; loop-free code under a step limit below its
/// node count is left to the interpreter).
#[test]
fn random_expressions_agree_under_tight_limits() {
    if !jit_available() {
        return;
    }
    fn tight(i: usize) -> Ctx {
        ctx().with_limits(Limits {
            max_bytes: 4 + i % 40,
            max_values: 1 + i % 5,
            max_steps: 1 + (i % 30) as u64,
            max_total_bytes: 8 + (i * 7) % 200,
        })
    }
    let seed = env_or("DIFF_SEED", 0x0005_EED5_u64);
    let n = env_or("DIFF_CASES", 2000usize);
    let (failures, stats) = run_generated(seed, n, tight, tight);
    eprintln!("{stats:?}");
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        stats.checked,
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stats.errors > n / 4, "too few limit errors: {stats:?}");
    assert!(stats.budget > n / 100, "too few budget errors: {stats:?}");
}

// ---- guards: the comparison detects real differences -----------------------------------------

#[test]
fn guard_a_different_value_is_reported() {
    if !jit_available() {
        return;
    }
    // The JIT side runs with another `now`: expressions reading Now() must be reported.
    fn other_now() -> Ctx {
        let mut c = ctx();
        c.now = "2030-01-01T00:00:00Z".parse().unwrap();
        c
    }
    let p = adhoc::prepare("g", r#"FormatDateTime(Now(), "yyyy")"#, &[], &[]).unwrap();
    let interp = Program::try_new(EngineKind::Interp, &[&p.expr]).unwrap();
    let jit = Program::try_new(EngineKind::Jit, &[&p.expr]).unwrap();
    let obj = Object {
        attrs: &p.values,
        imported: &p.values,
    };
    let a = interp.eval(&mut ctx(), 0, &p.expr, obj);
    let b = jit.eval(&mut other_now(), 0, &p.expr, obj);
    let d = differ(&a, &b).expect("a different year must be reported");
    assert!(d.contains("1970") && d.contains("2030"), "{d}");
}

#[test]
fn guard_a_different_error_code_or_location_is_reported() {
    let e = |code: &'static str, span: std::ops::Range<usize>| -> Outcome {
        Err(Box::new(EvalError {
            code,
            message: "m".into(),
            span,
        }))
    };
    assert!(differ(&e("E0505", 0..3), &e("E0505", 0..3)).is_none());
    assert!(differ(&e("E0505", 0..3), &e("E0502", 0..3)).is_some());
    assert!(differ(&e("E0505", 0..3), &e("E0505", 1..3)).is_some());
    assert!(differ(&Ok(Value::Num(1)), &e("E0505", 0..3)).is_some());
    assert!(differ(&Ok(Value::Null), &Ok(Value::AuthoritativeNull)).is_some());
}

#[test]
fn guard_the_generated_run_catches_a_skewed_engine() {
    if !jit_available() {
        return;
    }
    // A JIT context with a tiny step limit stands in for a broken engine: the same generated
    // run must now report differences.
    fn starved(_: usize) -> Ctx {
        ctx().with_limits(Limits {
            max_bytes: 4096,
            max_values: 64,
            max_steps: 3,
            max_total_bytes: 1 << 20,
        })
    }
    let (failures, _) = run_generated(7, 200, |_| ctx(), starved);
    assert!(
        failures.len() > 20,
        "only {} differences found",
        failures.len()
    );
    assert!(failures.iter().any(|f| f.contains("E0512")), "{failures:?}");
}
