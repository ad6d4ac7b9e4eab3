//! `idflow import entra`: converts an Entra Connect configuration into a bundle.
//!
//! SOURCE is a `Get-ADSyncServerConfiguration` export folder or a Synchronization Rules Editor
//! PowerShell script (`.ps1`). The generated bundle is formatted and checked before anything is
//! written.
//!
//! Exit codes: 0 only when every rule was imported and the result checks without errors;
//! 1 when anything was skipped or could not be mapped (a script without any rule included) or
//! the result has check errors — then nothing is written unless `--allow-partial`, and the
//! exit code is 1 whatever it wrote; 2 for usage and I/O errors and scripts that cannot be
//! read (syntax, a run-time value `--var` does not give).

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::frontend;
use crate::import::connectors::{self, Choice, Known};
use crate::import::{model::Config, powershell, writer, xml};
use crate::source::SourceMap;
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
    /// The bundle directory to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Write even when some constructs could not be mapped or the result has errors (they are
    /// reported, and the exit code is still 1).
    #[arg(long)]
    allow_partial: bool,
    /// Overwrite files in a non-empty output directory.
    #[arg(long)]
    force: bool,
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

fn read_source(path: &Path, options: &powershell::Options) -> Result<Config, String> {
    if path.is_dir() {
        if !options.vars.is_empty() {
            return Err(format!(
                "--var gives values to a script's variables; {} is an export folder",
                path.display()
            ));
        }
        xml::read(path)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        powershell::read_with(path, &text, options)
    }
}

fn entra(a: EntraArgs) -> u8 {
    let mut options = powershell::Options::default();
    for v in &a.vars {
        match v.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                options.vars.insert(
                    name.trim().trim_start_matches('$').to_string(),
                    value.to_string(),
                );
            }
            _ => {
                eprintln!("error: --var `{v}` must be NAME=VALUE");
                return USAGE;
            }
        }
    }
    let mut config = match read_source(&a.source, &options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    let mut options = writer::Options {
        bundle_name: a.name.clone().unwrap_or_else(|| {
            a.output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into())
        }),
        ..Default::default()
    };
    let mut choices = Vec::new();
    for c in &a.connectors {
        match c.split_once('=') {
            Some((key, name)) if !key.trim().is_empty() && !name.is_empty() => {
                choices.push(Choice {
                    key: key.trim().to_string(),
                    name: name.to_string(),
                });
            }
            _ => {
                eprintln!("error: --connector `{c}` must be KEY=NAME");
                return USAGE;
            }
        }
    }
    let rules_only = config.connectors.is_empty() && config.metaverse.is_empty();
    if rules_only && config.rules.is_empty() && config.unmapped.is_empty() {
        config.unmapped.push(crate::import::model::Unmapped {
            source: a.source.clone(),
            context: "script".into(),
            what: "the script adds no synchronization rule".into(),
        });
    }
    let mut warnings = Vec::new();
    if rules_only {
        // A script's connectors are resolved against the bundle the rules go into.
        let known = bundle_connectors(&a.output);
        for c in connectors::resolve(&mut config, known.as_deref(), &choices) {
            warnings.push(format!(
                "--connector {}={} is not used: no rule of the script refers to `{}`",
                c.key, c.name, c.key
            ));
        }
    } else {
        let ids: Vec<String> = config
            .connectors
            .iter()
            .map(|c| writer::normalize_id(&c.id))
            .collect();
        for c in &choices {
            let id = writer::normalize_id(&c.key);
            if !ids.contains(&id) {
                warnings.push(format!(
                    "--connector {}={} is not used: the export has no connector {id}",
                    c.key, c.name
                ));
            }
            options.connector_names.insert(id, c.name.clone());
        }
    }
    let mut files = writer::write(&mut config, &options);
    // A script's rules join the existing rule file of their group, after its rules.
    let mut merged = Vec::new();
    if rules_only {
        for f in &mut files {
            let path = a.output.join(&f.path);
            if let Ok(existing) = std::fs::read_to_string(&path) {
                let text = format!("{}\n{}", existing.trim_end(), f.text);
                match crate::syntax::format(crate::source::FileId(0), &text) {
                    Ok(t) => f.text = t,
                    Err(_) => {
                        eprintln!(
                            "error: {} does not parse; fix it before adding rules to it",
                            path.display()
                        );
                        return FINDINGS;
                    }
                }
                merged.push(f.path.clone());
            }
        }
    }

    // Check the result as one bundle. A script's rules are checked together with the output
    // directory's bundle when there is one; without a schema they are only parsed.
    let mut map = SourceMap::new();
    for f in files.iter().filter(|f| f.path.ends_with(".idf")) {
        map.add(a.output.join(&f.path).display().to_string(), f.text.clone());
    }
    let generated = map.files().len();
    if rules_only && a.output.is_dir() {
        let existing =
            crate::source::collect_idf_files(std::slice::from_ref(&a.output)).unwrap_or_default();
        for p in existing {
            let name = p.display().to_string();
            if map.files().iter().any(|f| f.name == name) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&p) {
                map.add(name, text);
            }
        }
    }
    let checked = frontend::check(&map);
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
    let with_schema = !rules_only || map.files().len() > generated;
    let diagnostics: Vec<_> = checked
        .diagnostics
        .iter()
        .filter(|d| with_schema || matches!(&d.code[..3], "E00"))
        .collect();
    if !with_schema {
        eprintln!(
            "no bundle in {}: the rules are parsed but not checked against a schema",
            a.output.display()
        );
    }
    for d in &diagnostics {
        eprint!("{}", render::human(&map, d, style));
    }
    for n in &config.notes {
        if n.context == "warning" {
            eprintln!("warning: {}", n.what);
        } else {
            eprintln!("note: {}: {}: {}", n.source.display(), n.context, n.what);
        }
    }
    for w in &warnings {
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
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors
        + warnings.len()
        + config
            .notes
            .iter()
            .filter(|n| n.context == "warning")
            .count();
    eprintln!(
        "{} unmapped construct{}, {} error{}, {} warning{}",
        config.unmapped.len(),
        if config.unmapped.len() == 1 { "" } else { "s" },
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" },
    );
    let clean = config.unmapped.is_empty() && errors == 0;
    if !clean && !a.allow_partial {
        eprintln!(
            "nothing written: rerun with --allow-partial to write the bundle anyway (without the unmapped constructs, with the errors above)"
        );
        return FINDINGS;
    }
    if let Err(e) = write_files(&a.output, &files, a.force, &merged) {
        eprintln!("error: {e}");
        return USAGE;
    }
    eprintln!("wrote {} files to {}", files.len(), a.output.display());
    // What was skipped stays skipped: written or not, only a complete, clean import is 0.
    if clean { OK } else { FINDINGS }
}

/// The connectors of the bundle in `dir`, with the Entra identifiers its `idflow.toml` gives
/// them; `None` when there is no bundle with a schema there.
fn bundle_connectors(dir: &Path) -> Option<Vec<Known>> {
    if !dir.is_dir() {
        return None;
    }
    let paths = crate::source::collect_idf_files(&[dir.to_path_buf()]).ok()?;
    let map = crate::source::load(&paths).ok()?;
    let checked = frontend::check(&map);
    let schema = &checked.bundle.schema;
    if schema.connectors.is_empty() && !schema.has_metaverse {
        return None;
    }
    let ids = entra_ids(&dir.join("idflow.toml"));
    Some(
        schema
            .connectors
            .values()
            .map(|c| Known {
                name: c.name.clone(),
                kind: c.kind.clone(),
                entra_id: ids.get(&c.name).cloned(),
            })
            .collect(),
    )
}

/// `[connectors.NAME] entra_id = "{guid}"` of a deployment file.
fn entra_ids(path: &Path) -> std::collections::BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Default::default();
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return Default::default();
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

/// Writes the files (each through a temporary file and a rename). Existing files are only
/// replaced with `force`, or when they are rule files the import `merged` into.
fn write_files(
    dir: &Path,
    files: &[writer::OutFile],
    force: bool,
    merged: &[String],
) -> Result<(), String> {
    if !force
        && let Some(existing) = files
            .iter()
            .filter(|f| !merged.contains(&f.path))
            .map(|f| dir.join(&f.path))
            .find(|p| p.exists())
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
