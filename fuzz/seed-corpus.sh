#!/usr/bin/env bash
# Copies every .idf under ../rules into the seed corpus of each fuzz target.
# fuzz/corpus/ is git-ignored; run this before the first `cargo fuzz run`.
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
echo "seeded: $(ls corpus/parse | wc -l) files per target"
