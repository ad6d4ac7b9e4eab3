//! `idflow import entra`: converts an Entra Connect configuration into a bundle.
//!
//! SOURCE is a `Get-ADSyncServerConfiguration` export folder or a Synchronization Rules Editor
//! PowerShell script (`.ps1`). The generated bundle is formatted and checked before anything is
//! written. Exit 0 when everything came through and checks without errors; exit 1 when
//! constructs could not be mapped or the result has check errors (then nothing is written
//! unless `--allow-partial`); exit 2 for usage and I/O errors.

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::frontend;
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
    /// Write the bundle even when some constructs could not be mapped (they are reported).
    #[arg(long)]
    allow_partial: bool,
    /// Overwrite files in a non-empty output directory.
    #[arg(long)]
    force: bool,
    /// The bundle's name (default: the output directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Name a connector a script refers to by id: ID=NAME (repeatable).
    #[arg(long = "connector", value_name = "ID=NAME")]
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
    for c in &a.connectors {
        match c.split_once('=') {
            Some((id, name)) if !id.is_empty() && !name.is_empty() => {
                options
                    .connector_names
                    .insert(writer::normalize_id(id), name.to_string());
            }
            _ => {
                eprintln!("error: --connector `{c}` must be ID=NAME");
                return USAGE;
            }
        }
    }
    let mut files = writer::write(&mut config, &options);
    let rules_only = config.connectors.is_empty() && config.metaverse.is_empty();
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
    for u in &config.unmapped {
        eprintln!(
            "unmapped: {}: {}: {}",
            u.source.display(),
            u.context,
            u.what
        );
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    eprintln!(
        "{} unmapped construct{}, {} error{}, {} warning{}",
        config.unmapped.len(),
        if config.unmapped.len() == 1 { "" } else { "s" },
        errors,
        if errors == 1 { "" } else { "s" },
        warnings,
        if warnings == 1 { "" } else { "s" },
    );
    if (!config.unmapped.is_empty() || errors > 0) && !a.allow_partial {
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
    if errors > 0 { FINDINGS } else { OK }
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
