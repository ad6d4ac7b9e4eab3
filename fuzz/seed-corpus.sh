#!/usr/bin/env bash
# Seeds the corpus of each fuzz target. fuzz/corpus/ is git-ignored; run this before the first
# `cargo fuzz run`. Re-running it is safe: it only adds or overwrites `seed-*` files and keeps
# whatever libFuzzer has added to the corpus.
#   parse, fmt_idempotent: every .idf under ../rules
#   eval: every `expr` of the conformance cases under ../tests/conformance/{functions,language}
#         (one file per distinct expression; needs python3 >= 3.11 for tomllib)
set -euo pipefail
cd "$(dirname "$0")"
for target in parse fmt_idempotent; do
    mkdir -p "corpus/$target"
    find ../rules -name '*.idf' -type f -print0 |
        while IFS= read -r -d '' f; do
            # Flatten the path so files with the same base name do not collide.
            name="${f#../rules/}"
            cp "$f" "corpus/$target/seed-${name//\//_}"
        done
done
echo "seeded: $(ls corpus/parse | wc -l) files in corpus/parse and corpus/fmt_idempotent"

mkdir -p corpus/eval
python3 - <<'PY'
import hashlib, pathlib, tomllib

root = pathlib.Path("../tests/conformance")
files = sorted(root.glob("functions/**/*.toml")) + sorted(root.glob("language/*.toml"))
exprs = set()

def walk(node):
    # Every string under an `expr` key, wherever the case tables put it.
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                exprs.add(v)
            else:
                walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)

for f in files:
    with open(f, "rb") as fh:
        walk(tomllib.load(fh))

out = pathlib.Path("corpus/eval")
for e in sorted(exprs):
    data = e.encode()
    (out / f"seed-expr-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
print(f"seeded: {len(exprs)} expressions from {len(files)} files into corpus/eval")
PY

# interp_vs_jit: the same expressions as eval.
mkdir -p corpus/interp_vs_jit
cp corpus/eval/seed-expr-* corpus/interp_vs_jit/
echo "seeded: $(ls corpus/interp_vs_jit | wc -l) files in corpus/interp_vs_jit"
