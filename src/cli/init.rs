//! `idflow init ad`: a ready deployment for one Active Directory forest with the Entra Connect
//! default rules (Entra Connect's express settings).
//!
//! It binds to the domain controller, reads the root DSE (the domain's and the forest's
//! naming contexts), the domain object and the domain's NetBIOS name (its `crossRef` in the
//! configuration partition), copies the default bundle (`rules/entra-default`, built into
//! idflow) into `DIR/bundle`, pulls the AD connector's schema from the server into it
//! (`idflow schema pull`), and writes `DIR/idflow.toml`: the forest as the connector
//! `contoso.com` (the name the default rules use) with its `Forest.*` and `Domain.*`
//! parameters, and Entra ID as a JSON-lines file (`entra.jsonl`) until a cloud connector is
//! configured. `--ou` limits the partition to one organizational unit. Existing files are
//! never replaced: a directory that has an `idflow.toml` or a `bundle` is refused.
//!
//! Exit 0 when the deployment is written and its bundle checks; 1 when the bundle has errors
//! with the pulled schema; 2 for usage, connection and I/O errors.

use super::{FINDINGS, OK, USAGE};
use crate::connector::ldap::schema as server;
use std::path::PathBuf;

/// The default bundle's files (`rules/entra-default`), relative path → text.
pub const DEFAULT_BUNDLE: &[(&str, &str)] = &[
    (
        "README.md",
        include_str!("../../rules/entra-default/README.md"),
    ),
    (
        "bundle.idf",
        include_str!("../../rules/entra-default/bundle.idf"),
    ),
    (
        "inbound/contoso-com-computer.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-computer.idf"),
    ),
    (
        "inbound/contoso-com-contact.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-contact.idf"),
    ),
    (
        "inbound/contoso-com-foreignsecurityprincipal.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-foreignsecurityprincipal.idf"),
    ),
    (
        "inbound/contoso-com-group.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-group.idf"),
    ),
    (
        "inbound/contoso-com-inetorgperson.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-inetorgperson.idf"),
    ),
    (
        "inbound/contoso-com-msds-device.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-msds-device.idf"),
    ),
    (
        "inbound/contoso-com-user.idf",
        include_str!("../../rules/entra-default/inbound/contoso-com-user.idf"),
    ),
    (
        "inbound/contoso-onmicrosoft-com-contact.idf",
        include_str!("../../rules/entra-default/inbound/contoso-onmicrosoft-com-contact.idf"),
    ),
    (
        "inbound/contoso-onmicrosoft-com-group.idf",
        include_str!("../../rules/entra-default/inbound/contoso-onmicrosoft-com-group.idf"),
    ),
    (
        "inbound/contoso-onmicrosoft-com-user.idf",
        include_str!("../../rules/entra-default/inbound/contoso-onmicrosoft-com-user.idf"),
    ),
    (
        "outbound/contoso-com-contact.idf",
        include_str!("../../rules/entra-default/outbound/contoso-com-contact.idf"),
    ),
    (
        "outbound/contoso-com-group.idf",
        include_str!("../../rules/entra-default/outbound/contoso-com-group.idf"),
    ),
    (
        "outbound/contoso-com-inetorgperson.idf",
        include_str!("../../rules/entra-default/outbound/contoso-com-inetorgperson.idf"),
    ),
    (
        "outbound/contoso-com-user.idf",
        include_str!("../../rules/entra-default/outbound/contoso-com-user.idf"),
    ),
    (
        "outbound/contoso-onmicrosoft-com-contact.idf",
        include_str!("../../rules/entra-default/outbound/contoso-onmicrosoft-com-contact.idf"),
    ),
    (
        "outbound/contoso-onmicrosoft-com-device.idf",
        include_str!("../../rules/entra-default/outbound/contoso-onmicrosoft-com-device.idf"),
    ),
    (
        "outbound/contoso-onmicrosoft-com-group.idf",
        include_str!("../../rules/entra-default/outbound/contoso-onmicrosoft-com-group.idf"),
    ),
    (
        "outbound/contoso-onmicrosoft-com-user.idf",
        include_str!("../../rules/entra-default/outbound/contoso-onmicrosoft-com-user.idf"),
    ),
    (
        "schema/contoso-com.idf",
        include_str!("../../rules/entra-default/schema/contoso-com.idf"),
    ),
    (
        "schema/contoso-onmicrosoft-com.idf",
        include_str!("../../rules/entra-default/schema/contoso-onmicrosoft-com.idf"),
    ),
    (
        "tests/invariants.idf",
        include_str!("../../rules/entra-default/tests/invariants.idf"),
    ),
];

/// The bundle's name of the forest connector.
pub const FOREST: &str = "contoso.com";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// A deployment for one Active Directory forest with the Entra Connect default rules.
    Ad(AdArgs),
}

#[derive(clap::Args, Debug)]
struct AdArgs {
    /// The domain controller: ldaps://HOST, or ldap://HOST (with --starttls).
    #[arg(long)]
    url: String,
    /// The DN to bind as (it needs the "Replicating Directory Changes" right for delta imports).
    #[arg(long)]
    bind_dn: String,
    /// The environment variable that holds the bind password.
    #[arg(long)]
    password_env: String,
    /// Read only this organizational unit (default: the whole domain).
    #[arg(long)]
    ou: Option<String>,
    /// The directory to write the deployment into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// StartTLS on an ldap:// URL.
    #[arg(long)]
    starttls: bool,
    /// A PEM file of the certificate authorities to trust.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// No certificate verification (for tests only).
    #[arg(long)]
    tls_insecure: bool,
}

pub fn run(args: Args) -> u8 {
    let What::Ad(a) = args.what;
    match init_ad(&a) {
        Ok(errors) => {
            outln!("wrote {}", a.dir.join("idflow.toml").display());
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

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The DNS name of a `DC=...` DN (`DC=contoso,DC=com` → `contoso.com`).
fn dns_name(dn: &str) -> String {
    dn.split(',')
        .filter_map(|r| {
            let (t, v) = r.split_once('=')?;
            t.trim()
                .eq_ignore_ascii_case("DC")
                .then(|| v.trim().to_string())
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The connector table of idflow.toml (without parameters and partitions).
fn connector_table(a: &AdArgs) -> String {
    let mut t = format!(
        "[connectors.{}]\nkind = \"ad\"\nurl = {}\nbind_dn = {}\npassword_env = {}\n",
        q(FOREST),
        q(&a.url),
        q(&a.bind_dn),
        q(&a.password_env)
    );
    if a.starttls {
        t.push_str("starttls = true\n");
    }
    if let Some(ca) = &a.ca_file {
        t.push_str(&format!("ca_file = {}\n", q(&ca.display().to_string())));
    }
    if a.tls_insecure {
        t.push_str("tls_insecure = true   # for tests only\n");
    }
    t
}

fn init_ad(a: &AdArgs) -> Result<Vec<String>, String> {
    let toml_path = a.dir.join("idflow.toml");
    let bundle = a.dir.join("bundle");
    for p in [&toml_path, &bundle, &a.dir.join("entra.jsonl")] {
        if p.exists() {
            return Err(format!(
                "{} exists: idflow init writes a new deployment and replaces nothing",
                p.display()
            ));
        }
    }
    // Connect with the connection settings alone.
    let probe = format!(
        "bundle = \"bundle\"\n\n{}\n[[connectors.{}.partitions]]\nname = \"DC=probe\"\n",
        connector_table(a),
        q(FOREST)
    );
    let deployment = crate::config::parse(&toml_path, &probe).map_err(|errs| join_errors(&errs))?;
    let cfg = deployment.connector(FOREST).ok_or("no connector")?.clone();
    let ldap = cfg.ldap.clone().ok_or("no LDAP settings")?;
    let mut conn =
        crate::connector::ldap::conn::Connection::open(&cfg, &ldap).map_err(|e| e.to_string())?;
    let root = server::root_dse(&mut conn).map_err(|e| e.to_string())?;
    let domain_dn = server::first(&root, "defaultNamingContext").ok_or(
        "the root DSE has no defaultNamingContext: not an Active Directory domain controller",
    )?;
    let forest_dn = server::first(&root, "rootDomainNamingContext").unwrap_or(domain_dn.clone());
    let config_dn = server::first(&root, "configurationNamingContext")
        .ok_or("the root DSE has no configurationNamingContext")?;
    // The domain object, and the domains' NetBIOS names from their crossRefs.
    let domain = read_one(
        &mut conn,
        &domain_dn,
        "(objectClass=domain)",
        vec!["dc", "objectSid"],
    )?;
    if domain.is_none() {
        return Err(format!("{domain_dn}: no domain object"));
    }
    let netbios = |conn: &mut crate::connector::ldap::conn::Connection, nc: &str| {
        let filter = format!(
            "(&(objectClass=crossRef)(nCName={}))",
            ldap3::ldap_escape(nc)
        );
        let partitions = format!("CN=Partitions,{config_dn}");
        search_first(conn, &partitions, &filter, "nETBIOSName")
    };
    let domain_netbios = netbios(&mut conn, &domain_dn)?.ok_or_else(|| {
        format!("no NetBIOS name for {domain_dn} under CN=Partitions,{config_dn}")
    })?;
    let forest_netbios = netbios(&mut conn, &forest_dn)?.unwrap_or(domain_netbios.clone());
    if let Some(ou) = &a.ou
        && read_one(&mut conn, ou, "(objectClass=*)", vec!["1.1"])?.is_none()
    {
        return Err(format!("--ou {ou}: no such entry"));
    }
    drop(conn);

    // The bundle.
    for (rel, text) in DEFAULT_BUNDLE {
        let p = bundle.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    // idflow.toml.
    let include = match &a.ou {
        Some(ou) => format!("include = [{}]\n", q(ou)),
        None => String::new(),
    };
    let text = format!(
        "# Written by `idflow init ad`: Entra Connect's express settings for the forest {forest}.\n\
         bundle = \"bundle\"\nstate = \"idflow.db\"\ndelete_threshold = 500\n\n\
         # The Active Directory forest (`contoso.com` is the default rules' name for it).\n\
         {table}\n\
         [connectors.{name}.parameters]\n\"Forest.FQDN\" = {ffqdn}\n\"Forest.LDAP\" = {fldap}\n\
         \"Forest.Netbios\" = {fnb}\n\n\
         [[connectors.{name}.partitions]]\nname = {dldap}\n{include}\n\
         [connectors.{name}.partitions.parameters]\n\"Domain.FQDN\" = {dfqdn}\n\
         \"Domain.LDAP\" = {dldap}\n\"Domain.Netbios\" = {dnb}\n\n\
         # Entra ID: a JSON-lines file until a cloud connector (kind = \"graph\") is configured.\n\
         [connectors.\"contoso.onmicrosoft.com\"]\nkind = \"jsonl\"\npath = \"entra.jsonl\"\n",
        forest = dns_name(&forest_dn),
        table = connector_table(a),
        name = q(FOREST),
        ffqdn = q(&dns_name(&forest_dn)),
        fldap = q(&forest_dn),
        fnb = q(&forest_netbios),
        dldap = q(&domain_dn),
        dfqdn = q(&dns_name(&domain_dn)),
        dnb = q(&domain_netbios),
    );
    crate::config::parse(&toml_path, &text).map_err(|errs| join_errors(&errs))?;
    crate::connector::ldif::write_atomic(&toml_path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", toml_path.display()))?;
    // The forest's schema, pulled into the bundle.
    let (_, errors) = super::schema::pull(FOREST, &toml_path, None, &[])?;
    Ok(errors)
}

fn join_errors(errs: &[crate::config::ConfigError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entry at `dn` matching `filter`; None when there is none.
fn read_one(
    conn: &mut crate::connector::ldap::conn::Connection,
    dn: &str,
    filter: &str,
    attrs: Vec<&str>,
) -> Result<Option<ldap3::SearchEntry>, String> {
    let timeout = conn.timeout;
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(dn, ldap3::Scope::Base, filter, attrs)
        .map_err(|e| conn.error(&format!("the read of `{dn}`"), e).to_string())?;
    if r.1.rc == 32 {
        return Ok(None);
    }
    if r.1.rc != 0 {
        return Err(conn
            .error(
                &format!("the read of `{dn}`"),
                crate::connector::ldap::write::describe(&r.1),
            )
            .to_string());
    }
    Ok(r.0
        .into_iter()
        .next()
        .and_then(|re| crate::connector::ldap::read::construct(re).ok()))
}

/// The first value of `attr` of the first entry under `base` matching `filter`.
fn search_first(
    conn: &mut crate::connector::ldap::conn::Connection,
    base: &str,
    filter: &str,
    attr: &str,
) -> Result<Option<String>, String> {
    let timeout = conn.timeout;
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(base, ldap3::Scope::Subtree, filter, vec![attr])
        .map_err(|e| {
            conn.error(&format!("the search of `{base}`"), e)
                .to_string()
        })?;
    Ok(r.0
        .into_iter()
        .filter_map(|re| crate::connector::ldap::read::construct(re).ok())
        .find_map(|e| server::first(&e, attr)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_bundle_is_the_whole_default_bundle() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
        let mut files = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    files.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        let built_in: Vec<&str> = super::DEFAULT_BUNDLE.iter().map(|(p, _)| *p).collect();
        assert_eq!(files, built_in);
    }

    #[test]
    fn dns_names_of_domain_dns() {
        assert_eq!(super::dns_name("DC=idflow,DC=test"), "idflow.test");
        assert_eq!(super::dns_name("OU=x,DC=a, dc=b"), "a.b");
    }
}
