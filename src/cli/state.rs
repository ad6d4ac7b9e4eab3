//! `idflow state`: looks into the stored state of a deployment.
//!
//! `pending-exports` shows exactly what the next export would send: the engine's export deltas
//! (`engine::export`), one row per attribute change (replace, value add, value remove, clear)
//! with its values, and the confirmed value a replace or clear changes, as text, JSON (typed
//! values, `eval::json`) or CSV; `search` finds connector-space
//! or metaverse objects by DN, anchor or attribute; `show` prints one object with its links and
//! its lineage through the rules; `errors` lists the latest sync errors and the data validation
//! errors of the latest import of each connector by category, and the records the latest
//! import of each connector rejected; `runs` the run history.
//!
//! Every command reads the state without writing it and without the run lock, so it works
//! during a run and on a read-only state file. Values are printed safely: control characters
//! are escaped in text output (`\u{1b}`, `\n`), and CSV cells a spreadsheet would read as a
//! formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.

use super::{FINDINGS, OK, USAGE};
use crate::engine::export::{self, AttrOp};
use crate::engine::model::Values;
use crate::eval::json;
use crate::runner::Runner;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use crate::value::Value;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment file.
    #[arg(long, default_value = "idflow.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// What the next export would send, per object and attribute.
    PendingExports {
        #[arg(long)]
        connector: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Find objects by DN, anchor or attribute value.
    Search {
        /// Search this connector's space (default: every connector space).
        #[arg(long)]
        connector: Option<String>,
        /// Search the metaverse instead.
        #[arg(long)]
        metaverse: bool,
        /// DN (case-insensitive substring).
        #[arg(long)]
        dn: Option<String>,
        /// Anchor value (as text; binary anchors as base64).
        #[arg(long)]
        anchor: Option<String>,
        /// NAME=VALUE: an attribute holding this value (case-insensitive).
        #[arg(long)]
        attr: Option<String>,
    },
    /// One connector-space object with its links and lineage.
    Show {
        #[arg(long)]
        dn: String,
        #[arg(long)]
        connector: Option<String>,
    },
    /// The errors of the latest sync and the data validation errors of the latest import of
    /// each connector, by category, and the records the latest import of each connector
    /// rejected.
    Errors,
    /// The run history, newest first.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Csv,
}

/// `s` with its control characters escaped (`\n`, `\t`, `\u{1}`), so a value cannot move the
/// cursor, recolour the terminal or forge a line of output.
pub(crate) fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A CSV cell a spreadsheet does not evaluate: a leading `=`, `+`, `-`, `@`, tab or carriage
/// return gets a `'` before it (OWASP's CSV injection advice).
fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// One attribute change of a pending export (or an object's line when it has no attribute
/// change: a delete, a rename alone), with its values as they are.
struct PendingRow {
    connector: String,
    operation: &'static str,
    object_type: String,
    dn: String,
    new_dn: Option<String>,
    attribute: String,
    /// `replace`, `add`, `remove`, `clear`, or empty on an object's line.
    change: &'static str,
    /// The value a replace sets, the values an add or a remove names.
    values: Value,
    /// The confirmed value a replace or a clear changes.
    old: Option<Value>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Str(s) | Value::Ref(s) => s.to_string(),
        other => json::to_json(other).to_string(),
    }
}

pub fn run(args: Args) -> u8 {
    match args.command {
        Command::Errors | Command::Runs { .. } => history(&args.config, &args.command),
        _ => {
            let runner = match super::run::open(&args.config, crate::eval::EngineKind::Interp, true)
            {
                Ok(r) => r,
                Err(code) => return code,
            };
            match args.command {
                Command::PendingExports { connector, format } => {
                    pending(&runner, connector.as_deref(), format)
                }
                Command::Search {
                    connector,
                    metaverse,
                    dn,
                    anchor,
                    attr,
                } => search(
                    &runner,
                    connector.as_deref(),
                    metaverse,
                    dn.as_deref(),
                    anchor.as_deref(),
                    attr.as_deref(),
                ),
                Command::Show { dn, connector } => show(&runner, &dn, connector.as_deref()),
                _ => OK,
            }
        }
    }
}

fn pending(runner: &Runner, connector: Option<&str>, format: Format) -> u8 {
    let plan = &runner.engine.plan;
    let state = &runner.engine.state;
    let mut rows: Vec<PendingRow> = Vec::new();
    for (c, cp) in plan.connectors.iter().enumerate() {
        if connector.is_some_and(|n| n != cp.name) {
            continue;
        }
        for d in export::deltas(plan, state, c) {
            let row = |attribute: &str, change: &'static str, values: Value, old: Option<Value>| {
                PendingRow {
                    connector: cp.name.clone(),
                    operation: d.kind.as_str(),
                    object_type: d.object_type.to_string(),
                    dn: d.dn.to_string(),
                    new_dn: d.new_dn.as_ref().map(|n| n.to_string()),
                    attribute: attribute.into(),
                    change,
                    values,
                    old,
                }
            };
            if d.changes.is_empty() {
                rows.push(row("", "", Value::Null, None));
            }
            // The confirmed value a replace or a clear changes.
            let confirmed = |attr: &str| -> Value {
                state
                    .cs()
                    .get(d.cs as usize)
                    .and_then(|o| {
                        let slot = cp.types.get(o.object_type)?.slot(attr)?;
                        o.imported.get(slot).cloned()
                    })
                    .unwrap_or_default()
            };
            for ch in &d.changes {
                rows.push(match &ch.op {
                    AttrOp::Replace(v) => row(
                        &ch.attr,
                        ch.op.as_str(),
                        v.clone(),
                        Some(confirmed(&ch.attr)),
                    ),
                    AttrOp::Clear => row(
                        &ch.attr,
                        ch.op.as_str(),
                        Value::Null,
                        Some(confirmed(&ch.attr)),
                    ),
                    AttrOp::Add(vs) | AttrOp::Remove(vs) => {
                        row(&ch.attr, ch.op.as_str(), Value::many(vs.clone()), None)
                    }
                });
            }
        }
    }
    match format {
        Format::Json => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut o = serde_json::json!({
                        "connector": r.connector,
                        "operation": r.operation,
                        "type": r.object_type,
                        "dn": r.dn,
                        "new_dn": r.new_dn,
                        "attribute": r.attribute,
                        "change": r.change,
                        "values": json::to_json(&r.values),
                    });
                    if let (Some(old), Some(map)) = (&r.old, o.as_object_mut()) {
                        map.insert("old".into(), json::to_json(old));
                    }
                    o
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            );
        }
        Format::Csv => {
            let mut w = ::csv::Writer::from_writer(super::Stdout);
            let _ = w.write_record([
                "connector",
                "operation",
                "type",
                "dn",
                "new_dn",
                "attribute",
                "change",
                "values",
                "old",
            ]);
            for r in &rows {
                let _ = w.write_record(
                    [
                        r.connector.as_str(),
                        r.operation,
                        &r.object_type,
                        &r.dn,
                        r.new_dn.as_deref().unwrap_or(""),
                        &r.attribute,
                        r.change,
                        &text(&r.values),
                        &r.old.as_ref().map(text).unwrap_or_default(),
                    ]
                    .map(|c| csv_cell(c).into_owned()),
                );
            }
            let _ = w.flush();
        }
        Format::Text => {
            let mut last = String::new();
            let shown = |v: &Value| {
                if v.is_null() {
                    "(none)".to_string()
                } else {
                    escape_controls(&text(v))
                }
            };
            for r in &rows {
                let head = format!(
                    "{} {} {} \"{}\"",
                    escape_controls(&r.connector),
                    r.operation,
                    r.object_type,
                    escape_controls(&r.dn)
                );
                if head != last {
                    outln!("{head}");
                    if let Some(nd) = &r.new_dn {
                        outln!("    rename to \"{}\"", escape_controls(nd));
                    }
                    last = head;
                }
                if r.attribute.is_empty() {
                    continue;
                }
                match &r.old {
                    Some(old) => outln!(
                        "    {} {}: {} -> {}",
                        r.change,
                        r.attribute,
                        shown(old),
                        shown(&r.values)
                    ),
                    None => outln!("    {} {}: {}", r.change, r.attribute, shown(&r.values)),
                }
            }
            let objects = rows
                .iter()
                .map(|r| (&r.connector, &r.dn))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            outln!("{objects} object(s) with pending exports");
        }
    }
    OK
}

fn search(
    runner: &Runner,
    connector: Option<&str>,
    metaverse: bool,
    dn: Option<&str>,
    anchor: Option<&str>,
    attr: Option<&str>,
) -> u8 {
    let plan = &runner.engine.plan;
    let state = &runner.engine.state;
    let attr = match attr.map(|a| a.split_once('=')) {
        None => None,
        Some(Some((n, v))) => Some((n.to_string(), v.to_lowercase())),
        Some(None) => {
            eprintln!("error: --attr must be NAME=VALUE");
            return USAGE;
        }
    };
    let has = |names: &[std::sync::Arc<str>], values: &Values| -> bool {
        attr.as_ref().is_none_or(|(n, v)| {
            names.iter().position(|x| **x == **n).is_some_and(|i| {
                values[i]
                    .values()
                    .iter()
                    .any(|x| text(x).to_lowercase() == *v)
            })
        })
    };
    if metaverse && (dn.is_some() || anchor.is_some() || connector.is_some()) {
        // Metaverse objects have no DN, anchor or connector: these filters used to be
        // ignored silently ("0 object(s)").
        eprintln!(
            "error: --dn, --anchor and --connector search connector spaces; search the metaverse with --attr NAME=VALUE"
        );
        return USAGE;
    }
    let mut found = 0;
    if metaverse {
        for m in state.mv().values() {
            let t = &plan.metaverse[m.object_type];
            if has(&t.names, &m.attrs) {
                found += 1;
                outln!("metaverse {} {} ({} link(s))", t.name, m.id, m.links.len());
            }
        }
    } else {
        for (c, o) in state.cs().iter().enumerate() {
            let cp = &plan.connectors[o.connector];
            if o.gone || connector.is_some_and(|n| n != cp.name) {
                continue;
            }
            let t = &cp.types[o.object_type];
            let dn_ok = dn.is_none_or(|d| o.dn.to_lowercase().contains(&d.to_lowercase()));
            let anchor_ok = anchor.is_none_or(|a| {
                o.anchor
                    .as_ref()
                    .is_some_and(|x| text(x) == a || json::to_json(x).to_string().contains(a))
            });
            if dn_ok && anchor_ok && has(&t.names, &o.current) {
                found += 1;
                let link = o
                    .link
                    .map(|l| format!(" -> metaverse {}", l.mv))
                    .unwrap_or_else(|| " (disconnector)".into());
                let flag = if o.placeholder { " placeholder" } else { "" };
                outln!(
                    "{} {} \"{}\"{link}{flag} [#{c}]",
                    cp.name,
                    t.name,
                    escape_controls(&o.dn)
                );
            }
        }
    }
    outln!("{found} object(s)");
    if found == 0 { FINDINGS } else { OK }
}

fn show(runner: &Runner, dn: &str, connector: Option<&str>) -> u8 {
    match runner.lineage(dn, connector) {
        Ok(lines) => {
            for l in lines {
                outln!("{}", escape_controls(&l));
            }
            OK
        }
        Err(crate::runner::Lineage::NotFound) => {
            eprintln!("error: no connector-space object with DN \"{dn}\"");
            FINDINGS
        }
        Err(crate::runner::Lineage::Ambiguous) => {
            eprintln!("error: the DN is in several connectors: use --connector");
            USAGE
        }
    }
}

fn history(config: &std::path::Path, command: &Command) -> u8 {
    let deployment = match crate::config::load(config) {
        Ok(d) => d,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return USAGE;
        }
    };
    let mut store = match SqliteStore::open_read_only(&deployment.state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    match command {
        Command::Runs { limit } => match store.runs(*limit) {
            Ok(runs) => {
                for r in runs {
                    let who = if r.connector.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", r.connector)
                    };
                    outln!(
                        "#{} {} {}{who}: {} [{} adds, {} updates, {} deletes, {} renames, {} errors, {} ms]",
                        r.id,
                        r.started,
                        r.step,
                        r.status,
                        r.adds,
                        r.updates,
                        r.deletes,
                        r.renames,
                        r.errors,
                        r.duration_ms
                    );
                }
                OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        },
        _ => match store
            .latest_errors()
            .and_then(|e| Ok((e, store.latest_rejects()?)))
        {
            Ok((errors, rejects)) => {
                let mut by: std::collections::BTreeMap<String, Vec<_>> =
                    std::collections::BTreeMap::new();
                for e in errors {
                    by.entry(e.category.clone()).or_default().push(e);
                }
                for (cat, list) in &by {
                    outln!("{cat}: {}", list.len());
                    for e in list {
                        let rule = if e.rule.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", e.rule)
                        };
                        outln!(
                            "    {} \"{}\"{rule}: {}",
                            e.connector,
                            escape_controls(&e.dn),
                            escape_controls(&e.message)
                        );
                    }
                }
                if by.is_empty() {
                    outln!("no sync errors");
                }
                for (run, list) in &rejects {
                    outln!(
                        "import rejects: {} (#{} {} {}): {}",
                        run.connector,
                        run.id,
                        run.started,
                        run.step,
                        run.rejected
                    );
                    for r in list {
                        outln!("    {}", escape_controls(&super::run::reject_note(r)));
                    }
                    let unkept = run.rejected - list.len() as i64;
                    if unkept > 0 {
                        outln!(
                            "    ... {unkept} more (only the first {} of an import are kept)",
                            crate::store::REJECTS_KEPT
                        );
                    }
                }
                OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        },
    }
}
