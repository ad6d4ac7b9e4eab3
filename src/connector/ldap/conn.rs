//! The connection to an LDAP server: failover over the configured URLs, TLS, the bind.
//!
//! The bind password is read from the connector's secret (an environment variable or a file)
//! when the connection is made and is dropped once the bind is sent; no message of this
//! module holds it (a server's answer to a failed bind is passed on, the password never).

use super::super::ConnectorError;
use crate::config::{ConnectorConfig, LdapConfig, Secret};
use ldap3::{LdapConn, LdapConnSettings};
use std::sync::Arc;

/// An open, bound connection and the URL it went to.
pub struct Connection {
    pub ldap: LdapConn,
    pub url: String,
    pub timeout: std::time::Duration,
}

impl Connection {
    /// Connects to the first URL that answers and binds.
    pub fn open(cfg: &ConnectorConfig, ldap: &LdapConfig) -> Result<Connection, ConnectorError> {
        let password = match (&ldap.bind_dn, &cfg.secret) {
            (Some(_), Some(s)) => Some(read_secret(&cfg.name, s)?),
            _ => None,
        };
        let tls = tls_config(&cfg.name, ldap)?;
        let mut failures = Vec::new();
        for url in &ldap.urls {
            match connect(url, ldap, tls.clone(), password.as_deref()) {
                Ok(c) => return Ok(c),
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(ConnectorError {
            source: ldap.urls.join(", "),
            line: None,
            message: format!("cannot connect: {}", failures.join("; ")),
        })
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&mut self) -> bool {
        self.ldap.is_closed()
    }

    /// An error of an operation on this server.
    pub fn error(&self, what: &str, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError {
            source: self.url.clone(),
            line: None,
            message: format!("{what}: {e}"),
        }
    }
}

fn connect(
    url: &str,
    ldap: &LdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    password: Option<&str>,
) -> Result<Connection, String> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(ldap.connect_timeout)
        .set_starttls(ldap.starttls && url.to_ascii_lowercase().starts_with("ldap://"))
        .set_no_tls_verify(ldap.tls_insecure);
    if let Some(t) = tls {
        settings = settings.set_config(t);
    }
    let mut conn = LdapConn::with_settings(settings, url).map_err(|e| e.to_string())?;
    if let (Some(dn), Some(pw)) = (&ldap.bind_dn, password) {
        let res = conn
            .with_timeout(ldap.timeout)
            .simple_bind(dn, pw)
            .map_err(|e| e.to_string())?;
        if res.rc != 0 {
            return Err(format!(
                "the bind as `{dn}` was refused: {}",
                super::write::describe(&res)
            ));
        }
    }
    Ok(Connection {
        ldap: conn,
        url: url.to_string(),
        timeout: ldap.timeout,
    })
}

/// The bind password: the environment variable's value or the file's content (without the
/// final line break).
fn read_secret(connector: &str, s: &Secret) -> Result<String, ConnectorError> {
    let fail = |message: String| ConnectorError {
        source: connector.to_string(),
        line: None,
        message,
    };
    match s {
        Secret::Env(var) => std::env::var(var).map_err(|_| {
            fail(format!(
                "password_env: the environment variable `{var}` is not set"
            ))
        }),
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|t| t.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                fail(format!(
                    "password_file: cannot read {}: {}",
                    path.display(),
                    e.kind()
                ))
            }),
    }
}

/// The TLS client configuration trusting `ca_file`'s authorities; None for the default (the
/// system's authorities, or no verification with `tls_insecure`).
fn tls_config(
    connector: &str,
    ldap: &LdapConfig,
) -> Result<Option<Arc<rustls::ClientConfig>>, ConnectorError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let Some(path) = &ldap.ca_file else {
        return Ok(None);
    };
    let fail = |message: String| ConnectorError {
        source: connector.to_string(),
        line: None,
        message: format!("ca_file {}: {message}", path.display()),
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))?;
    for c in certs {
        let c = c.map_err(|e| fail(e.to_string()))?;
        roots.add(c).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    // The process's crypto provider: ring, the one ldap3 is built with.
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}
