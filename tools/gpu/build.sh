#!/usr/bin/env bash
# Builds and packs the binaries `first_step.sh` runs on the lent GPU machine: `vqvae-fixed` and
# `train_step-fixed`, burn's CUDA backend without cubecl's autotune (NOTES.md, session 8). Run it
# here (no CUDA toolkit needed), from the repo root, before the first device call: a session
# starts on a fresh machine, so `.gpudata/` (ignored by git) has to be rebuilt each time.
#
#   bash tools/gpu/build.sh        # not timed cold with CUDA; session 9's CUDA build of the
#                                  # train_step bench alone took 10 min 44 s on 2 cores
#
# Writes .gpudata/{vqvae,train_step}-fixed.xz (stripped, xz: ~10 MB each; the carry limit is
# 64 MiB) and .gpudata/BUILT_FROM (commit, dirty flag, date, command). The build uses its own
# target directory (target/cuda-fixed) so it does not evict the CPU build's artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${CARGO_TARGET_DIR:-target}/cuda-fixed
command=(cargo build --release --no-default-features --features cuda
    -p vqvae -p classify --bin vqvae --bench train_step --message-format=json-render-diagnostics)
CARGO_TARGET_DIR=$target "${command[@]}" >/tmp/gpu-build.json

# The bench executable's name carries a hash: take the one cargo just reported.
artifact() {
    python3 - "$1" <<'PY'
import json, sys
path = None
for line in open("/tmp/gpu-build.json"):
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == sys.argv[1] and msg.get("executable"):
        path = msg["executable"]
print(path or "")
PY
}

mkdir -p .gpudata
for name in vqvae train_step; do
    exe=$(artifact "$name")
    [ -n "$exe" ] || { echo "no executable for $name in the build output" >&2; exit 1; }
    strip -o "/tmp/$name-fixed" "$exe"
    xz -6 -c "/tmp/$name-fixed" >".gpudata/$name-fixed.xz"
    rm -f "/tmp/$name-fixed" ".gpudata/bin/$name-fixed"
done
dirty=$(git status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "built from $(git rev-parse --short HEAD)$dirty on $(date -u +%F)"
    echo "CARGO_TARGET_DIR=$target ${command[*]}"
    ls -l .gpudata/*.xz
} >.gpudata/BUILT_FROM
cat .gpudata/BUILT_FROM
