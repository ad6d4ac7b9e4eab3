#!/usr/bin/env python3
"""SCIM export throughput: idflow's export to a local scim2-server with concurrency 1 and 8,
side by side in one run, with the CPU time of each process.

For each concurrency, in a fresh directory and against a fresh scim2-server (PyPI) on a free
loopback port: generates an AD export (`idflow gen ad`), imports it and syncs it through the
shipped default rules and SCIM mapping (examples/scim), then times two export steps alone
(`idflow run --profile export`):

  adds     every user and group POSTed (users with their manager, groups with their members)
  updates  after a title change of every user in AD (import, sync): one PATCH per user

For each step it prints the changes, the wall time, changes per second, and the CPU seconds of
the idflow process (its whole run: start, state load, export) and of the server process (during
the step), each also as a share of the wall time. A process near 100% of one core is the limit;
scim2-server is single-threaded Python (its request threads share one interpreter lock).

Usage (from the repository root, after `cargo build --release`):

    python3 benches/scim_export.py --users 2000 --groups 100 --concurrency 1 8
    python3 benches/scim_export.py --users 2000 --groups 100 --concurrency 1 8 --backlog 128

scim2-server's listening socket keeps socketserver's queue of 5 connections; it answers
HTTP/1.0, one connection per request, so with more connections than that being opened at once
the kernel drops some (ListenOverflows in /proc/net/netstat) and the client's connect waits
for the SYN to be sent again (1 s). `--backlog` runs the same server with a longer queue.

scim2-server is `--server`, else ~/.cache/idflow/scim2-venv/bin/scim2-server (where .ci/run
installs it), else `scim2-server` on the PATH. Results are recorded in benches/RESULTS.md.
Nothing here is a test: it measures.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-token"
ENTRA = "contoso.onmicrosoft.com"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu(pid):
    """User + system CPU seconds of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(binary, dir_, backlog):
    port = free_port()
    log = open(os.path.join(dir_, "server.log"), "w")
    args = ["--hostname", "127.0.0.1", "--port", str(port), "--bearer-token", TOKEN]
    if backlog:
        # The same command with a longer listen queue than socketserver's 5.
        python = os.path.join(os.path.dirname(binary), "python")
        code = (
            "import socketserver, sys; "
            f"socketserver.TCPServer.request_queue_size = {backlog}; "
            "from scim2_server.testserver.cli import main; "
            "sys.argv[0] = 'scim2-server'; main()"
        )
        cmd = [python, "-c", code, *args]
    else:
        cmd = [binary, *args]
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("scim2-server did not start")


def deployment(dir_, port, concurrency):
    with open(os.path.join(dir_, "idflow.toml"), "w") as f:
        f.write(
            f"""bundle = "{ROOT}/rules/entra-default"
state = "idflow.db"
delete_threshold = 1000000

[connectors."contoso.com"]
kind = "ldif"
path = "ad.ldif"
parameters = {{ "Forest.FQDN" = "contoso.com", "Forest.LDAP" = "DC=contoso,DC=com", "Forest.Netbios" = "CONTOSO" }}

[[connectors."contoso.com".partitions]]
name = "DC=contoso,DC=com"
include = ["OU=Users,OU=CORP,DC=contoso,DC=com", "OU=Groups,OU=CORP,DC=contoso,DC=com", "CN=Users,DC=contoso,DC=com"]
parameters = {{ "Domain.FQDN" = "contoso.com", "Domain.LDAP" = "DC=contoso,DC=com", "Domain.Netbios" = "CONTOSO" }}

[connectors."{ENTRA}"]
kind = "scim"
url = "http://127.0.0.1:{port}/v2"
token_env = "BENCH_SCIM_TOKEN"
concurrency = {concurrency}
mapping = "{ROOT}/examples/scim/mapping.toml"
"""
        )


def idflow(bin_, dir_, *args):
    """Runs idflow; returns (stdout + stderr, CPU seconds of the process)."""
    p = subprocess.Popen(
        [bin_, *args],
        cwd=dir_,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "BENCH_SCIM_TOKEN": TOKEN, "RUST_LOG": "warn"},
    )
    out = p.stdout.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0 and "export" not in args:
        sys.exit(f"idflow {' '.join(args)} failed:\n{out}")
    return out, usage.ru_utime + usage.ru_stime


def export_step(bin_, dir_, server_pid):
    before = proc_cpu(server_pid)
    t = time.monotonic()
    out, cpu = idflow(bin_, dir_, "run", "--config", "idflow.toml", "--profile", "export", "--connector", ENTRA)
    wall = time.monotonic() - t
    server = proc_cpu(server_pid) - before
    m = re.search(r"export " + re.escape(ENTRA) + r": (\d+) adds, (\d+) updates, (\d+) deletes.*?(\d+) errors, (\d+) ms", out)
    if not m:
        sys.exit(f"no export report:\n{out}")
    adds, updates, deletes, errors, ms = map(int, m.groups())
    if errors:
        sys.exit(f"the export had errors:\n{out}")
    return {
        "changes": adds + updates + deletes,
        "step_s": ms / 1000,
        "wall": wall,
        "idflow_cpu": cpu,
        "server_cpu": server,
    }


def prepare(bin_, dir_):
    for args in (
        ("--profile", "full-import", "--connector", "contoso.com"),
        ("--profile", "full-import", "--connector", ENTRA),
        ("--profile", "full-sync"),
    ):
        idflow(bin_, dir_, "run", "--config", "idflow.toml", *args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--idflow", default=os.path.join(ROOT, "target/release/idflow"))
    ap.add_argument("--server", default=None)
    ap.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="the server's listen queue (default: socketserver's 5)",
    )
    args = ap.parse_args()
    server_bin = args.server or os.path.expanduser("~/.cache/idflow/scim2-venv/bin/scim2-server")
    if not os.path.exists(server_bin):
        server_bin = shutil.which("scim2-server") or sys.exit("scim2-server is not installed")
    rows = []
    for c in args.concurrency:
        dir_ = tempfile.mkdtemp(prefix=f"idflow-scim-bench-{c}-")
        try:
            server, port = start_server(server_bin, dir_, args.backlog)
            try:
                deployment(dir_, port, c)
                subprocess.run(
                    [args.idflow, "gen", "ad", "--users", str(args.users), "--groups", str(args.groups),
                     "--seed", str(args.seed), "-o", os.path.join(dir_, "ad.ldif")],
                    check=True,
                )
                prepare(args.idflow, dir_)
                rows.append((c, "adds", export_step(args.idflow, dir_, server.pid)))
                # Every user's title changes in AD.
                path = os.path.join(dir_, "ad.ldif")
                with open(path) as f:
                    text = f.read()
                with open(path, "w") as f:
                    f.write(re.sub(r"^title: (.*)$", r"title: \1 (acting)", text, flags=re.M))
                for a in (("--profile", "full-import", "--connector", "contoso.com"), ("--profile", "delta-sync")):
                    idflow(args.idflow, dir_, "run", "--config", "idflow.toml", *a)
                rows.append((c, "updates", export_step(args.idflow, dir_, server.pid)))
            finally:
                server.kill()
                server.wait()
        finally:
            shutil.rmtree(dir_, ignore_errors=True)
    backlog = f", listen queue {args.backlog}" if args.backlog else ""
    print(f"{args.users} users, {args.groups} groups (idflow gen ad --seed {args.seed}); one scim2-server per concurrency{backlog}\n")
    print("| concurrency | export | changes | step s | changes/s | idflow CPU s (% of wall) | scim2-server CPU s (% of wall) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for c, what, r in rows:
        wall = r["wall"]
        print(
            f"| {c} | {what} | {r['changes']} | {r['step_s']:.2f} | {r['changes'] / r['step_s']:.0f} | "
            f"{r['idflow_cpu']:.2f} ({100 * r['idflow_cpu'] / wall:.0f}%) | "
            f"{r['server_cpu']:.2f} ({100 * r['server_cpu'] / wall:.0f}%) |"
        )


if __name__ == "__main__":
    main()
