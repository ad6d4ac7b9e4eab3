#!/usr/bin/env python3
"""The sync-cycle benchmark: whole `idflow run` cycles over a generated AD export.

Generates an Active Directory export with `idflow gen ad`, then for each engine (JIT and
interpreter, side by side in one run) runs, in a fresh directory with the quickstart's
deployment (the shipped default rules, a JSON-lines file standing for Entra ID, the delete
threshold raised):

  first    the first cycle (every object imported, projected, provisioned and exported)
  nochange a second cycle with no change at all
  churn    a cycle after 1% churn of the export: modified users (0.6%), deleted users (0.2%,
           with the references to them removed, as AD does), added users (0.2%) and one
           renamed user (references follow the new DN)

and prints one table: per cycle, wall time, peak RSS and its excess over the process's own
baseline per object (the baseline is a cycle over a 10-user export), state database bytes per
object; per step, its duration and objects/s (objects in the export / step seconds).

Usage (from the repository root, after `cargo build --release`):

    python3 benches/cycle.py --users 100000 --groups 5000 --seed 7

Results are recorded in benches/RESULTS.md. Nothing here is a test: it measures.
"""

import argparse
import base64
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deployment(dir_, bundle):
    """Writes the quickstart deployment into dir_, bundle by absolute path."""
    with open(os.path.join(ROOT, "examples/quickstart/idflow.toml")) as f:
        text = f.read()
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "bundle":
            line = "bundle = %s" % json.dumps(bundle)
        elif key == "delete_threshold":
            line = "delete_threshold = 100000000"
        lines.append(line)
    with open(os.path.join(dir_, "idflow.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")


def run(exe, dir_, engine):
    """One `idflow run` cycle: (wall seconds, peak RSS bytes, step dicts, exit code)."""
    start = time.monotonic()
    p = subprocess.Popen(
        [exe, "run", "--json", "--engine", engine, "--config", "idflow.toml"],
        cwd=dir_,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    steps = [json.loads(l) for l in out.decode().splitlines() if l.startswith("{")]
    # ru_maxrss is in KiB on Linux.
    return wall, usage.ru_maxrss * 1024, steps, p.returncode


def db_bytes(dir_):
    total = 0
    for name in os.listdir(dir_):
        if name.startswith("idflow.db"):
            total += os.path.getsize(os.path.join(dir_, name))
    return total


def records(text):
    return text.split("\n\n")


def logical(rec):
    out = []
    for l in rec.split("\n"):
        if l.startswith(" ") and out:
            out[-1] += l[1:]
        else:
            out.append(l)
    return out


def value(lines, name):
    for l in lines:
        if l.startswith(name + ": "):
            return l[len(name) + 2 :]
    return None


def churn(path, fraction, seed):
    """Applies `fraction` churn to the LDIF at path; returns what it did."""
    rng = random.Random(seed)
    with open(path) as f:
        recs = records(f.read())
    users = [
        i
        for i, r in enumerate(recs)
        if "\nobjectClass: user" in r and "OU=Users,OU=CORP" in r.split("\n", 1)[0]
    ]
    objects = sum(1 for r in recs if r.startswith("dn: "))
    n = max(5, int(objects * fraction))
    n_mod, n_del, n_add = n * 6 // 10, n * 2 // 10, n * 2 // 10
    picked = rng.sample(users, n_mod + n_del + 1)
    mods, dels, ren = picked[:n_mod], picked[n_mod : n_mod + n_del], picked[-1]
    dels_dn = {value(logical(recs[i]), "dn").lower() for i in dels}

    # Modify: a new title.
    for i in mods:
        lines = logical(recs[i])
        lines = [l for l in lines if not l.startswith("title: ")]
        lines.append("title: Churned %d" % rng.randrange(1 << 30))
        recs[i] = "\n".join(lines)

    # Rename: a new CN, references follow.
    lines = logical(recs[ren])
    old_dn = value(lines, "dn")
    cn = value(lines, "cn")
    new_cn = cn + " Renamed"
    new_dn = "CN=%s,%s" % (new_cn, old_dn.split(",", 1)[1])
    recs[ren] = "\n".join(
        "dn: " + new_dn if l.startswith("dn: ") else "cn: " + new_cn if l.startswith("cn: ") else l
        for l in lines
    )

    # Add: copies of a user with new names and identifiers.
    template = logical(recs[users[0]])
    sid = base64.b64decode(value(template, "objectSid:"))
    added = []
    for k in range(n_add):
        guid = base64.b64encode(rng.randbytes(16)).decode()
        rid = (10_000_000 + k).to_bytes(4, "little")
        new_sid = base64.b64encode(sid[:-4] + rid).decode()
        name = "Bench Added%d" % k
        sam = "benchadd%d" % k
        out = []
        for l in template:
            key = l.split(":", 1)[0]
            if key == "dn":
                out.append("dn: CN=%s,OU=Users,OU=CORP,DC=contoso,DC=com" % name)
            elif key == "cn":
                out.append("cn: " + name)
            elif key == "displayName":
                out.append("displayName: " + name)
            elif key in ("sAMAccountName", "mailNickname"):
                out.append("%s: %s" % (key, sam))
            elif key == "userPrincipalName":
                out.append("userPrincipalName: %s@contoso.com" % sam)
            elif key == "mail":
                out.append("mail: %s@contoso.com" % sam)
            elif key in ("objectGUID", "mS-DS-ConsistencyGuid"):
                out.append("%s:: %s" % (key, guid))
            elif key == "objectSid":
                out.append("objectSid:: " + new_sid)
            elif key in ("manager", "proxyAddresses", "targetAddress"):
                continue
            else:
                out.append(l)
        added.append("\n".join(out))

    # Delete, dropping references to the deleted users; renamed references follow.
    kept = []
    for i, r in enumerate(recs):
        if i in dels:
            continue
        lines = logical(r)
        changed = False
        new = []
        for l in lines:
            name, sep, v = l.partition(": ")
            if sep and name != "dn" and v.lower() in dels_dn:
                changed = True
                continue
            if sep and name != "dn" and v.lower() == old_dn.lower():
                l = "%s: %s" % (name, new_dn)
                changed = True
            new.append(l)
        kept.append("\n".join(new) if changed else r)
    body = "\n\n".join(kept).rstrip("\n") + "\n\n" + "\n\n".join(added) + "\n"
    with open(path, "w") as f:
        f.write(body)
    return {"modified": n_mod, "deleted": n_del, "added": n_add, "renamed": 1}


def churn_apart(path, fraction, seed):
    """churn() in a child process of its own.

    A child's peak RSS (ru_maxrss) counts the resident size of the process it was forked from:
    Linux keeps the high-water mark of the address space an exec replaces. churn() holds the
    whole export in memory, and this process would keep that size, so every cycle run after it
    would report at least that much. The work is done in a child that exits with it.
    """
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(churn, (path, fraction, seed))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--groups", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--idflow", default=os.path.join(ROOT, "target/release/idflow"))
    ap.add_argument("--engines", default="jit,interp")
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--work", help="keep the working directories here")
    args = ap.parse_args()
    exe = os.path.abspath(args.idflow)
    if not os.access(exe, os.X_OK):
        sys.exit("no idflow binary at %s: run `cargo build --release` first" % exe)
    bundle = os.path.join(ROOT, "rules/entra-default")
    work = args.work or tempfile.mkdtemp(prefix="idflow-bench-cycle-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "ad.ldif")
    subprocess.run(
        [exe, "gen", "ad", "--users", str(args.users), "--groups", str(args.groups),
         "--seed", str(args.seed), "-o", src],
        check=True, stdout=subprocess.DEVNULL,
    )
    with open(src) as f:
        objects = sum(1 for l in f if l.startswith("dn:"))
    small = os.path.join(work, "baseline.ldif")
    subprocess.run(
        [exe, "gen", "ad", "--users", "10", "--groups", "2", "--seed", str(args.seed), "-o", small],
        check=True, stdout=subprocess.DEVNULL,
    )

    rows = []
    for engine in args.engines.split(","):
        base_dir = os.path.join(work, "baseline-" + engine)
        shutil.rmtree(base_dir, ignore_errors=True)
        os.makedirs(base_dir)
        deployment(base_dir, bundle)
        shutil.copy(small, os.path.join(base_dir, "ad.ldif"))
        _, baseline, _, _ = run(exe, base_dir, engine)

        d = os.path.join(work, engine)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        deployment(d, bundle)
        shutil.copy(src, os.path.join(d, "ad.ldif"))
        for cycle in ("first", "nochange", "churn"):
            note = ""
            if cycle == "churn":
                did = churn_apart(os.path.join(d, "ad.ldif"), args.churn, args.seed)
                note = ", ".join("%d %s" % (v, k) for k, v in did.items())
            wall, rss, steps, code = run(exe, d, engine)
            rows.append((engine, cycle, wall, rss, baseline, db_bytes(d), steps, code, note))

    print("idflow cycle benchmark: %d objects (gen ad --users %d --groups %d --seed %d), %d cores"
          % (objects, args.users, args.groups, args.seed, os.cpu_count()))
    print()
    print("| engine | cycle | wall s | peak RSS MB | RSS above baseline, KB/object | state DB, KB/object | exit |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for engine, cycle, wall, rss, baseline, db, _, code, note in rows:
        print("| %s | %s%s | %.2f | %.0f | %.2f | %.2f | %d |" % (
            engine, cycle, " (%s)" % note if note else "", wall, rss / 2**20,
            (rss - baseline) / 1024 / objects, db / 1024 / objects, code))
    print()
    print("| engine | cycle | step | connector | ms | objects/s | adds | updates | deletes |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for engine, cycle, _, _, _, _, steps, _, _ in rows:
        for s in steps:
            ms = s["duration_ms"]
            rate = objects / (ms / 1000) if ms else float("inf")
            print("| %s | %s | %s | %s | %d | %.0f | %d | %d | %d |" % (
                engine, cycle, s["step"], s["connector"], ms, rate, s["adds"], s["updates"],
                s["deletes"]))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
