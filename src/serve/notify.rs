//! Notifications of `idflow serve`: an alert raised or resolved, sent by webhook and e-mail.
//!
//! Consumes: the alert [`Event`]s of `serve::alerts` and the channels of `[notify]` in
//! idflow.toml ([`crate::config::Notify`]). Produces: for each event and channel, a JSON POST
//! to each webhook (`{"event": "raised"|"resolved", "alert": {...}}`, the [`Event`] as the API
//! shows it) and an e-mail to the recipients (SMTP, STARTTLS required unless configured
//! `starttls = "none"`; `lettre` over rustls). A delivery that fails is logged and kept in the
//! outbox, tried again at the next delivery (at most [`ATTEMPTS`] times; the outbox keeps at
//! most [`OUTBOX`] deliveries, the oldest are dropped with a warning). The service delivers
//! on a thread of its own ([`spawn`]), so a slow or unreachable channel never holds up a
//! cycle. Secrets (the SMTP password) are read at each delivery and never logged.

use super::alerts::Event;
use crate::config::{Email, Notify, Secret, Webhook};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// The attempts of one delivery before it is given up.
pub const ATTEMPTS: u32 = 100;
/// The deliveries the outbox keeps.
pub const OUTBOX: usize = 1000;
/// The time a webhook or SMTP server has to answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A channel of `[notify]`.
#[derive(Debug, Clone)]
enum Channel {
    Webhook(Webhook),
    Email(Email),
}

impl Channel {
    fn name(&self) -> String {
        match self {
            Channel::Webhook(w) => format!("webhook {}", w.url),
            Channel::Email(e) => format!("e-mail via {}:{}", e.host, e.port),
        }
    }
}

/// One event to send through one channel.
#[derive(Debug)]
struct Delivery {
    channel: usize,
    event: Event,
    attempts: u32,
}

/// The channels and the deliveries not done yet.
pub struct Notifier {
    channels: Vec<Channel>,
    outbox: VecDeque<Delivery>,
    /// The runtime the webhook requests run on (made at the first one).
    rt: Option<tokio::runtime::Runtime>,
    client: Option<reqwest::Client>,
}

impl Notifier {
    pub fn new(cfg: &Notify) -> Notifier {
        let mut channels: Vec<Channel> =
            cfg.webhooks.iter().cloned().map(Channel::Webhook).collect();
        channels.extend(cfg.email.iter().cloned().map(Channel::Email));
        Notifier {
            channels,
            outbox: VecDeque::new(),
            rt: None,
            client: None,
        }
    }

    /// No channel is configured.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The deliveries waiting (failed ones included).
    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Queues `event` for every channel.
    pub fn queue(&mut self, event: Event) {
        for channel in 0..self.channels.len() {
            if self.outbox.len() >= OUTBOX
                && let Some(d) = self.outbox.pop_front()
            {
                tracing::warn!(
                    channel = %self.channels[d.channel].name(),
                    key = %d.event.alert.key,
                    "notification outbox full: the oldest notification is dropped"
                );
            }
            self.outbox.push_back(Delivery {
                channel,
                event: event.clone(),
                attempts: 0,
            });
        }
    }

    /// Tries every waiting delivery once, in order; the failed ones stay for the next time.
    /// Returns the number delivered.
    pub fn deliver(&mut self) -> usize {
        let mut kept = VecDeque::new();
        let mut delivered = 0;
        while let Some(mut d) = self.outbox.pop_front() {
            let channel = self.channels[d.channel].clone();
            let sent = match &channel {
                Channel::Webhook(w) => self.post(w, &d.event),
                Channel::Email(e) => send_mail(e, &d.event),
            };
            d.attempts += 1;
            match sent {
                Ok(()) => {
                    delivered += 1;
                    tracing::info!(channel = %channel.name(), key = %d.event.alert.key, event = d.event.event.as_str(), "notification sent");
                }
                Err(e) if d.attempts >= ATTEMPTS => tracing::error!(
                    channel = %channel.name(),
                    key = %d.event.alert.key,
                    "notification given up after {} attempts: {e}",
                    d.attempts
                ),
                Err(e) => {
                    tracing::warn!(channel = %channel.name(), key = %d.event.alert.key, attempt = d.attempts, "notification failed, tried again later: {e}");
                    kept.push_back(d);
                }
            }
        }
        self.outbox = kept;
        delivered
    }

    fn post(&mut self, w: &Webhook, event: &Event) -> Result<(), String> {
        if self.rt.is_none() {
            self.rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?,
            );
        }
        let rt = self.rt.as_ref().ok_or("no runtime")?;
        if self.client.is_none() {
            let _guard = rt.enter();
            self.client = Some(client()?);
        }
        let client = self.client.as_ref().ok_or("no client")?;
        let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        rt.block_on(async {
            let r = client
                .post(&w.url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let status = r.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {status}"))
            }
        })
    }
}

/// The webhook client: rustls with the system's certificate authorities.
fn client() -> Result<reqwest::Client, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let mut tls = rustls::ClientConfig::builder()
        .with_platform_verifier()
        .map_err(|e| format!("the system's certificate authorities: {e}"))?
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("idflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// A reqwest error with its causes, without the URL (the log names the channel).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        let text = e.to_string();
        match e.url() {
            Some(u) => text.replace(&format!(" ({u})"), ""),
            None => text,
        }
    };
    causes(e, &mut out);
    out
}

/// Appends the causes of `e` to `out`.
fn causes(e: &dyn std::error::Error, out: &mut String) {
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
}

/// The text of a secret: the variable's value or the file's content (without the final line
/// break).
fn read_secret(s: &Secret) -> Result<String, String> {
    match s {
        Secret::Env(var) => std::env::var(var)
            .map_err(|_| format!("password_env: the environment variable `{var}` is not set")),
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|t| t.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                format!(
                    "password_file: cannot read {}: {}",
                    path.display(),
                    e.kind()
                )
            }),
    }
}

/// The subject and text of the e-mail of an event.
pub fn mail_text(event: &Event) -> (String, String) {
    let a = &event.alert;
    let subject = format!(
        "[idflow] {} {}: {}",
        a.severity.as_str(),
        event.event.as_str(),
        a.title
    );
    let mut body = format!("{}\n\n", a.title);
    match &a.resolved_at {
        Some(at) => body.push_str(&format!(
            "Resolved at {at} (raised at {}).\n\n",
            a.raised_at
        )),
        None => body.push_str(&format!("Raised at {}.\n\n", a.raised_at)),
    }
    body.push_str(&format!("{}\n\n", a.description));
    if !a.remediation.is_empty() {
        body.push_str("What to do:\n");
        for (i, r) in a.remediation.iter().enumerate() {
            body.push_str(&format!("{}. {r}\n", i + 1));
        }
        body.push('\n');
    }
    if !a.detail.is_empty() {
        body.push_str(&format!("Detail:\n{}\n\n", a.detail));
    }
    body.push_str(&format!(
        "Severity: {}\nAlert: {} (id {})\nDocumentation: {}\n",
        a.severity.as_str(),
        a.key,
        a.id,
        a.docs
    ));
    (subject, body)
}

fn send_mail(e: &Email, event: &Event) -> Result<(), String> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{Message, SmtpTransport, Transport};
    let (subject, body) = mail_text(event);
    let mut message = Message::builder()
        .from(
            e.from
                .parse()
                .map_err(|x| format!("from {}: {x}", e.from))?,
        )
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &e.to {
        message = message.to(to.parse().map_err(|x| format!("to {to}: {x}"))?);
    }
    let message = message.body(body).map_err(|x| x.to_string())?;
    let mut transport = SmtpTransport::builder_dangerous(e.host.as_str())
        .port(e.port)
        .timeout(Some(TIMEOUT));
    transport = if e.starttls {
        let mut params = TlsParameters::builder(e.host.clone());
        if let Some(ca) = &e.ca_file {
            let pem =
                std::fs::read(ca).map_err(|x| format!("ca_file {}: {}", ca.display(), x.kind()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|x| format!("ca_file {}: {x}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().map_err(|x| x.to_string())?;
        transport.tls(Tls::Required(params))
    } else {
        transport.tls(Tls::None)
    };
    if let (Some(user), Some(secret)) = (&e.user, &e.password) {
        transport = transport.credentials(Credentials::new(user.clone(), read_secret(secret)?));
    }
    transport.build().send(&message).map(|_| ()).map_err(|x| {
        let mut out = x.to_string();
        causes(&x, &mut out);
        out
    })
}

/// A notifier delivering on a thread of its own: events sent to the returned sender are
/// queued and delivered at once; failed deliveries are tried again every `retry`. The thread
/// ends, after a last attempt, once the sender is dropped.
pub fn spawn(notifier: Notifier, retry: Duration) -> (Sender<Event>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || postman(notifier, rx, retry));
    (tx, handle)
}

fn postman(mut n: Notifier, rx: Receiver<Event>, retry: Duration) {
    loop {
        let ended = match rx.recv_timeout(retry) {
            Ok(e) => {
                n.queue(e);
                while let Ok(e) = rx.try_recv() {
                    n.queue(e);
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if n.pending() > 0 {
            n.deliver();
        }
        if ended {
            if n.pending() > 0 {
                tracing::warn!("{} notification(s) not delivered at shutdown", n.pending());
            }
            return;
        }
    }
}
