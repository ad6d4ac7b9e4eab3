// The idflow extension: starts `idflow lsp` for `.idf` files and connects VS Code to it.
//
// Everything the editor shows (diagnostics, hover, completion, navigation, formatting, quick
// fixes, semantic highlighting, rename) comes from the language server; this file only starts
// it with the configured executable and restarts it when that setting changes.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
} from "vscode-languageclient/node";

let client: LanguageClient | undefined;

function serverOptions(): ServerOptions {
  const path = vscode.workspace
    .getConfiguration("idflow")
    .get<string>("server.path", "idflow");
  return { command: path || "idflow", args: ["lsp"] };
}

async function start(context: vscode.ExtensionContext): Promise<void> {
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "idf" },
      { scheme: "untitled", language: "idf" },
    ],
    synchronize: {
      // Files created, changed or deleted outside the editor change their bundle.
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.idf"),
    },
  };
  client = new LanguageClient(
    "idflow",
    "idflow",
    serverOptions(),
    clientOptions,
  );
  context.subscriptions.push(client);
  await client.start();
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("idflow.server.path")) {
        await client?.stop();
        await start(context);
      }
    }),
  );
  await start(context);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
