//! `idflow check`: lint and type-check rule files or bundles.

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::frontend;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bundle directories or .idf files (default: the bundle of --config, else the current
    /// directory).
    paths: Vec<PathBuf>,
    /// Output format for diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Treat warnings as errors (exit 1 when any warning is reported).
    #[arg(long)]
    deny_warnings: bool,
    /// Print at most this many diagnostics (all are counted). Human output shows
    /// 50 by default; JSON and SARIF show all.
    #[arg(long)]
    max_errors: Option<usize>,
    /// Also validate this deployment file (idflow.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// How many diagnostics human output shows without `--max-errors`.
const DEFAULT_HUMAN_LIMIT: usize = 50;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Human,
    Json,
    Sarif,
}

/// Validates a deployment file: returns (errors, warnings) and the deployment when it is valid.
/// An inline secret is a warning here (`idflow run` refuses it).
fn check_config(path: &std::path::Path) -> (usize, usize, Option<crate::config::Deployment>) {
    match crate::config::load(path) {
        Ok(d) => (0, 0, Some(d)),
        Err(errs) => {
            let (mut e, mut w) = (0, 0);
            for x in errs {
                if x.key.ends_with(".password") {
                    eprintln!("warning: {}: {x}", path.display());
                    w += 1;
                } else {
                    eprintln!("error: {}: {x}", path.display());
                    e += 1;
                }
            }
            (e, w, None)
        }
    }
}

/// Checks a deployment's SCIM mappings against the checked bundle: every mapped type and
/// attribute must be declared (errors); the outbound flows the mappings leave out are listed
/// as notes. Returns the number of errors.
fn check_mappings(
    path: &std::path::Path,
    deployment: &crate::config::Deployment,
    bundle: &crate::sema::Bundle,
) -> usize {
    let mut plan =
        crate::engine::compile::Plan::with_engine(bundle, crate::eval::EngineKind::Interp);
    let mut errors = 0;
    for cfg in &deployment.connectors {
        let (Some(mapping), Some(c)) = (&cfg.mapping, plan.connector_index(&cfg.name)) else {
            continue;
        };
        if let Err(es) = crate::connector::scim::type_maps(mapping, &plan.connectors[c]) {
            for e in es {
                eprintln!("error: {}: connectors.\"{}\".{e}", path.display(), cfg.name);
                errors += 1;
            }
        }
    }
    let mut left_out: std::collections::BTreeMap<(String, String), Vec<String>> =
        Default::default();
    for (connector, ty, _rule, attr) in crate::runner::narrow(&mut plan, deployment) {
        let list = left_out.entry((connector, ty)).or_default();
        if !list.contains(&attr) {
            list.push(attr);
        }
    }
    for ((connector, ty), mut attrs) in left_out {
        attrs.sort();
        eprintln!(
            "note: {}: connectors.\"{connector}\": the mapping of `{ty}` holds no {}: the outbound flows into {} are left out",
            path.display(),
            attrs
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if attrs.len() == 1 { "it" } else { "them" }
        );
    }
    errors
}

pub fn run(args: Args) -> u8 {
    let (mut config_errors, config_warnings, deployment) = args
        .config
        .as_deref()
        .map(check_config)
        .unwrap_or((0, 0, None));
    // With a deployment and no paths: its bundle (none to check when the file is invalid).
    let paths = match (&deployment, args.paths.is_empty()) {
        (Some(d), true) => vec![d.bundle.clone()],
        (None, true) if args.config.is_some() => return FINDINGS,
        _ => args.paths.clone(),
    };
    let map = match super::load_sources(&paths) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let checked = frontend::check(&map);
    let diags = &checked.diagnostics;
    let limit = match (args.max_errors, args.format) {
        (Some(n), _) => n,
        (None, Format::Human) => DEFAULT_HUMAN_LIMIT,
        (None, _) => usize::MAX,
    };
    let shown = &diags[..limit.min(diags.len())];
    match args.format {
        Format::Json => outln!("{}", render::json(&map, shown)),
        Format::Sarif => outln!("{}", render::sarif(&map, shown)),
        Format::Human => {
            let style = super::human_style();
            for d in shown {
                eprint!("{}", render::human(&map, d, style));
            }
            let hidden = diags.len() - shown.len();
            if hidden > 0 {
                eprintln!(
                    "{hidden} more diagnostic{} not shown (use --max-errors N to show more)",
                    if hidden == 1 { "" } else { "s" }
                );
            }
            if !diags.is_empty() {
                let errors = diags.iter().filter(|d| d.is_error()).count();
                let warnings = diags.len() - errors;
                eprintln!(
                    "{} error{}, {} warning{} in {} file{}",
                    errors,
                    if errors == 1 { "" } else { "s" },
                    warnings,
                    if warnings == 1 { "" } else { "s" },
                    map.files().len(),
                    if map.files().len() == 1 { "" } else { "s" },
                );
            }
        }
    }
    if let (Some(d), Some(path), false) = (&deployment, &args.config, checked.has_errors()) {
        config_errors += check_mappings(path, d, &checked.bundle);
    }
    let _ = USAGE;
    if config_errors > 0 || (args.deny_warnings && config_warnings > 0) {
        return FINDINGS;
    }
    if checked.has_errors() || (args.deny_warnings && !diags.is_empty()) {
        FINDINGS
    } else {
        OK
    }
}
