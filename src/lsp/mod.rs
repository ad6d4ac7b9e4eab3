//! The language server behind `idflow lsp`.
//!
//! Consumes: LSP messages from an editor (over stdio, or any `lsp_server::Connection`).
//! Produces: diagnostics for every file of the bundles the open documents belong to, and the
//! answers to hover, completion, go to definition, find references, formatting, code action,
//! semantic token and rename requests. One thread runs the loop: an edit marks its bundle for
//! a re-check after a short quiet time (the debounce), a request checks it at once when it is
//! out of date, so answers always describe the text the editor has.
//!
//! | module | capability |
//! |---|---|
//! | `workspace` | documents, bundles, analyses, the debounce |
//! | `position` | byte offsets ⇄ UTF-16 positions, URIs ⇄ paths |
//! | `index` | the symbol index behind hover, navigation and rename |
//! | `diagnostics` | publishing the checker's diagnostics |
//! | `hover`, `completion`, `navigation`, `edits`, `tokens` | one request family each |

mod completion;
mod diagnostics;
mod edits;
mod hover;
mod index;
mod navigation;
mod position;
mod tokens;
mod workspace;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{self as note, Notification as _};
use lsp_types::request::{self as req, Request as _};
use lsp_types::{
    CodeActionProviderCapability, CompletionOptions, HoverProviderCapability, InitializeParams,
    OneOf, PositionEncodingKind, RenameOptions, SemanticTokensFullOptions, SemanticTokensOptions,
    SemanticTokensServerCapabilities, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Uri,
    WorkDoneProgressOptions,
};
use serde_json::Value;
use std::rc::Rc;
use std::time::{Duration, Instant};
use workspace::{Analysis, UnitKey, Workspace};

/// Why the server stopped abnormally.
#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lsp_server::ProtocolError> for ServerError {
    fn from(e: lsp_server::ProtocolError) -> Self {
        ServerError(e.to_string())
    }
}

/// Runs the server on stdin and stdout until the editor ends the session.
pub fn run_stdio() -> Result<(), ServerError> {
    let (connection, io) = Connection::stdio();
    serve(connection)?;
    io.join().map_err(|e| ServerError(e.to_string()))
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                will_save: None,
                will_save_wait_until: None,
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["[".into(), "%".into(), "\"".into()]),
            ..Default::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        document_range_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: WorkDoneProgressOptions::default(),
        })),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                work_done_progress_options: WorkDoneProgressOptions::default(),
                legend: tokens::legend(),
                range: None,
                full: Some(SemanticTokensFullOptions::Bool(true)),
            },
        )),
        ..Default::default()
    }
}

/// Serves one session on `connection`: the initialize handshake, then messages until
/// `shutdown` and `exit` (or until the connection closes).
///
/// `initializationOptions` may hold `{"debounceMs": N}`: how long after the last edit a
/// bundle is re-checked (150 by default).
pub fn serve(connection: Connection) -> Result<(), ServerError> {
    let (id, params) = connection.initialize_start()?;
    let init: InitializeParams = serde_json::from_value(params)
        .map_err(|e| ServerError(format!("invalid initialize parameters: {e}")))?;
    let mut ws = Workspace::default();
    if let Some(ms) = init
        .initialization_options
        .as_ref()
        .and_then(|o| o.get("debounceMs"))
        .and_then(Value::as_u64)
    {
        ws.debounce.quiet = Duration::from_millis(ms);
        ws.debounce.max_wait = ws.debounce.max_wait.max(ws.debounce.quiet);
    }
    let snippets = init
        .capabilities
        .text_document
        .as_ref()
        .and_then(|t| t.completion.as_ref())
        .and_then(|c| c.completion_item.as_ref())
        .and_then(|i| i.snippet_support)
        .unwrap_or(false);
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": { "name": "idflow", "version": env!("CARGO_PKG_VERSION") },
    });
    connection.initialize_finish(id, result)?;
    let mut server = Server {
        connection,
        ws,
        published: diagnostics::Published::default(),
        completion: completion::Options { snippets },
    };
    server.run()
}

struct Server {
    connection: Connection,
    ws: Workspace,
    published: diagnostics::Published,
    completion: completion::Options,
}

/// A request's answer or its error.
type Answer = Result<Value, (ErrorCode, String)>;

fn to_value<T: serde::Serialize>(v: T) -> Answer {
    serde_json::to_value(v).map_err(|e| (ErrorCode::InternalError, e.to_string()))
}

impl Server {
    fn run(&mut self) -> Result<(), ServerError> {
        loop {
            let msg = match self.ws.next_due() {
                Some(due) => {
                    let wait = due.saturating_duration_since(Instant::now());
                    match self.connection.receiver.recv_timeout(wait) {
                        Ok(m) => Some(m),
                        Err(e) if e.is_timeout() => None,
                        Err(_) => return Ok(()),
                    }
                }
                None => match self.connection.receiver.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(()),
                },
            };
            match msg {
                Some(Message::Request(r)) => {
                    if self.connection.handle_shutdown(&r)? {
                        return Ok(());
                    }
                    let id = r.id.clone();
                    let response = match self.request(r) {
                        Ok(v) => Response::new_ok(id, v),
                        Err((code, message)) => Response::new_err(id, code as i32, message),
                    };
                    self.send(response.into());
                }
                Some(Message::Notification(n)) => {
                    if n.method == note::Exit::METHOD {
                        return Ok(());
                    }
                    self.notification(n);
                }
                Some(Message::Response(_)) => {}
                None => {}
            }
            // A burst of messages (several documents opened at once) is handled before the
            // re-check it makes due.
            if self.connection.receiver.is_empty() {
                for key in self.ws.due(Instant::now()) {
                    self.analysis(&key);
                }
            }
        }
    }

    fn send(&self, msg: Message) {
        // A closed connection ends the loop at the next receive.
        let _ = self.connection.sender.send(msg);
    }

    /// The current analysis of a unit; when it was checked just now, its diagnostics are
    /// published.
    fn analysis(&mut self, key: &UnitKey) -> Rc<Analysis> {
        let (a, fresh) = self.ws.analysis(key);
        if fresh {
            let ws = &self.ws;
            let updates = self
                .published
                .update(key, &a, |uri| ws.document(uri).map(|d| d.version));
            for p in updates {
                self.send(Notification::new(note::PublishDiagnostics::METHOD.into(), p).into());
            }
        }
        a
    }

    /// The analysis a document is part of, and its file there.
    fn document(
        &mut self,
        uri: &Uri,
    ) -> Result<(Rc<Analysis>, crate::source::FileId), (ErrorCode, String)> {
        let key = self.ws.unit_of(uri);
        let a = self.analysis(&key);
        match a.file_of(uri) {
            Some(f) => Ok((a, f)),
            None => Err((
                ErrorCode::InvalidParams,
                format!("{} is not open and not part of a bundle", uri.as_str()),
            )),
        }
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            note::DidOpenTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp_types::DidOpenTextDocumentParams>(
                    note::DidOpenTextDocument::METHOD,
                ) {
                    let d = p.text_document;
                    self.ws.open(d.uri, d.text, d.version);
                }
            }
            note::DidChangeTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp_types::DidChangeTextDocumentParams>(
                    note::DidChangeTextDocument::METHOD,
                ) {
                    let d = p.text_document;
                    self.ws.change(&d.uri, d.version, p.content_changes);
                }
            }
            note::DidSaveTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp_types::DidSaveTextDocumentParams>(
                    note::DidSaveTextDocument::METHOD,
                ) {
                    self.ws.saved(&p.text_document.uri);
                }
            }
            note::DidCloseTextDocument::METHOD => {
                if let Ok(p) = n.extract::<lsp_types::DidCloseTextDocumentParams>(
                    note::DidCloseTextDocument::METHOD,
                ) {
                    let (key, gone) = self.ws.close(&p.text_document.uri);
                    if gone {
                        for p in self.published.forget(&key) {
                            self.send(
                                Notification::new(note::PublishDiagnostics::METHOD.into(), p)
                                    .into(),
                            );
                        }
                    }
                }
            }
            note::DidChangeWatchedFiles::METHOD => {
                if let Ok(p) = n.extract::<lsp_types::DidChangeWatchedFilesParams>(
                    note::DidChangeWatchedFiles::METHOD,
                ) {
                    for change in p.changes {
                        self.ws.disk_changed(&change.uri);
                    }
                }
            }
            _ => {}
        }
    }

    fn request(&mut self, r: Request) -> Answer {
        fn params<P: serde::de::DeserializeOwned>(r: Request) -> Result<P, (ErrorCode, String)> {
            serde_json::from_value(r.params).map_err(|e| (ErrorCode::InvalidParams, e.to_string()))
        }
        match r.method.as_str() {
            req::HoverRequest::METHOD => {
                let p: lsp_types::HoverParams = params(r)?;
                let at = p.text_document_position_params;
                let (a, f) = self.document(&at.text_document.uri)?;
                to_value(hover::hover(&a, f, a.offset(f, at.position)))
            }
            req::Completion::METHOD => {
                let p: lsp_types::CompletionParams = params(r)?;
                let at = p.text_document_position;
                let (a, f) = self.document(&at.text_document.uri)?;
                let items =
                    completion::completion(&a, f, a.offset(f, at.position), self.completion);
                to_value(lsp_types::CompletionResponse::Array(items))
            }
            req::GotoDefinition::METHOD => {
                let p: lsp_types::GotoDefinitionParams = params(r)?;
                let at = p.text_document_position_params;
                let (a, f) = self.document(&at.text_document.uri)?;
                let found = navigation::definition(&a, f, a.offset(f, at.position));
                to_value(found.map(lsp_types::GotoDefinitionResponse::Scalar))
            }
            req::References::METHOD => {
                let p: lsp_types::ReferenceParams = params(r)?;
                let at = p.text_document_position;
                let (a, f) = self.document(&at.text_document.uri)?;
                let offset = a.offset(f, at.position);
                to_value(navigation::references(
                    &a,
                    f,
                    offset,
                    p.context.include_declaration,
                ))
            }
            req::Formatting::METHOD => {
                let p: lsp_types::DocumentFormattingParams = params(r)?;
                let (a, f) = self.document(&p.text_document.uri)?;
                to_value(edits::format(&a, f, None))
            }
            req::RangeFormatting::METHOD => {
                let p: lsp_types::DocumentRangeFormattingParams = params(r)?;
                let (a, f) = self.document(&p.text_document.uri)?;
                to_value(edits::format(&a, f, Some(p.range)))
            }
            req::CodeActionRequest::METHOD => {
                let p: lsp_types::CodeActionParams = params(r)?;
                let (a, f) = self.document(&p.text_document.uri)?;
                to_value(edits::code_actions(&a, f, p.range))
            }
            req::SemanticTokensFullRequest::METHOD => {
                let p: lsp_types::SemanticTokensParams = params(r)?;
                let (a, f) = self.document(&p.text_document.uri)?;
                to_value(tokens::semantic_tokens(&a, f))
            }
            req::PrepareRenameRequest::METHOD => {
                let p: lsp_types::TextDocumentPositionParams = params(r)?;
                let (a, f) = self.document(&p.text_document.uri)?;
                let range = navigation::prepare_rename(&a, f, a.offset(f, p.position));
                to_value(range.map(lsp_types::PrepareRenameResponse::Range))
            }
            req::Rename::METHOD => {
                let p: lsp_types::RenameParams = params(r)?;
                let at = p.text_document_position;
                let (a, f) = self.document(&at.text_document.uri)?;
                let offset = a.offset(f, at.position);
                match navigation::rename(&a, f, offset, &p.new_name) {
                    Ok(edit) => to_value(edit),
                    Err(why) => Err((ErrorCode::InvalidRequest, why)),
                }
            }
            other => Err((
                ErrorCode::MethodNotFound,
                format!("idflow lsp does not handle {other}"),
            )),
        }
    }
}
