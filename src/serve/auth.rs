//! Access to the HTTP side of `idflow serve`: tokens, roles and browser sessions.
//!
//! Consumes: the token file (`[serve] tokens_file`), the `Authorization: Bearer` header and the
//! session cookie of requests. Produces: new tokens (printed once by `idflow token create`; the
//! file keeps only their SHA-256), the token behind a request and its [`Role`], sessions for
//! browsers (a random id in an HttpOnly, SameSite=Strict cookie, with a CSRF token of its own)
//! and one-time login codes. A presented token is hashed and compared with every stored hash in
//! constant time, so neither the answer's content nor its timing tells how close a guess was.
//! Tokens, session ids and codes are never logged.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Pages, API, metrics.
    Reader,
    /// Also the actions: run a cycle now, allow deletes once, acknowledge an alert.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "reader" => Some(Role::Reader),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// One entry of the token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, hexadecimal.
    pub hash: String,
    /// When it was created (RFC 3339).
    pub created: String,
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

const HEADER: &str = "# idflow serve access tokens: NAME ROLE SHA-256-OF-TOKEN CREATED.\n\
# Written by `idflow token create|revoke`; the tokens themselves are not kept.\n";

/// `n` random bytes from the operating system, as unpadded base64url.
pub fn random_text(n: usize) -> Result<String, String> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "the system's random number generator failed".to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// SHA-256 of `s`, hexadecimal.
pub fn hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the token file (a missing file has no tokens).
pub fn load(path: &Path) -> Result<Vec<TokenEntry>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "{}:{}: expected NAME ROLE HASH CREATED",
                path.display(),
                i + 1
            )
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, role, hash, created] = f.as_slice() else {
            return Err(bad());
        };
        let role = Role::parse(role).ok_or_else(bad)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        out.push(TokenEntry {
            name: name.to_string(),
            role,
            hash: hash.to_ascii_lowercase(),
            created: created.to_string(),
        });
    }
    Ok(out)
}

fn save(path: &Path, entries: &[TokenEntry]) -> Result<(), String> {
    let mut text = HEADER.to_string();
    for e in entries {
        text.push_str(&format!(
            "{} {} {} {}\n",
            e.name,
            e.role.as_str(),
            e.hash,
            e.created
        ));
    }
    // A new file is created readable by its owner only; the atomic replace keeps that mode.
    crate::files::create_private(path).map_err(|e| e.to_string())?;
    crate::files::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}

/// A token name: letters, digits, `.`, `_`, `-` (it is written in the audit trail).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Creates a token named `name` with `role`, stores its hash, and returns the token.
pub fn create(path: &Path, name: &str, role: Role) -> Result<String, String> {
    if !valid_name(name) {
        return Err(format!(
            "invalid token name {name:?}: letters, digits, '.', '_', '-', '@' (at most 64)"
        ));
    }
    let mut entries = load(path)?;
    if entries.iter().any(|e| e.name == name) {
        return Err(format!(
            "a token named {name:?} exists: revoke it first (idflow token revoke {name})"
        ));
    }
    let token = format!("idf_{}", random_text(32)?);
    entries.push(TokenEntry {
        name: name.to_string(),
        role,
        hash: hash(&token),
        created: jiff::Timestamp::now().to_string(),
    });
    save(path, &entries)?;
    Ok(token)
}

/// Removes the token named `name`; false when there is none.
pub fn revoke(path: &Path, name: &str) -> Result<bool, String> {
    let mut entries = load(path)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    save(path, &entries)?;
    Ok(true)
}

/// The entry whose hash is the hash of `token`. Every entry is compared, in constant time.
pub fn check(entries: &[TokenEntry], token: &str) -> Option<Principal> {
    let presented = hash(token);
    let mut found = None;
    for e in entries {
        if bool::from(e.hash.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(Principal {
                name: e.name.clone(),
                role: e.role,
            });
        }
    }
    found
}

/// How long a browser session lasts without being used.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// How long a one-time login code is valid.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// A browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub who: Principal,
    /// The token state-changing page requests carry.
    pub csrf: String,
    last_used: Instant,
}

/// The sessions and one-time login codes of this process (in memory: a restart logs every
/// browser out). Both are keyed by the SHA-256 of the secret.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    codes: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Sessions {
    /// Starts a session for `who`: returns the session id (the cookie's value).
    pub fn start(&self, who: Principal) -> Result<String, String> {
        let id = random_text(32)?;
        let csrf = random_text(32)?;
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        map.insert(
            hash(&id),
            Session {
                who,
                csrf,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let key = hash(id);
        let now = Instant::now();
        let s = map.get_mut(&key)?;
        if now.duration_since(s.last_used) >= SESSION_IDLE {
            map.remove(&key);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Ends the session with this id.
    pub fn end(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&hash(id));
    }

    /// A code that logs a browser in as `who` once, within [`CODE_LIFETIME`].
    pub fn new_code(&self, who: Principal) -> Result<String, String> {
        let code = random_text(32)?;
        let mut map = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, t)| now.duration_since(*t) < CODE_LIFETIME);
        map.insert(hash(&code), (who, now));
        Ok(code)
    }

    /// Takes a login code: the principal it was made for, once.
    pub fn take_code(&self, code: &str) -> Option<Principal> {
        let mut map = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        let (who, made) = map.remove(&hash(code))?;
        (made.elapsed() < CODE_LIFETIME).then_some(who)
    }
}

/// Compares two secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_only() {
        let d = std::env::temp_dir().join(format!("idflow-auth-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("tokens");
        let _ = std::fs::remove_file(&f);
        let t = create(&f, "ops", Role::Operator).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains(&t) && text.contains(&hash(&t)));
        let entries = load(&f).unwrap();
        assert_eq!(check(&entries, &t).unwrap().role, Role::Operator);
        assert!(check(&entries, "idf_wrong").is_none());
        assert!(create(&f, "ops", Role::Reader).is_err());
        assert!(revoke(&f, "ops").unwrap());
        assert!(check(&load(&f).unwrap(), &t).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_login_code_works_once() {
        let s = Sessions::default();
        let who = Principal {
            name: "r".into(),
            role: Role::Reader,
        };
        let c = s.new_code(who.clone()).unwrap();
        assert_eq!(s.take_code(&c), Some(who));
        assert_eq!(s.take_code(&c), None);
    }
}
