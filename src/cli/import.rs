//! `idflow import entra`: converts an Entra Connect configuration into a bundle.
//!
//! SOURCE is a `Get-ADSyncServerConfiguration` export folder or a Synchronization Rules Editor
//! PowerShell script (`.ps1`). An export folder becomes a whole bundle; a script's rules go into
//! the bundle in the output directory: their connectors are resolved against it, a rule of the
//! same name is replaced where it is (with `--force`), and what changes is printed per rule on
//! stdout. The result is formatted and checked before anything is written.
//!
//! Exit codes: 0 when every rule was imported and the result checks without errors (written,
//! or with `--dry-run` writable); 1 when anything was skipped or could not be mapped, the
//! result has check errors, or existing rules would be replaced without `--force` — whatever
//! `--allow-partial` wrote; 2 for usage and I/O errors and scripts that cannot be read
//! (syntax, a run-time value `--var` does not give).

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::frontend;
use crate::import::connectors::{self, Choice, Known};
use crate::import::extend;
use crate::import::merge::{self, ChangeKind, Existing};
use crate::import::{model::Config, powershell, writer, xml};
use crate::source::SourceMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    from: From,
}

#[derive(clap::Subcommand, Debug)]
enum From {
    /// Import an Entra Connect (Azure AD Connect) sync configuration.
    Entra(EntraArgs),
}

#[derive(clap::Args, Debug)]
struct EntraArgs {
    /// An export folder (SynchronizationRules/, Connectors/, GlobalSettings/) or a .ps1 script.
    source: PathBuf,
    /// The bundle directory to write (a script's rules go into the bundle already there).
    #[arg(short, long)]
    output: PathBuf,
    /// Write even when some constructs could not be mapped or the result has errors (they are
    /// reported, and the exit code is still 1).
    #[arg(long)]
    allow_partial: bool,
    /// Replace what the output directory has: an export folder's files overwrite existing
    /// files; a script's rules replace existing rules of the same name.
    #[arg(long)]
    force: bool,
    /// Show what the import would change, rule by rule, and check the result, without writing.
    #[arg(long)]
    dry_run: bool,
    /// The bundle's name (default: the output directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Name the bundle connector for a connector the source refers to: KEY=NAME, where KEY is
    /// a connector identifier, the name a script gives, or a script's connector expression as
    /// written (repeatable).
    #[arg(long = "connector", value_name = "KEY=NAME")]
    connectors: Vec<String>,
    /// A value for a script variable only known when the script runs (`Read-Host`,
    /// `$env:NAME` as `env:NAME`, a script parameter): NAME=VALUE (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

pub fn run(args: Args) -> u8 {
    let From::Entra(a) = args.from;
    entra(a)
}

/// `KEY=VALUE` pairs of a repeatable flag.
fn pairs(
    flag: &str,
    values: &[String],
    what: &str,
    empty_value: bool,
) -> Result<Vec<(String, String)>, u8> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, x)) if !k.trim().is_empty() && (empty_value || !x.is_empty()) => {
                Ok((k.trim().to_string(), x.to_string()))
            }
            _ => {
                eprintln!("error: {flag} `{v}` must be {what}");
                Err(USAGE)
            }
        })
        .collect()
}

fn entra(a: EntraArgs) -> u8 {
    let vars = match pairs("--var", &a.vars, "NAME=VALUE", true) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let choices: Vec<Choice> = match pairs("--connector", &a.connectors, "KEY=NAME", false) {
        Ok(v) => v
            .into_iter()
            .map(|(key, name)| Choice { key, name })
            .collect(),
        Err(code) => return code,
    };
    let is_script = !a.source.is_dir();
    if !is_script && !vars.is_empty() {
        eprintln!(
            "error: --var gives values to a script's variables; {} is an export folder",
            a.source.display()
        );
        return USAGE;
    }
    let config = if is_script {
        let text = match std::fs::read_to_string(&a.source) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e}", a.source.display());
                return USAGE;
            }
        };
        let options = powershell::Options {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches('$').to_string(), v))
                .collect(),
        };
        powershell::read_with(&a.source, &text, &options)
    } else {
        xml::read(&a.source)
    };
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    let bundle_name = a.name.clone().unwrap_or_else(|| {
        a.output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into())
    });
    if is_script {
        script(a, config, bundle_name, &choices)
    } else {
        export_folder(a, &mut config, bundle_name, &choices)
    }
}

/// The summary line and the findings common to both sources (`errors` are the import's own,
/// besides the diagnostics); returns the numbers of unmapped constructs, errors and warnings.
fn report(
    config: &Config,
    map: &SourceMap,
    diagnostics: &[&crate::diag::Diagnostic],
    errors: &[String],
    warnings: &[String],
) -> (usize, usize, usize) {
    let counts = config.counts();
    eprintln!(
        "read {} rules ({} scope clauses, {} join conditions, {} flows), {} connectors, {} metaverse object types",
        counts.rules,
        counts.scope_clauses,
        counts.join_conditions,
        counts.flows,
        config.connectors.len(),
        config.metaverse.len()
    );
    let style = super::human_style();
    for d in diagnostics {
        eprint!("{}", render::human(map, d, style));
    }
    for n in &config.notes {
        if n.context == "warning" {
            eprintln!("warning: {}", n.what);
        } else {
            eprintln!("note: {}: {}: {}", n.source.display(), n.context, n.what);
        }
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
    for u in &config.unmapped {
        eprintln!(
            "unmapped: {}: {}: {}",
            u.source.display(),
            u.context,
            u.what
        );
    }
    for e in errors {
        eprintln!("error: {e}");
    }
    let diagnosed = diagnostics.iter().filter(|d| d.is_error()).count();
    let warned = diagnostics.len() - diagnosed
        + warnings.len()
        + config
            .notes
            .iter()
            .filter(|n| n.context == "warning")
            .count();
    let errors = diagnosed + errors.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    eprintln!(
        "{} unmapped construct{}, {} error{}, {} warning{}",
        config.unmapped.len(),
        plural(config.unmapped.len()),
        errors,
        plural(errors),
        warned,
        plural(warned),
    );
    (config.unmapped.len(), errors, warned)
}

fn export_folder(a: EntraArgs, config: &mut Config, bundle_name: String, choices: &[Choice]) -> u8 {
    let mut options = writer::Options {
        bundle_name,
        ..Default::default()
    };
    let ids: Vec<String> = config
        .connectors
        .iter()
        .map(|c| writer::normalize_id(&c.id))
        .collect();
    let mut warnings = Vec::new();
    for c in choices {
        let id = writer::normalize_id(&c.key);
        if !ids.contains(&id) {
            warnings.push(format!(
                "--connector {}={} is not used: the export has no connector {id}",
                c.key, c.name
            ));
        }
        options.connector_names.insert(id, c.name.clone());
    }
    let files = writer::write(config, &options);
    let mut map = SourceMap::new();
    for f in files.iter().filter(|f| f.path.ends_with(".idf")) {
        map.add(a.output.join(&f.path).display().to_string(), f.text.clone());
    }
    let checked = frontend::check(&map);
    let diagnostics: Vec<_> = checked.diagnostics.iter().collect();
    let (unmapped, errors, _) = report(config, &map, &diagnostics, &[], &warnings);
    finish(&a, &files, unmapped, errors, false)
}

/// Writes (or, with `--dry-run`, does not) and returns the exit code: 0 only when nothing was
/// left out and the result has no errors. `merged` files already contain what they replace
/// (a script's rules merged into the bundle's files); other files overwrite existing ones only
/// with `--force`.
fn finish(
    a: &EntraArgs,
    files: &[writer::OutFile],
    unmapped: usize,
    errors: usize,
    merged: bool,
) -> u8 {
    let clean = unmapped == 0 && errors == 0;
    if a.dry_run {
        eprintln!(
            "dry run: nothing written ({} file{} would be written to {})",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            a.output.display()
        );
        return if clean { OK } else { FINDINGS };
    }
    if !clean && !a.allow_partial {
        eprintln!(
            "nothing written: rerun with --allow-partial to write the bundle anyway (without the unmapped constructs, with the errors above)"
        );
        return FINDINGS;
    }
    if let Err(e) = write_files(&a.output, files, a.force || merged) {
        eprintln!("error: {e}");
        return USAGE;
    }
    eprintln!("wrote {} files to {}", files.len(), a.output.display());
    if clean { OK } else { FINDINGS }
}

/// The existing bundle in `dir`: its `.idf` files (paths relative to it) and its connectors,
/// with the Entra identifiers its `idflow.toml` gives them. `None` when there is no bundle.
fn existing_bundle(dir: &Path) -> (Vec<Existing>, Option<Vec<Known>>) {
    if !dir.is_dir() {
        return (Vec::new(), None);
    }
    let paths = crate::source::collect_idf_files(&[dir.to_path_buf()]).unwrap_or_default();
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut files = Vec::new();
    for p in paths {
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let canon = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        let rel = canon
            .strip_prefix(&root)
            .unwrap_or(&p)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        files.push(Existing { path: rel, text });
    }
    if files.is_empty() {
        return (files, None);
    }
    let mut map = SourceMap::new();
    for f in &files {
        map.add(f.path.clone(), f.text.clone());
    }
    let checked = frontend::check(&map);
    let ids = entra_ids(&dir.join("idflow.toml"));
    let known: Vec<Known> = checked
        .bundle
        .schema
        .connectors
        .values()
        .map(|c| Known {
            name: c.name.clone(),
            kind: c.kind.clone(),
            entra_id: ids.get(&c.name).cloned(),
        })
        .collect();
    let has_schema = !known.is_empty() || checked.bundle.schema.has_metaverse;
    (files, has_schema.then_some(known))
}

/// `[connectors.NAME] entra_id = "{guid}"` of a deployment file.
fn entra_ids(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return BTreeMap::new();
    };
    table
        .get("connectors")
        .and_then(|c| c.as_table())
        .map(|c| {
            c.iter()
                .filter_map(|(name, v)| {
                    let id = v.get("entra_id")?.as_str()?;
                    Some((name.clone(), id.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn script(a: EntraArgs, mut config: Config, bundle_name: String, choices: &[Choice]) -> u8 {
    let (existing, known) = existing_bundle(&a.output);
    if config.rules.is_empty() && config.unmapped.is_empty() {
        config.unmapped.push(crate::import::model::Unmapped {
            source: a.source.clone(),
            context: "script".into(),
            what: "the script adds no synchronization rule".into(),
        });
    }
    let unused = connectors::resolve(&mut config, known.as_deref(), choices);
    let warnings: Vec<String> = unused
        .iter()
        .map(|c| {
            format!(
                "--connector {}={} is not used: no rule of the script refers to `{}`",
                c.key, c.name, c.key
            )
        })
        .collect();
    let options = writer::Options {
        bundle_name,
        ..Default::default()
    };
    let generated = writer::write(&mut config, &options);
    let mut merged = merge::merge(&generated, &existing);

    // The bundle as it would be, and what its schemas lack for the imported rules.
    let extended = if known.is_some() {
        let mut candidate: Vec<Existing> = existing
            .iter()
            .map(|e| Existing {
                path: e.path.clone(),
                text: merged
                    .files
                    .iter()
                    .find(|f| f.path == e.path)
                    .map_or_else(|| e.text.clone(), |f| f.text.clone()),
            })
            .collect();
        for f in &merged.files {
            if !existing.iter().any(|e| e.path == f.path) {
                candidate.push(Existing {
                    path: f.path.clone(),
                    text: f.text.clone(),
                });
            }
        }
        let rules: Vec<String> = merged.changes.iter().map(|c| c.rule.clone()).collect();
        extend::extend(&candidate, &rules)
    } else {
        extend::Extended::default()
    };
    for f in &extended.files {
        merged.files.retain(|m| m.path != f.path);
        merged.files.push(f.clone());
    }
    merged.errors.extend(extended.errors.iter().cloned());

    // What the import does, rule by rule (stdout: the result of a dry run).
    for c in &merged.changes {
        match &c.kind {
            ChangeKind::Added => outln!("add \"{}\" to {}", c.rule, c.path),
            ChangeKind::Unchanged => outln!("unchanged \"{}\" in {}", c.rule, c.path),
            ChangeKind::Replaced(details) => {
                outln!("replace \"{}\" in {}", c.rule, c.path);
                for d in details {
                    outln!("  {d}");
                }
            }
        }
    }
    // What the schemas get, by file and schema.
    let mut group = None;
    for a in &extended.added {
        if group != Some((&a.path, &a.owner)) {
            outln!("add to {}, {}:", a.path, a.owner);
            group = Some((&a.path, &a.owner));
        }
        outln!("  {a}");
    }

    // Check the bundle as it would be: existing files with the merged ones in their place.
    let mut map = SourceMap::new();
    let shown = |p: &str| a.output.join(p).display().to_string();
    for e in &existing {
        let text = merged
            .files
            .iter()
            .find(|f| f.path == e.path)
            .map_or(&e.text, |f| &f.text);
        map.add(shown(&e.path), text.clone());
    }
    for f in merged
        .files
        .iter()
        .filter(|f| !existing.iter().any(|e| e.path == f.path))
    {
        map.add(shown(&f.path), f.text.clone());
    }
    let checked = frontend::check(&map);
    let with_schema = known.is_some();
    let diagnostics: Vec<_> = checked
        .diagnostics
        .iter()
        // Without a schema only syntax errors and duplicate names can be judged.
        .filter(|d| with_schema || matches!(&d.code[..3], "E00") || d.code == "E0301")
        .collect();
    if !with_schema {
        eprintln!(
            "no bundle in {}: the rules are parsed but not checked against a schema",
            a.output.display()
        );
    }
    let (unmapped, errors, _) = report(&config, &map, &diagnostics, &merged.errors, &warnings);
    let replaced = merged.replaced();
    let rules = if replaced == 1 { "rule" } else { "rules" };
    if replaced > 0 && !a.force {
        if a.dry_run {
            eprintln!("writing needs --force: {replaced} existing {rules} would be replaced");
        } else {
            eprintln!(
                "nothing written: {replaced} existing {rules} would be replaced (listed on stdout); rerun with --force to replace {}",
                if replaced == 1 { "it" } else { "them" }
            );
            return FINDINGS;
        }
    }
    finish(&a, &merged.files, unmapped, errors, true)
}

/// Writes the files (each through a temporary file and a rename). Existing files are only
/// replaced with `replace`.
fn write_files(dir: &Path, files: &[writer::OutFile], replace: bool) -> Result<(), String> {
    if !replace && let Some(existing) = files.iter().map(|f| dir.join(&f.path)).find(|p| p.exists())
    {
        return Err(format!(
            "{} exists; use --force to overwrite",
            existing.display()
        ));
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let tmp = path.with_extension("idflow-tmp");
        std::fs::write(&tmp, &f.text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
