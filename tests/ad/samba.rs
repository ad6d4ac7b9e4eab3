//! One Samba AD domain controller for the Active Directory tests (tests/ad.rs).
//!
//! Samba binds the default LDAP ports (389, 636) on 127.0.0.1 and needs root, so there is one
//! domain controller per test binary run, shared by every test and used by one test at a time
//! ([`Samba::get`] hands out a lock). The domain is provisioned once per Samba version and kept
//! as a tarball under `~/.cache/idflow/` (provisioning takes about 10 s); each run unpacks it
//! to a fixed directory (smb.conf holds absolute paths), so every run starts from a fresh
//! domain. A watchdog shell stops the server when the test process exits.
//!
//! `.ci/run` installs Samba. Without it (or without root) the tests are skipped with a
//! message, except under CI (`CI` set), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const REALM: &str = "IDFLOW.TEST";
pub const NETBIOS: &str = "IDFLOW";
pub const BASE: &str = "DC=idflow,DC=test";
pub const ADMIN: &str = "CN=Administrator,CN=Users,DC=idflow,DC=test";
/// The administrator's password (tests look for it where it must never be).
pub const PASSWORD: &str = "Zq7-bind-secret-9Kp";
pub const URL: &str = "ldap://127.0.0.1:389/";
pub const LDAPS_URL: &str = "ldaps://127.0.0.1:636/";

/// Where the domain controller runs (a fixed path: smb.conf holds it).
const ROOT: &str = "/tmp/idflow-samba";

/// The running domain controller.
pub struct Samba {
    pub dir: PathBuf,
    /// The shell that runs samba and stops it when the test process ends (it is never
    /// waited for: it outlives the tests by design).
    _watchdog: Mutex<std::process::Child>,
}

/// Why the tests cannot run here; None when they can.
fn missing() -> Option<String> {
    if which("samba").is_none() || which("samba-tool").is_none() {
        return Some(
            "Samba is not installed (apt-get install samba samba-ad-dc krb5-user winbind)".into(),
        );
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        return Some("a Samba domain controller needs root (it binds ports 389 and 636)".into());
    }
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    for d in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(d).join(bin);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Samba {
    /// The shared domain controller, started on first use, and the lock that gives this test
    /// sole use of it. None (the test skips) when Samba is missing outside CI.
    pub fn get() -> Option<(MutexGuard<'static, ()>, &'static Samba)> {
        static LOCK: Mutex<()> = Mutex::new(());
        static DC: OnceLock<Option<Samba>> = OnceLock::new();
        let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let dc = DC.get_or_init(|| {
            if let Some(why) = missing() {
                if std::env::var_os("CI").is_some() {
                    panic!("{why}: the Active Directory tests need it under CI");
                }
                eprintln!("{why}: skipping the Active Directory tests");
                return None;
            }
            Some(Samba::start())
        });
        dc.as_ref().map(|d| (guard, d))
    }

    fn start() -> Samba {
        let t = Instant::now();
        let root = PathBuf::from(ROOT);
        let dir = root.join("dc");
        stop_stale(&dir);
        let version = run(Command::new("samba").arg("-V"))
            .trim()
            .replace([' ', '/'], "_");
        let cache = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(".cache/idflow");
        std::fs::create_dir_all(&cache).unwrap();
        let fixture = cache.join(format!("samba-dc-{version}-v1.tgz"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        if !fixture.exists() {
            provision(&dir);
            let tmp = fixture.with_extension("tmp");
            run(Command::new("tar")
                .arg("czf")
                .arg(&tmp)
                .arg("-C")
                .arg(&root)
                .arg("dc"));
            std::fs::rename(&tmp, &fixture).unwrap();
            eprintln!("provisioned the Samba domain: {:?}", t.elapsed());
        } else {
            run(Command::new("tar")
                .arg("xzf")
                .arg(&fixture)
                .arg("-C")
                .arg(&root));
        }
        let log = std::fs::File::create(dir.join("log/samba.out")).unwrap();
        let conf = dir.join("etc/smb.conf");
        // The watchdog: runs samba, and stops it when this test process is gone.
        let script = format!(
            "samba -s '{}' --foreground --no-process-group & pid=$!; echo $pid > '{}'; \
             while kill -0 {} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.5; done; \
             kill $pid 2>/dev/null; wait $pid",
            conf.display(),
            dir.join("samba.pid").display(),
            std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("sh starts");
        let dc = Samba {
            dir,
            _watchdog: Mutex::new(watchdog),
        };
        let start = Instant::now();
        loop {
            if let Ok(mut c) = ldap3::LdapConn::with_settings(
                ldap3::LdapConnSettings::new().set_conn_timeout(Duration::from_secs(1)),
                URL,
            ) && c
                .search(
                    "",
                    ldap3::Scope::Base,
                    "(objectClass=*)",
                    vec!["defaultNamingContext"],
                )
                .is_ok_and(|r| r.1.rc == 0)
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "samba did not answer: {}",
                std::fs::read_to_string(dc.dir.join("log/samba.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("Samba AD DC up in {:?}", t.elapsed());
        dc
    }

    /// A client bound as the administrator.
    pub fn admin(&self) -> ldap3::LdapConn {
        let mut c = ldap3::LdapConn::new(URL).expect("connects");
        c.simple_bind(ADMIN, PASSWORD)
            .expect("binds")
            .success()
            .expect("bind accepted");
        c
    }
}

/// Stops a domain controller a killed earlier run left behind (its pid file).
fn stop_stale(dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(dir.join("samba.pid")) else {
        return;
    };
    let pid = pid.trim();
    if pid.is_empty()
        || Command::new("kill")
            .arg(pid)
            .stderr(Stdio::null())
            .status()
            .is_err()
    {
        return;
    }
    for _ in 0..100 {
        let alive = Command::new("kill")
            .arg("-0")
            .arg(pid)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Provisions a new domain into `dir` (about 10 s).
fn provision(dir: &Path) {
    run(Command::new("samba-tool")
        .args(["domain", "provision", "--use-rfc2307"])
        .arg(format!("--realm={REALM}"))
        .arg(format!("--domain={NETBIOS}"))
        .args(["--server-role=dc", "--dns-backend=NONE", "--host-name=dc1"])
        .arg(format!("--targetdir={}", dir.display()))
        .arg(format!("--adminpass={PASSWORD}"))
        .arg("--option=interfaces=lo")
        .arg("--option=bind interfaces only=yes")
        .arg(format!("--option=log file = {}/log/log.%m", dir.display()))
        .arg(format!("--option=pid directory = {}/run", dir.display()))
        .arg("--option=server services = ldap, cldap, kdc, rpc, drepl, kcc"));
    std::fs::create_dir_all(dir.join("log")).unwrap();
    std::fs::create_dir_all(dir.join("run")).unwrap();
    // Options provisioning does not keep: simple binds over ldap://, no printers.
    let conf = dir.join("etc/smb.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let text = text.replacen(
        "[global]\n",
        "[global]\n\tldap server require strong auth = no\n\tload printers = no\n\tprinting = bsd\n\
         \tprintcap name = /dev/null\n",
        1,
    );
    std::fs::write(&conf, text).unwrap();
}
