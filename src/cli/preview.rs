//! `idflow preview`: the lineage of one object through the rules, without committing anything.
//!
//! The objects come from a JSON file: a list of `{"connector": ..., "type": ..., "dn": ...,
//! "attrs": {...}}` with values encoded as for `idflow eval`. All objects are imported and
//! synced in memory; then the object named by `--dn` is synced again with its lineage recorded.

use super::{OK, USAGE};
use crate::engine::Engine;
use crate::engine::import::{ImportChange, ImportObject};
use crate::engine::preview;
use crate::engine::sync::Mode;
use crate::eval::json;
use crate::testrun;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle directory (default: the current directory).
    paths: Vec<PathBuf>,
    /// A JSON file with the connector-space objects to import.
    #[arg(long)]
    objects: PathBuf,
    /// The DN of the object to preview.
    #[arg(long)]
    dn: String,
    /// The connector of the object (needed when the DN exists in several).
    #[arg(long)]
    connector: Option<String>,
    #[command(flatten)]
    engine: super::EngineArg,
}

fn load_objects(engine: &Engine, path: &PathBuf) -> Result<Vec<Vec<ImportChange>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid JSON: {e}", path.display()))?;
    let items = doc
        .as_array()
        .ok_or_else(|| format!("{}: expected a JSON array of objects", path.display()))?;
    let mut out = vec![Vec::new(); engine.plan.connectors.len()];
    for (i, item) in items.iter().enumerate() {
        let field = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{}: object {}: `{k}` is missing", path.display(), i + 1))
        };
        let connector = field("connector")?;
        let c = engine.plan.connector_index(connector).ok_or_else(|| {
            format!(
                "{}: object {}: unknown connector \"{connector}\"",
                path.display(),
                i + 1
            )
        })?;
        let mut attrs = Vec::new();
        if let Some(map) = item.get("attrs").and_then(|a| a.as_object()) {
            for (k, v) in map {
                attrs.push((
                    k.clone(),
                    json::from_json(v)
                        .map_err(|e| format!("{}: object {}: `{k}`: {e}", path.display(), i + 1))?,
                ));
            }
        }
        out[c].push(ImportChange::Upsert(ImportObject {
            dn: field("dn")?.to_string(),
            object_type: field("type")?.to_string(),
            attrs,
        }));
    }
    Ok(out)
}

pub fn run(args: Args) -> u8 {
    let (_, checked) = match super::load_checked(&args.paths, "nothing was previewed") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let kind = match args.engine.kind() {
        Ok(k) => k,
        Err(code) => return code,
    };
    let mut engine = Engine::with_engine(&checked.bundle, jiff::Timestamp::now(), kind);
    for c in 0..engine.plan.connectors.len() {
        let name = engine.plan.connectors[c].name.clone();
        engine.set_params(c, testrun::default_params(&name));
    }
    let batches = match load_objects(&engine, &args.objects) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    for (c, batch) in batches.into_iter().enumerate() {
        let report = engine.import(c, batch, true);
        for (dn, why) in report.rejected.into_iter().chain(report.invalid) {
            eprintln!("warning: {dn} not imported: {why}");
        }
        for (ty, n) in &report.out_of_schema {
            eprintln!(
                "warning: {n} object(s) of type `{ty}` not imported: the connector schema of \"{}\" does not declare it",
                engine.plan.connectors[c].name
            );
        }
    }
    engine.sync(Mode::Full);
    let candidates: Vec<u32> = (0..engine.plan.connectors.len())
        .filter(|&c| {
            args.connector
                .as_ref()
                .is_none_or(|n| &engine.plan.connectors[c].name == n)
        })
        .filter_map(|c| engine.state.cs_by_dn(c, &args.dn))
        .collect();
    let cs = match candidates.as_slice() {
        [one] => *one,
        [] => {
            eprintln!("error: no object with DN \"{}\" was imported", args.dn);
            return USAGE;
        }
        _ => {
            eprintln!(
                "error: the DN \"{}\" exists in several connectors: use --connector",
                args.dn
            );
            return USAGE;
        }
    };
    let p = preview::preview(&engine, cs);
    outln!("lineage of {}:", args.dn);
    for l in &p.lines {
        outln!("  {l}");
    }
    if !p.errors.is_empty() {
        outln!("errors:");
        for e in &p.errors {
            outln!("  {}: {}", e.category.as_str(), e.message);
        }
    }
    outln!("result:");
    if p.metaverse.is_empty() {
        outln!("  (not linked to a metaverse object)");
    }
    for l in p.metaverse.lines().chain(p.exports.lines()) {
        outln!("  {l}");
    }
    OK
}
