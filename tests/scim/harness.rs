//! Private SCIM servers for the SCIM connector's tests: `scim2-server` (PyPI) run through
//! `server.py` beside this file, on a free loopback port with a bearer token, in a directory
//! of its own; killed when the test drops it. `stop` makes it write its resources and exit
//! (SIGTERM), `restart` starts it again on the same port with them.
//!
//! The server is found as `IDFLOW_SCIM2_SERVER` (the `scim2-server` script), else
//! `scim2-server` on the PATH, else `~/.cache/idflow/scim2-venv/bin/scim2-server` (where
//! `.ci/run` installs it); the Python that runs it is the one of its virtual environment.
//! Without it the tests are skipped with a message, except under CI (`CI` set), where they
//! fail.

use crate::common::make_certificates;
use serde_json::Value as Json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bearer token of every test server (tests look for it where it must never be).
pub const TOKEN: &str = "Tk-scim-bearer-7Hq2";

/// The Python of the virtual environment scim2-server is installed in.
fn python() -> Option<PathBuf> {
    let script = std::env::var_os("IDFLOW_SCIM2_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("scim2-server"))
                    .find(|f| f.is_file())
            })
        })
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/idflow/scim2-venv/bin/scim2-server"))
        })
        .filter(|f| f.is_file());
    let Some(script) = script else {
        // .ci/run installs scim2-server with its `cursor` extra.
        if std::env::var_os("CI").is_some() {
            panic!(
                "scim2-server is not installed: .ci/run installs it (python3 -m venv ~/.cache/idflow/scim2-venv && ~/.cache/idflow/scim2-venv/bin/pip install scim2-server)"
            );
        }
        eprintln!(
            "scim2-server is not installed: skipping (python3 -m venv ~/.cache/idflow/scim2-venv && ~/.cache/idflow/scim2-venv/bin/pip install scim2-server)"
        );
        return None;
    };
    // The interpreter: the virtual environment's, else the script's `#!` line.
    let beside = script.with_file_name("python");
    if beside.is_file() {
        return Some(beside);
    }
    let text = std::fs::read_to_string(&script).ok()?;
    let shebang = text.lines().next()?.strip_prefix("#!")?.trim();
    Some(PathBuf::from(shebang.split_whitespace().next()?))
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().unwrap().port()
}

/// A running private scim2-server.
pub struct ScimServer {
    pub dir: PathBuf,
    pub port: u16,
    /// Serves HTTPS with a certificate of a test authority (`ca.crt` in `dir`).
    pub tls: bool,
    /// More scim2-server options.
    args: Vec<String>,
    python: PathBuf,
    child: Option<Child>,
}

impl ScimServer {
    /// Starts a server for `name`; None when scim2-server is not installed (outside CI).
    pub fn start(name: &str) -> Option<ScimServer> {
        ScimServer::start_with(name, false, Vec::new())
    }

    /// [`ScimServer::start`] announcing cursor paging (RFC 9865) in its service provider
    /// configuration (index paging too, the default).
    pub fn start_with_cursors(name: &str) -> Option<ScimServer> {
        let spc = std::env::temp_dir().join(format!(
            "idflow-scim-spc-{name}-{}.json",
            std::process::id()
        ));
        std::fs::write(
            &spc,
            r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
  "patch": {"supported": true}, "bulk": {"supported": false},
  "filter": {"supported": true, "maxResults": 1000}, "changePassword": {"supported": false},
  "sort": {"supported": true}, "etag": {"supported": true},
  "pagination": {"cursor": true, "index": true, "defaultPaginationMethod": "index",
                 "defaultPageSize": 100, "maxPageSize": 1000, "cursorTimeout": 600}}"#,
        )
        .unwrap();
        ScimServer::start_with(
            name,
            false,
            vec![
                "--service-provider-config".into(),
                spc.display().to_string(),
            ],
        )
    }

    /// [`ScimServer::start`] serving HTTPS: a test certificate authority (`ca.crt` in the
    /// server's directory) signs the server's certificate (localhost, 127.0.0.1);
    /// `other-ca.crt` is an authority that signed nothing.
    pub fn start_tls(name: &str) -> Option<ScimServer> {
        ScimServer::start_with(name, true, Vec::new())
    }

    fn start_with(name: &str, tls: bool, args: Vec<String>) -> Option<ScimServer> {
        let python = python()?;
        let dir = std::env::temp_dir().join(format!("idflow-scim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if tls {
            make_certificates(&dir);
        }
        let mut s = ScimServer {
            dir,
            port: 0,
            tls,
            args,
            python,
            child: None,
        };
        for _ in 0..5 {
            if s.run(free_port(), Duration::from_secs(20)) {
                return Some(s);
            }
        }
        panic!(
            "scim2-server did not start: {}",
            std::fs::read_to_string(s.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Runs the server on `port` until it answers; false when it did not in `wait`.
    fn run(&mut self, port: u16, wait: Duration) -> bool {
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scim/server.py");
        let mut cmd = Command::new(&self.python);
        if self.tls {
            cmd.env(
                "IDFLOW_TEST_TLS",
                format!(
                    "{}:{}",
                    self.dir.join("tls.crt").display(),
                    self.dir.join("tls.key").display()
                ),
            );
        }
        let mut child = cmd
            .arg(script)
            .arg(self.dir.join("state.json"))
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", TOKEN])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python runs");
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                self.port = port;
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The base URL (`http://127.0.0.1:PORT/v2`, or `https://localhost:PORT/v2`).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/v2", self.port)
        } else {
            format!("http://127.0.0.1:{}/v2", self.port)
        }
    }

    /// Stops the server: it writes its resources and exits (SIGTERM, by its process id).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the stopped server again on its port, with the resources it held.
    pub fn restart(&mut self) {
        self.stop();
        let start = Instant::now();
        // The port may stay busy for a moment.
        while !self.run(self.port, Duration::from_secs(10)) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "scim2-server did not restart on port {}",
                self.port
            );
        }
    }

    /// One request with the token: the status and the JSON body (Null when none).
    pub fn request(&self, method: &str, path: &str, body: Option<&Json>) -> (u16, Json) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} /v2{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, serde_json::from_str(rest).unwrap_or(Json::Null))
    }

    /// Every resource of an endpoint (`Users`, `Groups`).
    pub fn all(&self, endpoint: &str) -> Vec<Json> {
        let mut out = Vec::new();
        loop {
            let (status, page) = self.request(
                "GET",
                &format!("/{endpoint}?startIndex={}&count=1000", out.len() + 1),
                None,
            );
            assert_eq!(status, 200, "{page}");
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            if items.is_empty() {
                break;
            }
            out.extend(items);
            if out.len() >= total {
                break;
            }
        }
        out
    }

    /// The number of resources of an endpoint.
    pub fn count(&self, endpoint: &str) -> usize {
        let (_, page) = self.request("GET", &format!("/{endpoint}?count=0"), None);
        page["totalResults"].as_u64().unwrap_or(0) as usize
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
