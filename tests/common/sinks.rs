//! Local receivers for the notifications of `idflow serve`: a webhook receiver (HTTP/1.1, one
//! POST per connection, answers 200) and an SMTP sink speaking EHLO, MAIL, RCPT, DATA and
//! QUIT (and STARTTLS, with a certificate, when asked to offer it). Each runs on threads of
//! its own and hands what it received through a channel.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// A webhook receiver on 127.0.0.1: the bodies of the POSTs it got.
pub struct Webhook {
    pub url: String,
    pub bodies: Receiver<String>,
}

impl Webhook {
    /// Listens on a free port.
    pub fn start() -> Webhook {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Listens on `listener`.
    pub fn on(listener: TcpListener) -> Webhook {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (tx, bodies) = channel();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let _ = webhook_request(s, &tx);
                });
            }
        });
        Webhook { url, bodies }
    }

    /// The next body received within `secs` seconds.
    pub fn next(&self, secs: u64) -> Option<String> {
        self.bodies.recv_timeout(Duration::from_secs(secs)).ok()
    }
}

fn webhook_request(s: TcpStream, tx: &Sender<String>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    assert!(line.starts_with("POST /hook "), "{line}");
    let mut length = 0;
    let mut json = false;
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if lower == "content-type: application/json" {
            json = true;
        }
    }
    assert!(json, "the webhook POST is JSON");
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    let mut s = s;
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let _ = tx.send(String::from_utf8(body).unwrap());
    Ok(())
}

/// A message the SMTP sink accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// It came over TLS (after STARTTLS).
    pub tls: bool,
    /// The user and password of `AUTH PLAIN` (offered after STARTTLS only).
    pub auth: Option<(String, String)>,
}

/// An SMTP sink on 127.0.0.1.
pub struct Smtp {
    pub port: u16,
    pub mails: Receiver<Mail>,
}

impl Smtp {
    /// A sink that does not offer STARTTLS.
    pub fn start() -> Smtp {
        Self::with_tls(None)
    }

    /// A sink offering STARTTLS with the certificate and key in `dir` (`tls.crt`, `tls.key`
    /// of `make_certificates`).
    pub fn start_tls(dir: &Path) -> Smtp {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("tls.crt"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::with_tls(Some(Arc::new(config)))
    }

    fn with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Smtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mails) = channel();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let (tx, tls) = (tx.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = smtp_session(s, tls, &tx);
                });
            }
        });
        Smtp { port, mails }
    }

    /// The next mail accepted within `secs` seconds.
    pub fn next(&self, secs: u64) -> Option<Mail> {
        self.mails.recv_timeout(Duration::from_secs(secs)).ok()
    }
}

/// A byte stream the session speaks over: plain TCP, then TLS after STARTTLS.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

fn smtp_session(
    s: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    tx: &Sender<Mail>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut conn: BufReader<Box<dyn Stream>> = BufReader::new(Box::new(s.try_clone()?));
    let mut secure = false;
    let mut mail = Mail {
        from: String::new(),
        to: Vec::new(),
        data: String::new(),
        tls: false,
        auth: None,
    };
    conn.get_mut().write_all(b"220 sink ESMTP\r\n")?;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            if tls.is_some() && !secure {
                "250-sink\r\n250-8BITMIME\r\n250 STARTTLS\r\n".into()
            } else if secure {
                "250-sink\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n".into()
            } else {
                "250-sink\r\n250 8BITMIME\r\n".into()
            }
        } else if upper == "STARTTLS" && tls.is_some() && !secure {
            conn.get_mut().write_all(b"220 go ahead\r\n")?;
            let config = tls.clone().unwrap();
            let server = rustls::ServerConnection::new(config).unwrap();
            let tcp = s.try_clone()?;
            conn = BufReader::new(Box::new(rustls::StreamOwned::new(server, tcp)));
            secure = true;
            continue;
        } else if upper.starts_with("AUTH PLAIN ") && secure {
            use base64::Engine;
            let plain = base64::engine::general_purpose::STANDARD
                .decode(cmd["AUTH PLAIN ".len()..].trim())
                .unwrap();
            let parts: Vec<String> = String::from_utf8(plain)
                .unwrap()
                .split('\0')
                .map(str::to_string)
                .collect();
            mail.auth = Some((parts[1].clone(), parts[2].clone()));
            "235 authenticated\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = cmd["MAIL FROM:".len()..].trim().to_string();
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(cmd["RCPT TO:".len()..].trim().to_string());
            "250 OK\r\n".into()
        } else if upper == "DATA" {
            conn.get_mut().write_all(b"354 end with .\r\n")?;
            conn.get_mut().flush()?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if conn.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            mail.data = data;
            mail.tls = secure;
            let _ = tx.send(mail.clone());
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            conn.get_mut().write_all(b"221 bye\r\n")?;
            conn.get_mut().flush()?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 OK\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        conn.get_mut().write_all(reply.as_bytes())?;
        conn.get_mut().flush()?;
    }
}
