//! `idflow eval`: evaluates one expression and prints its result as JSON.
//!
//! The output encoding is `eval::json` (a stable interface). Exit 0 with the result on stdout;
//! exit 1 with a located, coded message on stderr for a type error or a runtime error
//! (`Error("...")` included); exit 2 for usage errors (a bad `--input` file, ...).

use super::{FINDINGS, OK, USAGE};
use crate::diag::{Diagnostic, render};
use crate::eval::{Ctx, adhoc, json};
use crate::source::FileId;
use crate::value::Value;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The expression, in Entra's expression language.
    expr: String,
    /// An attribute value: NAME=VALUE. VALUE is read as JSON when it is valid JSON (numbers,
    /// true/false, "quoted strings", {"$binary": "..."}), else as a string. Repeat a name to
    /// build a multi-valued attribute.
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    attrs: Vec<String>,
    /// A JSON object mapping attribute names to values or arrays of values.
    #[arg(long, value_name = "FILE.json")]
    input: Option<PathBuf>,
    /// A parameter value: NAME=VALUE (a string), e.g. Domain.FQDN=contoso.com.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[command(flatten)]
    engine: super::EngineArg,
    /// Print the JIT's Cranelift IR and machine code for the expression to stderr (implies
    /// `--engine jit`).
    #[arg(long)]
    dump_jit: bool,
    /// The instant `Now()` returns (RFC 3339); default: the current time.
    #[arg(long)]
    now: Option<String>,
    /// Seed of the random source behind RandomNum and Guid.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn split(s: &str, what: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, v)) if !n.is_empty() => Ok((n.to_string(), v.to_string())),
        _ => Err(format!("{what} `{s}` must be NAME=VALUE")),
    }
}

/// Adds a value to an attribute: a repeated name makes it multi-valued.
fn add(attrs: &mut Vec<(String, Value)>, name: String, v: Value) {
    match attrs.iter_mut().find(|(n, _)| *n == name) {
        Some((_, existing)) => {
            let mut all: Vec<Value> = existing.values().to_vec();
            all.extend(v.values().iter().cloned());
            *existing = Value::many(all);
        }
        None => attrs.push((name, v)),
    }
}

/// Named values: attributes or parameters.
type Named = Vec<(String, Value)>;

fn inputs(args: &Args) -> Result<(Named, Named), String> {
    let mut attrs = Vec::new();
    if let Some(path) = &args.input {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
        let obj = doc
            .as_object()
            .ok_or_else(|| format!("{}: expected a JSON object of attributes", path.display()))?;
        for (name, v) in obj {
            let value = json::from_json(v)
                .map_err(|e| format!("{}: attribute `{name}`: {e}", path.display()))?;
            add(&mut attrs, name.clone(), value);
        }
    }
    for a in &args.attrs {
        let (name, text) = split(a, "--attr")?;
        let value = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(j) => json::from_json(&j).map_err(|e| format!("--attr {name}: {e}"))?,
            Err(_) => Value::str(text.as_str()),
        };
        add(&mut attrs, name, value);
    }
    let mut params = Vec::new();
    for p in &args.params {
        let (name, text) = split(p, "--param")?;
        params.push((
            name.trim_matches('%').to_string(),
            Value::str(text.as_str()),
        ));
    }
    Ok((attrs, params))
}

pub fn run(args: Args) -> u8 {
    let (attrs, params) = match inputs(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    let now = match &args.now {
        Some(t) => match t.parse() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: --now `{t}`: {e}");
                return USAGE;
            }
        },
        None => jiff::Timestamp::now(),
    };
    let kind = match args.engine.kind() {
        Ok(k) => k,
        Err(code) => return code,
    };
    let style = super::human_style();
    let prepared = match adhoc::prepare("<expr>", &args.expr, &attrs, &params) {
        Ok(p) => p,
        Err((map, diags)) => {
            for d in &diags {
                eprint!("{}", render::human(&map, d, style));
            }
            return FINDINGS;
        }
    };
    for d in &prepared.warnings {
        eprint!("{}", render::human(&prepared.map, d, style));
    }
    let mut ctx = Ctx::new(now, args.seed);
    ctx.params = params;
    let program = if args.dump_jit {
        match crate::eval::Program::jit_with_dump(&[&prepared.expr]) {
            Ok(p) => {
                eprint!("{}", p.dump().unwrap_or(""));
                p
            }
            Err(e) => {
                eprintln!("error: --dump-jit: {e}");
                return USAGE;
            }
        }
    } else {
        crate::eval::Program::new(kind, &[&prepared.expr])
    };
    match prepared.eval_program(&program, &mut ctx) {
        Ok(v) => {
            outln!("{}", json::to_json(&v));
            OK
        }
        Err(e) => {
            let d = Diagnostic::new(e.code, FileId(0), e.span.clone(), e.message.clone())
                .with_label(if e.code == "E0501" {
                    "Error(...) evaluated here"
                } else {
                    "evaluation failed here"
                });
            eprint!("{}", render::human(&prepared.map, &d, style));
            FINDINGS
        }
    }
}
