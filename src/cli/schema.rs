//! `idflow schema pull CONNECTOR`: reads a directory connector's schema from its server and
//! writes the connector's schema file of the bundle.
//!
//! The object types are the ones the bundle declares for the connector (or `--type`); each
//! gets every attribute the server's schema allows for its class (its superclasses' and
//! auxiliary classes' too), typed from the attribute's syntax (DN → reference, integer,
//! boolean, octet string and SID → binary, the rest string; `multi` unless single-valued). An
//! attribute the bundle declares keeps its declared type (the bundle's rules are written for
//! it), and one the server does not know is kept as declared, so the rules still check. The anchor and the parameters stay as the bundle declares
//! them. The text is formatted as `idflow fmt` does, and the bundle is checked with it.
//!
//! Exit 0 when the file is written and the bundle checks; 1 when the bundle has errors with
//! the new file (it is written all the same, to be looked at); 2 for usage, configuration,
//! connection and I/O errors.

use super::{FINDINGS, OK, USAGE};
use crate::connector::ldap::schema::{self as server, ServerSchema};
use crate::sema::types::Base;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Read a directory connector's schema from its server and write its schema file.
    Pull(PullArgs),
}

#[derive(clap::Args, Debug)]
struct PullArgs {
    /// The connector (as idflow.toml and the bundle name it).
    connector: String,
    /// The deployment file.
    #[arg(long, default_value = "idflow.toml")]
    config: PathBuf,
    /// The directory to write the schema file to (default: the bundle's file that declares
    /// the connector, else the bundle's `schema/`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// An object type (object class) to write; repeatable (default: the types the bundle
    /// declares for the connector).
    #[arg(long = "type")]
    types: Vec<String>,
}

pub fn run(args: Args) -> u8 {
    let What::Pull(a) = args.what;
    match pull(&a.connector, &a.config, a.out.as_deref(), &a.types) {
        Ok((path, errors)) => {
            outln!("wrote {}", path.display());
            if errors.is_empty() {
                OK
            } else {
                for e in errors {
                    eprintln!("error: {e}");
                }
                FINDINGS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            USAGE
        }
    }
}

/// The file name of a connector's schema file: its name with every other character than
/// letters and digits made `-` (`contoso.com` → `contoso-com.idf`).
pub fn file_name(connector: &str) -> String {
    let slug: String = connector
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{slug}.idf")
}

/// Pulls the schema of `connector` of the deployment `config` and writes its schema file;
/// returns the file and the bundle's check errors with it.
pub fn pull(
    connector: &str,
    config: &Path,
    out: Option<&Path>,
    types: &[String],
) -> Result<(PathBuf, Vec<String>), String> {
    let deployment = crate::config::load(config).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let cfg = deployment
        .connector(connector)
        .ok_or_else(|| format!("{}: no connector `{connector}`", config.display()))?
        .clone();
    let ldap = cfg.ldap.clone().ok_or_else(|| {
        format!("connector `{connector}` is not a directory (kind = \"ldap\" or \"ad\")")
    })?;
    let files = crate::source::collect_idf_files(std::slice::from_ref(&deployment.bundle))
        .map_err(|e| e.to_string())?;
    let map = crate::source::load(&files).map_err(|e| e.to_string())?;
    let checked = crate::frontend::check(&map);
    let def = checked.bundle.schema.connectors.get(connector);
    let kind = def
        .map(|d| d.kind.clone())
        .unwrap_or_else(|| cfg.kind.clone());
    let wanted: Vec<String> = if types.is_empty() {
        def.map(|d| d.objects.keys().cloned().collect())
            .unwrap_or_default()
    } else {
        types.to_vec()
    };
    if wanted.is_empty() {
        return Err(format!(
            "the bundle declares no object types for `{connector}`: name them with --type"
        ));
    }
    let mut conn =
        crate::connector::ldap::conn::Connection::open(&cfg, &ldap).map_err(|e| e.to_string())?;
    let schema = server::read(&mut conn, ldap.flavor).map_err(|e| e.to_string())?;
    let default_anchor = ldap.anchor_attribute.clone();
    let text = render(
        connector,
        &kind,
        def,
        &wanted,
        &schema,
        &default_anchor,
        &conn.url,
    )?;
    let text = crate::syntax::format(crate::source::FileId(0), &text)
        .map_err(|e| format!("the generated schema does not format: {e:?}"))?;
    // Where to write: --out, else the file that declares the connector (when it declares
    // nothing else), else the bundle's schema/ directory.
    let declared_in = def.map(|d| PathBuf::from(&map.get(d.file).name));
    let only = declared_in.as_ref().is_some_and(|file| {
        map.files()
            .iter()
            .find(|f| Path::new(&f.name) == file.as_path())
            .is_some_and(|f| crate::syntax::parse(f.id, &f.text).0.file.items.len() == 1)
    });
    let path = match (out, &declared_in) {
        (Some(dir), _) => dir.join(file_name(connector)),
        (None, Some(file)) => {
            if !only {
                return Err(format!(
                    "{} declares `{connector}` with other items: write with --out DIR and move the connector's declaration",
                    file.display()
                ));
            }
            file.clone()
        }
        (None, None) => deployment.bundle.join("schema").join(file_name(connector)),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::connector::ldif::write_atomic(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The bundle with the new file.
    let mut files = crate::source::collect_idf_files(std::slice::from_ref(&deployment.bundle))
        .map_err(|e| e.to_string())?;
    if out.is_some() && !files.contains(&path) {
        if declared_in.is_some() && !only {
            // The connector is declared with other items (the metaverse, rules): the file
            // cannot stand in for its declaration, so there is nothing to check it with.
            eprintln!(
                "note: {} is not checked with the bundle: `{connector}` is declared in a file with other items",
                path.display()
            );
            return Ok((path, Vec::new()));
        }
        // Written outside the bundle: checked in place of the connector's declaration.
        files.retain(|f| Some(f) != declared_in.as_ref());
        files.push(path.clone());
    }
    let map = crate::source::load(&files).map_err(|e| e.to_string())?;
    let checked = crate::frontend::check(&map);
    let errors = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}: {}", map.get(d.file).name, d.code, d.message))
        .collect();
    Ok((path, errors))
}

/// Names the grammar does not take as attribute names (they may follow a name).
const NOT_NAMES: &[&str] = &["param", "multi", "unique", "case-sensitive"];

/// The connector block for `wanted` types from the server's schema.
fn render(
    connector: &str,
    kind: &str,
    def: Option<&crate::sema::schema::ConnectorDef>,
    wanted: &[String],
    schema: &ServerSchema,
    default_anchor: &str,
    url: &str,
) -> Result<String, String> {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Pulled from {url} by `idflow schema pull {connector}`: every attribute the server's"
    );
    let _ = writeln!(t, "# schema allows for each object class.");
    let mut body = String::new();
    let mut own: Vec<String> = Vec::new();
    if let Some(d) = def {
        for p in d.params.values() {
            match p.base {
                Base::Str => {
                    let _ = writeln!(body, "  param {}", p.name);
                }
                b => {
                    let _ = writeln!(body, "  param {}: {}", p.name, server::type_name(b));
                }
            }
        }
    }
    for ty in wanted {
        let declared =
            def.and_then(|d| d.objects.values().find(|o| o.name.eq_ignore_ascii_case(ty)));
        let Some(names) = schema.attributes_of(ty) else {
            return Err(format!("the server's schema has no object class `{ty}`"));
        };
        let class = schema
            .classes
            .get(&ty.to_lowercase())
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| ty.clone());
        let name = declared.map(|o| o.name.clone()).unwrap_or(class);
        let anchor = declared
            .and_then(|o| o.anchor.clone())
            .unwrap_or_else(|| default_anchor.to_string());
        // name (lower-cased) → (spelling, type, multi, on the server)
        let mut attrs: BTreeMap<String, (String, Base, bool, bool)> = BTreeMap::new();
        for n in names {
            if n.eq_ignore_ascii_case("objectClass")
                || NOT_NAMES.iter().any(|k| n.eq_ignore_ascii_case(k))
            {
                continue;
            }
            let (base, single) = schema
                .attrs
                .get(&n.to_lowercase())
                .map(|(_, a)| (a.base, a.single))
                .unwrap_or((Base::Str, false));
            attrs.insert(n.to_lowercase(), (n, base, !single, true));
        }
        if let Some(a) = schema.attrs.get(&anchor.to_lowercase()) {
            attrs
                .entry(anchor.to_lowercase())
                .or_insert_with(|| (a.0.clone(), a.1.base, false, true));
        }
        if let Some(o) = declared {
            for a in o.attrs.values() {
                let key = a.name.to_lowercase();
                // The DN is every object's, never declared.
                if key == "dn" {
                    continue;
                }
                match attrs.get_mut(&key) {
                    // The bundle's spelling and type, so its rules keep checking (Entra's AD
                    // connector types some attributes its own way).
                    Some(e) => {
                        e.0 = a.name.clone();
                        e.1 = a.base;
                        e.2 = a.multi;
                    }
                    None => {
                        attrs.insert(key, (a.name.clone(), a.base, a.multi, false));
                    }
                }
            }
        }
        let _ = writeln!(body, "  object {name} anchor {anchor} {{");
        for (_, (n, base, multi, on_server)) in attrs {
            let _ = write!(body, "    {n} {}", server::type_name(base));
            if multi {
                body.push_str(" multi");
            }
            if !on_server {
                own.push(format!("{name}.{n}"));
            }
            body.push('\n');
        }
        body.push_str("  }\n");
    }
    if !own.is_empty() {
        let _ = writeln!(
            t,
            "# Declared by the bundle but not on the server (kept as declared): {}.",
            own.join(", ")
        );
    }
    let _ = writeln!(t, "connector \"{connector}\" {kind} {{");
    t.push_str(&body);
    t.push_str("}\n");
    Ok(t)
}
