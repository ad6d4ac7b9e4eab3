//! `idflow lsp` end to end: a scripted client starts the real binary, speaks the protocol over
//! its stdin and stdout, opens the shipped bundle (and small bundles of its own, with non-ASCII
//! text) and checks every capability at exact positions.
//!
//! Positions in the shipped bundle are found by searching its text for a unique piece and
//! converting the byte offset to a protocol position (UTF-16) here; the server must answer
//! with exactly those positions. The non-ASCII bundles use literal positions.

// The protocol types key their maps by `Uri`, which caches parts of itself (never mutated here).
#![allow(clippy::mutable_key_type)]

use lsp_server::{Message, Notification, Request, RequestId};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bundle_dir() -> PathBuf {
    root().join("rules/entra-default")
}

fn uri(path: &Path) -> Uri {
    let mut s = String::from("file://");
    for &b in path.to_str().unwrap().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::from_str(&s).unwrap()
}

/// The protocol position (UTF-16 columns) of a byte offset.
fn pos(text: &str, offset: usize) -> Position {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..line_start].matches('\n').count() as u32;
    let character = text[line_start..offset].encode_utf16().count() as u32;
    Position::new(line, character)
}

/// The position of the `nth` (0-based) occurrence of `needle`, plus `delta` bytes.
fn find(text: &str, needle: &str, nth: usize, delta: usize) -> Position {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} not found"))
        .0;
    pos(text, at + delta)
}

fn range_of(text: &str, needle: &str, nth: usize) -> Range {
    let at = text.match_indices(needle).nth(nth).unwrap().0;
    Range::new(pos(text, at), pos(text, at + needle.len()))
}

/// Applies protocol edits to a text (ranges against the text before any edit).
fn apply(text: &str, edits: &[TextEdit]) -> String {
    let offset = |p: Position| -> usize {
        let mut line_start = 0;
        for _ in 0..p.line {
            line_start += text[line_start..].find('\n').unwrap() + 1;
        }
        let mut units = 0;
        for (i, c) in text[line_start..].char_indices() {
            if units >= p.character as usize || c == '\n' {
                return line_start + i;
            }
            units += c.len_utf16();
        }
        text.len()
    };
    let mut spans: Vec<(usize, usize, &str)> = edits
        .iter()
        .map(|e| {
            (
                offset(e.range.start),
                offset(e.range.end),
                e.new_text.as_str(),
            )
        })
        .collect();
    spans.sort_by_key(|s| s.0);
    let mut out = String::new();
    let mut at = 0;
    for (s, e, t) in spans {
        out.push_str(&text[at..s]);
        out.push_str(t);
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    incoming: mpsc::Receiver<Message>,
    next_id: i32,
    /// The last diagnostics published for each file.
    diagnostics: HashMap<Uri, Vec<Diagnostic>>,
    /// Every publication, in order.
    publications: Vec<PublishDiagnosticsParams>,
    versions: HashMap<Uri, i32>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idflow"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("idflow lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, incoming) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Ok(Some(msg)) = Message::read(&mut reader) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let mut c = Client {
            child,
            stdin,
            incoming,
            next_id: 0,
            diagnostics: HashMap::new(),
            publications: Vec::new(),
            versions: HashMap::new(),
        };
        let caps = json!({
            "textDocument": { "completion": { "completionItem": { "snippetSupport": true } } }
        });
        let init: Value = c.request_raw(
            req::Initialize::METHOD,
            json!({
                "processId": null,
                "rootUri": null,
                "capabilities": caps,
                "initializationOptions": { "debounceMs": 20 },
            }),
        );
        assert_eq!(init["serverInfo"]["name"], "idflow");
        let caps = &init["capabilities"];
        for cap in [
            "hoverProvider",
            "completionProvider",
            "definitionProvider",
            "referencesProvider",
            "documentFormattingProvider",
            "documentRangeFormattingProvider",
            "codeActionProvider",
            "renameProvider",
            "semanticTokensProvider",
        ] {
            assert!(!caps[cap].is_null(), "capability {cap} missing: {caps}");
        }
        c.notify::<note::Initialized>(InitializedParams {});
        c
    }

    fn send(&mut self, msg: Message) {
        msg.write(&mut self.stdin).expect("write to the server");
    }

    fn notify<N: note::Notification>(&mut self, params: N::Params) {
        self.send(Notification::new(N::METHOD.to_string(), params).into());
    }

    /// Records a notification from the server.
    fn note(&mut self, n: Notification) {
        if n.method == note::PublishDiagnostics::METHOD {
            let p: PublishDiagnosticsParams = serde_json::from_value(n.params).unwrap();
            self.diagnostics
                .insert(p.uri.clone(), p.diagnostics.clone());
            self.publications.push(p);
        }
    }

    fn recv(&mut self, deadline: Instant) -> Option<Message> {
        let wait = deadline.saturating_duration_since(Instant::now());
        self.incoming.recv_timeout(wait).ok()
    }

    fn request_raw(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.send(Request::new(id.clone(), method.to_string(), params).into());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.recv(deadline) {
                Some(Message::Response(r)) if r.id == id => match r.response_result {
                    Ok(v) => return v,
                    Err(e) => return json!({ "error": e.message }),
                },
                Some(Message::Notification(n)) => self.note(n),
                Some(_) => {}
                None => panic!("no answer to {method}"),
            }
        }
    }

    fn request<R: req::Request>(&mut self, params: R::Params) -> R::Result {
        let v = self.request_raw(R::METHOD, serde_json::to_value(params).unwrap());
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}: {v}", R::METHOD))
    }

    /// Waits until the diagnostics of `uri` satisfy `ok`.
    fn wait_for(&mut self, uri: &Uri, ok: impl Fn(&[Diagnostic]) -> bool) -> Vec<Diagnostic> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(d) = self.diagnostics.get(uri)
                && ok(d)
            {
                return d.clone();
            }
            match self.recv(deadline) {
                Some(Message::Notification(n)) => self.note(n),
                Some(_) => {}
                None => panic!(
                    "diagnostics of {} never matched; last: {:#?}",
                    uri.as_str(),
                    self.diagnostics.get(uri)
                ),
            }
        }
    }

    fn open(&mut self, path: &Path) -> (Uri, String) {
        let text = std::fs::read_to_string(path).unwrap();
        let u = uri(path);
        self.open_text(&u, &text);
        (u, text)
    }

    fn open_text(&mut self, u: &Uri, text: &str) {
        self.versions.insert(u.clone(), 1);
        self.notify::<note::DidOpenTextDocument>(DidOpenTextDocumentParams {
            text_document: TextDocumentItem::new(u.clone(), "idf".into(), 1, text.into()),
        });
    }

    /// Replaces `range` with `text` (an incremental change).
    fn edit(&mut self, u: &Uri, range: Range, text: &str) {
        let v = self.versions.entry(u.clone()).or_insert(1);
        *v += 1;
        let version = *v;
        self.notify::<note::DidChangeTextDocument>(DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier::new(u.clone(), version),
            content_changes: vec![TextDocumentContentChangeEvent {
                range: Some(range),
                range_length: None,
                text: text.into(),
            }],
        });
    }

    fn at(u: &Uri, p: Position) -> TextDocumentPositionParams {
        TextDocumentPositionParams::new(TextDocumentIdentifier::new(u.clone()), p)
    }

    fn hover(&mut self, u: &Uri, p: Position) -> Option<Hover> {
        self.request::<req::HoverRequest>(HoverParams {
            text_document_position_params: Client::at(u, p),
            work_done_progress_params: Default::default(),
        })
    }

    fn completion(&mut self, u: &Uri, p: Position) -> Vec<CompletionItem> {
        match self.request::<req::Completion>(CompletionParams {
            text_document_position: Client::at(u, p),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
            context: None,
        }) {
            Some(CompletionResponse::Array(items)) => items,
            Some(CompletionResponse::List(l)) => l.items,
            None => Vec::new(),
        }
    }

    fn definition(&mut self, u: &Uri, p: Position) -> Option<Location> {
        match self.request::<req::GotoDefinition>(GotoDefinitionParams {
            text_document_position_params: Client::at(u, p),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        }) {
            Some(GotoDefinitionResponse::Scalar(l)) => Some(l),
            Some(GotoDefinitionResponse::Array(mut v)) => v.pop(),
            _ => None,
        }
    }

    fn references(&mut self, u: &Uri, p: Position, decl: bool) -> Vec<Location> {
        self.request::<req::References>(ReferenceParams {
            text_document_position: Client::at(u, p),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
            context: ReferenceContext {
                include_declaration: decl,
            },
        })
        .unwrap_or_default()
    }

    fn code_actions(&mut self, u: &Uri, range: Range) -> Vec<CodeAction> {
        self.request::<req::CodeActionRequest>(CodeActionParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            range,
            context: CodeActionContext::default(),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| match a {
            CodeActionOrCommand::CodeAction(a) => Some(a),
            CodeActionOrCommand::Command(_) => None,
        })
        .collect()
    }

    fn shutdown(mut self) {
        let _: () = self.request::<req::Shutdown>(());
        self.notify::<note::Exit>(());
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "idflow lsp exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "idflow lsp did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn hover_text(h: Option<Hover>) -> String {
    match h.expect("a hover").contents {
        HoverContents::Markup(m) => m.value,
        other => panic!("unexpected hover contents {other:?}"),
    }
}

fn codes(d: &[Diagnostic]) -> Vec<String> {
    d.iter()
        .map(|d| match &d.code {
            Some(NumberOrString::String(s)) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn idf_files(dir: &Path) -> Vec<PathBuf> {
    idflow::source::collect_idf_files(&[dir.to_path_buf()]).unwrap()
}

/// A scratch bundle in a fresh directory.
fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idflow-lsp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn diagnostics_cover_the_bundle_and_follow_edits() {
    let mut c = Client::start();
    let dir = bundle_dir();
    let user = dir.join("inbound/contoso-com-user.idf");
    let (u, text) = c.open(&user);
    // Every file of the bundle gets its (empty) list: the shipped bundle is clean.
    for f in idf_files(&dir) {
        let d = c.wait_for(&uri(&f), |_| true);
        assert!(d.is_empty(), "{}: {d:#?}", f.display());
    }

    // An edit introduces a misspelt attribute; the error comes with its code and exact range.
    let typo = range_of(&text, "[sAMAccountName]", 0);
    c.edit(&u, typo, "[sAMAcountName]");
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert_eq!(codes(&d), ["E0201"]);
    assert_eq!(d[0].severity, Some(DiagnosticSeverity::ERROR));
    assert_eq!(
        d[0].range,
        Range::new(
            typo.start,
            Position::new(typo.end.line, typo.end.character - 1)
        )
    );
    assert!(
        d[0].message.contains("did you mean `sAMAccountName`?"),
        "{}",
        d[0].message
    );
    // The quick fix restores the name.
    let actions = c.code_actions(&u, d[0].range);
    let fix = actions
        .iter()
        .find(|a| a.title == "Replace with `sAMAccountName`")
        .expect("a quick fix");
    assert_eq!(fix.kind, Some(CodeActionKind::QUICKFIX));
    let edits = &fix.edit.as_ref().unwrap().changes.as_ref().unwrap()[&u];
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0].range,
        Range::new(
            Position::new(typo.start.line, typo.start.character + 1),
            Position::new(typo.end.line, typo.end.character - 2)
        )
    );
    assert_eq!(edits[0].new_text, "sAMAccountName");
    // Another edit removes the error: the file's list is cleared.
    c.edit(&u, d[0].range, "[sAMAccountName]");
    c.wait_for(&u, |d| d.is_empty());

    // A type error names its related location: the declaration of the target attribute.
    let line = find(&text, "flow accountEnabled            <- True", 0, 0);
    let value = find(&text, "<- True", 0, 3);
    let value = Range::new(value, Position::new(value.line, value.character + 4));
    c.edit(&u, value, "\"yes\"");
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert_eq!(codes(&d), ["E0208"]);
    assert_eq!(
        d[0].range.start,
        Position::new(line.line, value.start.character)
    );
    let related = d[0]
        .related_information
        .as_ref()
        .expect("related locations");
    let bundle_text = std::fs::read_to_string(dir.join("bundle.idf")).unwrap();
    assert_eq!(related[0].location.uri, uri(&dir.join("bundle.idf")));
    assert_eq!(
        related[0].location.range,
        range_of(&bundle_text, "accountEnabled", 0)
    );
    c.edit(
        &u,
        Range::new(
            value.start,
            Position::new(value.end.line, value.start.character + 5),
        ),
        "True",
    );
    c.wait_for(&u, |d| d.is_empty());

    // `# allow:` switches a warning off on the next line; without it the warning is back.
    let allow = find(&text, "# allow: W0604", 0, 0);
    let allow_line = Range::new(
        Position::new(allow.line, 0),
        Position::new(allow.line + 1, 0),
    );
    c.edit(&u, allow_line, "");
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert_eq!(codes(&d), ["W0604"]);
    assert_eq!(d[0].severity, Some(DiagnosticSeverity::WARNING));
    assert_eq!(d[0].range.start.line, allow.line);
    // The code action puts an `# allow:` comment back.
    let actions = c.code_actions(&u, d[0].range);
    let allow_fix = actions
        .iter()
        .find(|a| a.title == "Allow W0604 on this line")
        .expect("an allow action");
    let e = &allow_fix.edit.as_ref().unwrap().changes.as_ref().unwrap()[&u][0];
    assert_eq!(
        e.range,
        Range::new(Position::new(allow.line, 0), Position::new(allow.line, 0))
    );
    assert_eq!(e.new_text, "  # allow: W0604\n");
    c.edit(&u, e.range, &e.new_text);
    c.wait_for(&u, |d| d.is_empty());

    // A change in the schema shows up in a file that is not open.
    let (bu, btext) = c.open(&dir.join("bundle.idf"));
    let decl = range_of(&btext, "    displayName ", 0);
    c.edit(&bu, decl, "    displayNam ");
    let other = uri(&dir.join("inbound/contoso-com-contact.idf"));
    let d = c.wait_for(&other, |d| !d.is_empty());
    assert!(codes(&d).iter().all(|c| c == "E0201"), "{d:#?}");
    c.edit(
        &bu,
        Range::new(
            decl.start,
            Position::new(decl.end.line, decl.end.character - 1),
        ),
        "    displayName ",
    );
    c.wait_for(&other, |d| d.is_empty());
    c.shutdown();
}

#[test]
fn hover_explains_functions_attributes_parameters_and_rules() {
    let mut c = Client::start();
    let dir = bundle_dir();
    let (u, text) = c.open(&dir.join("inbound/contoso-com-user.idf"));

    // A function: signature, documentation and examples from stdlib/.
    let at = find(&text, "StringFromSid(", 0, 3);
    let h = c.hover(&u, at).unwrap();
    let name = range_of(&text, "StringFromSid", 0);
    assert_eq!(h.range, Some(name));
    let s = hover_text(Some(h));
    assert!(s.starts_with("```idf\nstr StringFromSid("), "{s}");
    assert!(s.contains("Examples:"), "{s}");

    // An attribute read by the rule: its type, multiplicity and declaring schema.
    let at = find(&text, "[userAccountControl]", 0, 1);
    let s = hover_text(c.hover(&u, at));
    assert!(s.contains("userAccountControl integer"), "{s}");
    assert!(
        s.contains("object type `user` in connector \"contoso.com\": integer single-valued"),
        "{s}"
    );
    assert!(s.contains("contoso-com.idf:"), "{s}");

    // A flow target: who writes it, by precedence.
    let at = find(&text, "flow accountEnabled", 0, 6);
    let s = hover_text(c.hover(&u, at));
    assert!(s.contains("accountEnabled boolean"), "{s}");
    assert!(
        s.contains("Written by (the lowest precedence wins):"),
        "{s}"
    );
    assert!(
        s.contains("- precedence 102: \"In from AD - User AccountEnabled\""),
        "{s}"
    );

    // A parameter: declared by the connector, valued by the deployment.
    let at = find(&text, "%Domain.FQDN%", 0, 2);
    let s = hover_text(c.hover(&u, at));
    assert!(s.contains("%Domain.FQDN%: string"), "{s}");
    assert!(s.contains("[connectors.\"contoso.com\".parameters]"), "{s}");

    // A rule: link type and precedence.
    let at = find(&text, "In from AD - User Join", 0, 3);
    let s = hover_text(c.hover(&u, at));
    assert!(s.contains("inbound rule \"In from AD - User Join\""), "{s}");
    assert!(s.contains("Link `provision`: joins, or projects"), "{s}");
    assert!(s.contains("Precedence 100"), "{s}");
    let at = find(&text, "link join", 0, 6);
    let s = hover_text(c.hover(&u, at));
    assert!(s.contains("Link `join`"), "{s}");

    // Object types, connectors and constants.
    let at = find(&text, "target person", 0, 8);
    let s = hover_text(c.hover(&u, at));
    assert!(s.starts_with("```idf\nobject person\n```"), "{s}");
    assert!(s.contains("Object type of the metaverse with"), "{s}");
    let at = find(&text, "connector \"contoso.com\"", 0, 12);
    let s = hover_text(c.hover(&u, at));
    assert!(
        s.starts_with("```idf\nconnector \"contoso.com\" ad\n```"),
        "{s}"
    );
    assert!(s.contains("%Domain.FQDN%"), "{s}");
    let at = find(&text, "<- True", 0, 4);
    let s = hover_text(c.hover(&u, at));
    assert_eq!(s, "```idf\nTrue\n```\n\nA boolean constant.\n");
    // Nothing under a keyword.
    assert!(c.hover(&u, find(&text, "  scope {", 0, 3)).is_none());
    c.shutdown();
}

fn labels(items: &[CompletionItem]) -> Vec<&str> {
    items.iter().map(|i| i.label.as_str()).collect()
}

fn owned_labels(items: &[CompletionItem]) -> Vec<String> {
    items.iter().map(|i| i.label.clone()).collect()
}

#[test]
fn completion_offers_what_fits_the_context() {
    let mut c = Client::start();
    let dir = bundle_dir();
    let (u, text) = c.open(&dir.join("inbound/contoso-com-user.idf"));
    let (ou, otext) = c.open(&dir.join("outbound/contoso-onmicrosoft-com-user.idf"));

    // After `flow `: the target type's attributes (the metaverse person here).
    // The cursor is after `cn`: the word before it is replaced.
    let at = find(&text, "flow cn", 0, 7);
    let items = c.completion(&u, at);
    let l = labels(&items);
    assert!(
        l.contains(&"displayName") && l.contains(&"sourceAnchor"),
        "{l:?}"
    );
    assert!(
        !l.contains(&"sAMAccountName"),
        "a source attribute after flow"
    );
    let cn = items.iter().find(|i| i.label == "cn").unwrap();
    match cn.text_edit.as_ref().unwrap() {
        CompletionTextEdit::Edit(e) => {
            assert_eq!(
                e.range,
                Range::new(Position::new(at.line, at.character - 2), at)
            );
            assert_eq!(e.new_text, "cn");
        }
        other => panic!("{other:?}"),
    }
    // Outbound: the connector type's attributes after `flow`.
    let at = find(&otext, "flow ", 0, 5);
    let l2 = c.completion(&ou, at);
    assert!(
        labels(&l2).contains(&"userPrincipalName"),
        "{:?}",
        labels(&l2)
    );

    // After `[` in an expression: the source type's attributes, closed with `]`.
    let at = find(&text, "[cn]", 0, 3);
    let items = c.completion(&u, at);
    let sam = items
        .iter()
        .find(|i| i.label == "sAMAccountName")
        .expect("source attribute");
    match sam.text_edit.as_ref().unwrap() {
        CompletionTextEdit::Edit(e) => {
            assert_eq!(
                e.range,
                Range::new(Position::new(at.line, at.character - 2), at)
            );
            assert_eq!(e.new_text, "sAMAccountName");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !labels(&items).contains(&"sourceAnchor"),
        "a target attribute after ["
    );

    // In an expression: functions with argument snippets, constants, attributes in brackets.
    let at = find(&text, "<- StringFromSid", 0, 3);
    let items = c.completion(&u, at);
    let f = items.iter().find(|i| i.label == "Left").expect("functions");
    assert_eq!(f.insert_text_format, Some(InsertTextFormat::SNIPPET));
    match f.text_edit.as_ref().unwrap() {
        CompletionTextEdit::Edit(e) => assert_eq!(e.new_text, "Left(${1:string}, ${2:numChars})"),
        other => panic!("{other:?}"),
    }
    let l = labels(&items);
    assert!(
        l.contains(&"IgnoreThisFlow") && l.contains(&"UTF8"),
        "constants"
    );
    assert!(items.iter().any(|i| matches!(&i.text_edit, Some(CompletionTextEdit::Edit(e)) if e.new_text == "[sAMAccountName]")));

    // After `%`: the parameters in scope.
    let at = find(&text, "%Domain.FQDN%", 0, 1);
    let l = owned_labels(&c.completion(&u, at));
    for p in ["Domain.FQDN", "Forest.Netbios", "Connector.ID"] {
        assert!(l.contains(&p.to_string()), "{p} in {l:?}");
    }

    // Keywords at the start of a rule item, scope operators after a scope attribute.
    let at = find(&text, "  precedence 102", 0, 2);
    let l = owned_labels(&c.completion(&u, at));
    for k in ["flow", "scope", "join", "precedence", "link"] {
        assert!(l.contains(&k.to_string()), "{k} in {l:?}");
    }
    let at = find(&text, "NOTEQUAL", 0, 0);
    let l = owned_labels(&c.completion(&u, at));
    assert!(
        l.contains(&"ISNOTBITSET".to_string()) && l.contains(&"NOTEQUAL".to_string()),
        "{l:?}"
    );
    // In a scope block: the source attributes at the start of a clause.
    let at = find(&text, "    adminDescription       NOTSTARTSWITH", 0, 4);
    let l = owned_labels(&c.completion(&u, at));
    assert!(
        l.contains(&"adminDescription".to_string()) && l.contains(&"sAMAccountName".to_string()),
        "{l:?}"
    );
    assert!(!l.contains(&"NOTEQUAL".to_string()), "{l:?}");
    // In a join block: after `=`, the target type's attributes.
    let at = find(&text, "= sourceAnchorBinary", 0, 2);
    let l = owned_labels(&c.completion(&u, at));
    assert!(l.contains(&"sourceAnchorBinary".to_string()), "{l:?}");
    assert!(!l.contains(&"objectGUID".to_string()), "{l:?}");
    // After `source`: the connector's object types.
    let at = find(&text, "source user", 0, 7);
    let l = owned_labels(&c.completion(&u, at));
    assert!(
        l.contains(&"user".to_string()) && l.contains(&"group".to_string()),
        "{l:?}"
    );
    // Nothing in a comment.
    let at = find(&text, "# Added: the binary", 0, 9);
    assert!(c.completion(&u, at).is_empty());
    // After `link`: the link types.
    let at = find(&text, "link provision", 0, 5);
    let l = owned_labels(&c.completion(&u, at));
    assert_eq!(l, ["join", "provision", "stickyjoin", "joinnoflow"]);
    c.shutdown();
}

#[test]
fn definition_and_references_of_attributes() {
    let mut c = Client::start();
    let dir = bundle_dir();
    let (u, text) = c.open(&dir.join("inbound/contoso-com-user.idf"));
    let schema = dir.join("schema/contoso-com.idf");
    let schema_text = std::fs::read_to_string(&schema).unwrap();
    let bundle = dir.join("bundle.idf");
    let bundle_text = std::fs::read_to_string(&bundle).unwrap();

    // A source attribute goes to its line in the connector's schema.
    let at = find(&text, "[userAccountControl]", 0, 3);
    let l = c.definition(&u, at).expect("a definition");
    assert_eq!(l.uri, uri(&schema));
    let user_type = schema_text.find("object user anchor").unwrap();
    let decl = user_type
        + schema_text[user_type..]
            .find("userAccountControl ")
            .unwrap();
    assert_eq!(
        l.range,
        Range::new(pos(&schema_text, decl), pos(&schema_text, decl + 18))
    );
    // A flow target goes to the metaverse declaration.
    let at = find(&text, "flow accountEnabled", 0, 5);
    let l = c.definition(&u, at).unwrap();
    assert_eq!(l.uri, uri(&bundle));
    assert_eq!(l.range, range_of(&bundle_text, "accountEnabled", 0));
    // Object types and connectors.
    let at = find(&text, "source user", 0, 7);
    let l = c.definition(&u, at).unwrap();
    assert_eq!(l.uri, uri(&schema));
    assert_eq!(l.range, range_of(&schema_text, "object user", 0).skip(7));
    let at = find(&text, "connector \"contoso.com\"", 0, 12);
    let l = c.definition(&u, at).unwrap();
    let decl = find(&schema_text, "connector \"contoso.com\"", 0, 11);
    assert_eq!(
        l.range,
        Range::new(decl, Position::new(decl.line, decl.character + 11))
    );

    // Who writes accountEnabled, and where: every flow into it across the bundle.
    let refs = c.references(&u, find(&text, "flow accountEnabled", 0, 5), false);
    let mut writers = 0;
    for f in idf_files(&dir) {
        let t = std::fs::read_to_string(&f).unwrap();
        // Flows into person.accountEnabled (not device.accountEnabled).
        let expected: Vec<Range> = t
            .match_indices("flow accountEnabled ")
            .filter(|(i, _)| {
                let rule = t[..*i].rfind(" rule \"").unwrap();
                t[rule..*i].contains("\n  target person\n")
            })
            .map(|(i, _)| Range::new(pos(&t, i + 5), pos(&t, i + 19)))
            .collect();
        let got: Vec<Range> = refs
            .iter()
            .filter(|l| l.uri == uri(&f))
            .map(|l| l.range)
            .collect();
        if f.starts_with(dir.join("inbound")) {
            assert_eq!(got, expected, "{}", f.display());
            writers += expected.len();
        }
    }
    assert!(writers >= 3, "{writers}");
    // Outbound rules read it.
    let out = uri(&dir.join("outbound/contoso-onmicrosoft-com-user.idf"));
    assert!(refs.iter().any(|l| l.uri == out), "no outbound reader");
    // With the declaration.
    let with = c.references(&u, find(&text, "flow accountEnabled", 0, 5), true);
    assert_eq!(with.len(), refs.len() + 1);
    assert_eq!(with[0].uri, uri(&bundle));
    c.shutdown();
}

trait RangeExt {
    fn skip(self, n: u32) -> Range;
}

impl RangeExt for Range {
    fn skip(self, n: u32) -> Range {
        Range::new(
            Position::new(self.start.line, self.start.character + n),
            self.end,
        )
    }
}

#[test]
fn formatting_semantic_tokens_and_rename() {
    let mut c = Client::start();
    let dir = bundle_dir();
    let (u, text) = c.open(&dir.join("inbound/contoso-com-user.idf"));

    // The shipped file is formatted: nothing to do.
    let edits = c
        .request::<req::Formatting>(DocumentFormattingParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            options: FormattingOptions::default(),
            work_done_progress_params: Default::default(),
        })
        .unwrap();
    assert!(edits.is_empty(), "{edits:#?}");
    // Misaligned lines: only they are changed.
    let at = find(&text, "  precedence 102", 0, 0);
    c.edit(&u, Range::new(at, Position::new(at.line, 2)), "      ");
    let edits = c
        .request::<req::Formatting>(DocumentFormattingParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            options: FormattingOptions::default(),
            work_done_progress_params: Default::default(),
        })
        .unwrap();
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0].range,
        Range::new(Position::new(at.line, 0), Position::new(at.line + 1, 0))
    );
    assert_eq!(edits[0].new_text, "  precedence 102\n");
    let misaligned = text.replacen("\n  precedence 102", "\n      precedence 102", 1);
    assert_eq!(apply(&misaligned, &edits), text);
    // Range formatting of other lines leaves it alone; of its line fixes it.
    let elsewhere = Range::new(Position::new(0, 0), Position::new(2, 0));
    let none = c
        .request::<req::RangeFormatting>(DocumentRangeFormattingParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            range: elsewhere,
            options: FormattingOptions::default(),
            work_done_progress_params: Default::default(),
        })
        .unwrap();
    assert!(none.is_empty());
    let one = c
        .request::<req::RangeFormatting>(DocumentRangeFormattingParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            range: Range::new(Position::new(at.line, 0), Position::new(at.line, 3)),
            options: FormattingOptions::default(),
            work_done_progress_params: Default::default(),
        })
        .unwrap();
    assert_eq!(one, edits);

    // Semantic tokens: decode and look at a known line.
    let tokens = match c
        .request::<req::SemanticTokensFullRequest>(SemanticTokensParams {
            text_document: TextDocumentIdentifier::new(u.clone()),
            work_done_progress_params: Default::default(),
            partial_result_params: Default::default(),
        })
        .unwrap()
    {
        SemanticTokensResult::Tokens(t) => t.data,
        SemanticTokensResult::Partial(p) => p.data,
    };
    let (mut line, mut col) = (0, 0);
    let mut decoded = Vec::new();
    for t in &tokens {
        if t.delta_line > 0 {
            col = 0;
        }
        line += t.delta_line;
        col += t.delta_start;
        decoded.push((line, col, t.length, t.token_type, t.token_modifiers_bitset));
    }
    let sid = find(&text, "StringFromSid([objectSid])", 0, 0);
    let on_line: Vec<(u32, u32, u32, u32)> = decoded
        .iter()
        .filter(|t| t.0 == sid.line)
        .map(|t| (t.1, t.2, t.3, t.4))
        .collect();
    // keyword `flow`, the written attribute, `<-`, the function, the read attribute.
    let target = find(&text, "flow objectSidString", 0, 5);
    assert_eq!(
        on_line,
        [
            (2, 4, 0, 0),
            (target.character, 15, 5, 2),
            (sid.character - 3, 2, 10, 0),
            (sid.character, 13, 4, 0),
            (sid.character + 15, 9, 5, 0),
        ]
    );

    // Rename a rule: one edit on its name; a taken name is refused.
    let at = find(&text, "In from AD - User Join", 0, 4);
    let prep = c.request::<req::PrepareRenameRequest>(Client::at(&u, at));
    let name = range_of(&text, "In from AD - User Join", 0);
    assert_eq!(prep, Some(PrepareRenameResponse::Range(name)));
    let edit = c
        .request::<req::Rename>(RenameParams {
            text_document_position: Client::at(&u, at),
            new_name: "In from AD - User \"Join\"".into(),
            work_done_progress_params: Default::default(),
        })
        .unwrap();
    let changes = edit.changes.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[&u],
        [TextEdit::new(name, "In from AD - User \\\"Join\\\"".into())]
    );
    let refused = c.request_raw(
        req::Rename::METHOD,
        serde_json::to_value(RenameParams {
            text_document_position: Client::at(&u, at),
            new_name: "In from AD - User AccountEnabled".into(),
            work_done_progress_params: Default::default(),
        })
        .unwrap(),
    );
    assert_eq!(
        refused["error"],
        "a rule named \"In from AD - User AccountEnabled\" already exists"
    );
    // Not on a rule name: nothing to rename.
    let at = find(&text, "[cn]", 0, 1);
    assert_eq!(
        c.request::<req::PrepareRenameRequest>(Client::at(&u, at)),
        None
    );
    c.shutdown();
}

const SCHEMA: &str = r#"bundle "ünïcode"

metaverse {
  object person {
    displayName string
    photo       binary
    proxies     string multi
  }
}

connector "hr" csv {
  param Region
  object worker anchor id {
    id      string
    name    string
    aliases string multi
  }
}
"#;

#[test]
fn non_ascii_text_uses_utf16_positions() {
    // 𝄞 is two UTF-16 units (four bytes), é one unit (two bytes).
    let rules = "# Règles — 𝄞\ninbound rule \"Entrée 𝄞\" {\n  connector \"hr\"\n  source worker\n  target person\n  link provision\n  precedence 1\n  flow displayName <- \"𝄞é\" & [nmae] & %Region%\n  flow proxies     <- [aliases]\n}\n";
    let dir = scratch("utf16", &[("bundle.idf", SCHEMA), ("rules.idf", rules)]);
    let mut c = Client::start();
    let path = dir.join("rules.idf");
    let (u, _) = c.open(&path);
    // Line 7: `  flow displayName <- "𝄞é" & [nmae] & %Region%`; `[nmae]` starts at byte 33,
    // character 30 (𝄞 counts two).
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert_eq!(codes(&d), ["E0201"]);
    assert_eq!(
        d[0].range,
        Range::new(Position::new(7, 30), Position::new(7, 36))
    );
    // The quick fix edits the name inside the brackets.
    let actions = c.code_actions(&u, d[0].range);
    let e = &actions[0].edit.as_ref().unwrap().changes.as_ref().unwrap()[&u][0];
    assert_eq!(
        e.range,
        Range::new(Position::new(7, 31), Position::new(7, 35))
    );
    assert_eq!(e.new_text, "name");
    // Hover and definition on the parameter after the non-ASCII text.
    let h = c.hover(&u, Position::new(7, 41)).unwrap();
    assert_eq!(
        h.range,
        Some(Range::new(Position::new(7, 40), Position::new(7, 46)))
    );
    let l = c.definition(&u, Position::new(7, 42)).unwrap();
    assert_eq!(l.uri, uri(&dir.join("bundle.idf")));
    assert_eq!(
        l.range,
        Range::new(Position::new(11, 8), Position::new(11, 14))
    );
    // Completion inside `[nmae]` replaces the word by UTF-16 range.
    let items = c.completion(&u, Position::new(7, 33));
    let name = items.iter().find(|i| i.label == "name").unwrap();
    match name.text_edit.as_ref().unwrap() {
        CompletionTextEdit::Edit(e) => {
            assert_eq!(
                e.range,
                Range::new(Position::new(7, 31), Position::new(7, 33))
            )
        }
        other => panic!("{other:?}"),
    }
    // An incremental edit given in UTF-16 positions lands on the right bytes.
    c.edit(
        &u,
        Range::new(Position::new(7, 31), Position::new(7, 35)),
        "name",
    );
    c.wait_for(&u, |d| d.is_empty());
    // Rename a rule whose name has non-ASCII text.
    let prep = c.request::<req::PrepareRenameRequest>(Client::at(&u, Position::new(1, 16)));
    assert_eq!(
        prep,
        Some(PrepareRenameResponse::Range(Range::new(
            Position::new(1, 14),
            Position::new(1, 23)
        )))
    );
    // A type error after non-ASCII text, with its related location in the other file.
    c.edit(
        &u,
        Range::new(Position::new(8, 0), Position::new(8, 31)),
        "  flow photo       <- \"é𝄞\"",
    );
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert_eq!(codes(&d), ["E0208"]);
    assert_eq!(
        d[0].range,
        Range::new(Position::new(8, 22), Position::new(8, 27))
    );
    let related = &d[0].related_information.as_ref().unwrap()[0];
    assert_eq!(related.location.uri, uri(&dir.join("bundle.idf")));
    assert_eq!(
        related.location.range,
        Range::new(Position::new(5, 4), Position::new(5, 9))
    );
    c.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_file_outside_any_bundle_is_checked_alone() {
    let mut c = Client::start();
    let u = Uri::from_str("untitled:Untitled-1").unwrap();
    c.open_text(&u, "inbound rule \"r\" {\n  connector \"x\"\n}\n");
    let d = c.wait_for(&u, |d| !d.is_empty());
    assert!(codes(&d).contains(&"E0104".to_string()), "{d:#?}");
    // Closing it clears its diagnostics.
    c.notify::<note::DidCloseTextDocument>(DidCloseTextDocumentParams {
        text_document: TextDocumentIdentifier::new(u.clone()),
    });
    // A request round-trip lets the server process the close first.
    let _ = c.request_raw(req::Shutdown::METHOD, Value::Null);
    assert_eq!(c.diagnostics.get(&u).map(Vec::len), Some(0));
    c.notify::<note::Exit>(());
}

#[test]
fn disk_changes_and_closing_a_document() {
    let rules = "inbound rule \"r\" {\n  connector \"hr\"\n  source worker\n  target person\n  link provision\n  precedence 1\n  flow displayName <- [name]\n}\n";
    let dir = scratch("disk", &[("bundle.idf", SCHEMA), ("rules.idf", rules)]);
    let mut c = Client::start();
    let (u, text) = c.open(&dir.join("rules.idf"));
    c.wait_for(&u, |d| d.is_empty());
    // An unsaved edit with an error, then the document is closed: the text on disk counts again.
    c.edit(&u, range_of(&text, "[name]", 0), "[nmae]");
    c.wait_for(&u, |d| codes(d) == ["E0201"]);
    c.notify::<note::DidCloseTextDocument>(DidCloseTextDocumentParams {
        text_document: TextDocumentIdentifier::new(u.clone()),
    });
    c.wait_for(&u, |d| d.is_empty());
    // A file created on disk and reported by the editor joins the bundle.
    let added = dir.join("more/other.idf");
    std::fs::create_dir_all(added.parent().unwrap()).unwrap();
    std::fs::write(
        &added,
        rules
            .replace("\"r\"", "\"r2\"")
            .replace("[name]", "[id] & [nom]"),
    )
    .unwrap();
    c.notify::<note::DidChangeWatchedFiles>(DidChangeWatchedFilesParams {
        changes: vec![FileEvent::new(uri(&added), FileChangeType::CREATED)],
    });
    let d = c.wait_for(&uri(&added), |d| !d.is_empty());
    assert_eq!(codes(&d), ["E0201"]);
    assert_eq!(
        d[0].range,
        Range::new(Position::new(6, 29), Position::new(6, 34))
    );
    // Deleted again: its diagnostics are cleared.
    std::fs::remove_file(&added).unwrap();
    c.notify::<note::DidChangeWatchedFiles>(DidChangeWatchedFilesParams {
        changes: vec![FileEvent::new(uri(&added), FileChangeType::DELETED)],
    });
    c.wait_for(&uri(&added), |d| d.is_empty());
    c.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
