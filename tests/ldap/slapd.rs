//! Private OpenLDAP servers for the LDAP connector's tests: each runs `slapd` in the
//! foreground on a free loopback port with a directory of its own (the database and the
//! configuration: mdb without fsync, syncprov with a session log for content synchronization),
//! and is killed when the test drops it. `.ci/run` installs slapd; without it these tests fail
//! (set `IDFLOW_SKIP_SLAPD=1` to skip them on a machine without it).

use crate::common::make_certificates;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=com";
pub const ADMIN: &str = "cn=admin,dc=example,dc=com";
/// The bind password of every test server (tests look for it where it must never be).
pub const PASSWORD: &str = "Zq7-bind-secret-9Kp";

/// The slapd binary; None (and the caller skips) only when `IDFLOW_SKIP_SLAPD=1`.
fn slapd_binary() -> Option<PathBuf> {
    for p in [
        "/usr/sbin/slapd",
        "/usr/local/sbin/slapd",
        "/usr/local/libexec/slapd",
    ] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    if std::env::var("IDFLOW_SKIP_SLAPD").as_deref() == Ok("1") {
        eprintln!("slapd is not installed and IDFLOW_SKIP_SLAPD=1: skipping");
        return None;
    }
    panic!(
        "slapd is not installed: the LDAP connector's tests need it \
         (`apt-get install slapd ldap-utils` with debconf slapd/no_configuration=true, as .ci/run \
         does; IDFLOW_SKIP_SLAPD=1 skips these tests)"
    );
}

/// A running private slapd.
pub struct Slapd {
    pub dir: PathBuf,
    pub port: u16,
    /// The ldaps:// port of a server started with TLS.
    pub tls_port: Option<u16>,
    binary: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

impl Slapd {
    /// The server process's CPU time so far (user and system), from /proc.
    pub fn cpu(&self) -> std::time::Duration {
        self.child
            .as_ref()
            .map(|c| cpu_of(&format!("/proc/{}/stat", c.id())))
            .unwrap_or_default()
    }

    /// Starts a server for `name` with the base entries (the suffix, ou=people, ou=groups)
    /// and `seed` (LDIF content records), loaded offline with slapadd. None when skipped.
    pub fn start(name: &str, seed: &str) -> Option<Slapd> {
        Slapd::start_with(name, seed, false)
    }

    /// [`Slapd::start`] with TLS: a test certificate authority (`ca.crt` in the server's
    /// directory) signs the server's certificate (localhost, 127.0.0.1); the server answers
    /// StartTLS on its ldap:// port and listens on an ldaps:// port as well.
    pub fn start_tls(name: &str, seed: &str) -> Option<Slapd> {
        Slapd::start_with(name, seed, true)
    }

    fn start_with(name: &str, seed: &str, tls: bool) -> Option<Slapd> {
        let binary = slapd_binary()?;
        let dir = std::env::temp_dir().join(format!("idflow-slapd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let tls_conf = if tls {
            make_certificates(&dir);
            format!(
                "TLSCACertificateFile {d}/ca.crt\nTLSCertificateFile {d}/tls.crt\n\
                 TLSCertificateKeyFile {d}/tls.key\n",
                d = dir.display()
            )
        } else {
            String::new()
        };
        let conf = format!(
            "{tls_conf}include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload syncprov\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             sizelimit unlimited\n\
             database mdb\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ADMIN}\"\n\
             rootpw {PASSWORD}\n\
             directory {d}/data\n\
             maxsize 1073741824\n\
             dbnosync\n\
             index objectClass eq\n\
             index uid,cn,mail,entryCSN,entryUUID eq\n\
             limits * size=unlimited time=unlimited\n\
             overlay syncprov\n\
             syncprov-checkpoint 100 10\n\
             syncprov-sessionlog 100000\n",
            d = dir.display()
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        let base = format!(
            "dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
             o: Example\ndc: example\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=disabled,ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: disabled\n\n{seed}"
        );
        std::fs::write(dir.join("seed.ldif"), base).unwrap();
        let slapadd = binary.with_file_name("slapadd");
        let slapadd = if slapadd.exists() {
            slapadd
        } else {
            PathBuf::from("slapadd")
        };
        let out = Command::new(slapadd)
            .arg("-q")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-b")
            .arg(SUFFIX)
            .arg("-l")
            .arg(dir.join("seed.ldif"))
            .output()
            .expect("slapadd runs");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            dir,
            port: 0,
            tls_port: tls.then(free_port),
            binary,
            child: None,
        };
        s.run(free_port());
        Some(s)
    }

    /// Runs slapd on `port` until it accepts connections.
    fn run(&mut self, port: u16) {
        for attempt in 0..5 {
            let port = if attempt == 0 { port } else { free_port() };
            if let Some(child) = self.spawn(port, Duration::from_secs(10)) {
                self.port = port;
                self.child = Some(child);
                return;
            }
        }
        panic!(
            "slapd did not start: {}",
            std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
        );
    }

    /// Starts slapd on `port` and waits up to `wait` for it to accept connections; None (the
    /// process stopped) when it does not.
    fn spawn(&self, port: u16, wait: Duration) -> Option<Child> {
        let log = std::fs::File::create(self.dir.join("slapd.log")).unwrap();
        let mut child = Command::new(&self.binary)
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(self.listen(port))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("slapd starts");
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(child);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The URLs slapd listens on.
    fn listen(&self, port: u16) -> String {
        match self.tls_port {
            Some(t) => format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{t}/"),
            None => format!("ldap://127.0.0.1:{port}/"),
        }
    }

    /// The ldaps:// URL of a server started with TLS.
    pub fn ldaps_url(&self) -> String {
        format!(
            "ldaps://127.0.0.1:{}/",
            self.tls_port.expect("a TLS server")
        )
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (the data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on its port.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        // The port may stay busy for a moment after the kill.
        let start = Instant::now();
        loop {
            if let Some(child) = self.spawn(port, Duration::from_secs(3)) {
                self.child = Some(child);
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "slapd did not restart on port {port}"
            );
        }
    }

    /// A client bound as the administrator.
    pub fn admin(&self) -> ldap3::LdapConn {
        let mut c = ldap3::LdapConn::new(&self.url()).expect("connects");
        c.simple_bind(ADMIN, PASSWORD)
            .expect("binds")
            .success()
            .expect("bind accepted");
        c
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The CPU time (user and system) of the process whose `/proc/<pid>/stat` is `stat`, in clock
/// ticks of 10 ms.
pub fn cpu_of(stat: &str) -> std::time::Duration {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    std::time::Duration::from_millis(f.iter().sum::<u64>() * 10)
}
