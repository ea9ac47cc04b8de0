#!/usr/bin/env bash
# Builds and packs the binaries the GPU scripts run on the lent machine: `vqvae-VARIANT`,
# `train_step-VARIANT`, `extract-VARIANT` (the encoders' extraction bench, encoders.sh) and
# `conv_routes-VARIANT` (the convolution routes' bench, implicit.sh) and `matmul_routes-VARIANT`
# (the encoders' products by strategy, matmul.sh). VARIANT `fixed` (the
# default) is burn's CUDA backend without cubecl's
# autotune (NOTES.md, session 8: a fresh machine compiles fewer kernels); `autotune` is the
# build users get from `--features cuda` (cubecl picks each matmul and convolution kernel by
# timing candidates; without it burn falls back to direct convolutions: NOTES.md, session 11).
# Run it here (no CUDA toolkit needed), from the repo root, before the first device call: a
# session starts on a fresh machine, so `.gpudata/` (ignored by git) has to be rebuilt each time.
#
#   bash tools/gpu/build.sh [fixed|autotune]   # 16 min 31 s cold for `fixed` on 2 cores
#                                              # (session 11)
#
# Writes .gpudata/{vqvae,train_step,extract,conv_routes,matmul_routes}-VARIANT.xz (stripped, xz: 7–10 MB each; the carry limit is
# 64 MiB) and appends to .gpudata/BUILT_FROM (commit, dirty flag, date, command). The build uses
# its own target directory (target/cuda-fixed) so it does not evict the CPU build's artifacts.
set -euo pipefail
cd "$(dirname "$0")/../.."

variant=${1:-fixed}
case $variant in
    fixed) features=(--no-default-features --features cuda) ;;
    autotune) features=(--features cuda) ;;
    *) echo "usage: $0 [fixed|autotune]" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-target}/cuda-fixed
command=(cargo build --release "${features[@]}"
    -p vqvae -p classify -p encoders --bin vqvae --bench train_step --bench extract
    --bench conv_routes --bench matmul_routes --message-format=json-render-diagnostics)
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
for name in vqvae train_step extract conv_routes matmul_routes; do
    exe=$(artifact "$name")
    [ -n "$exe" ] || { echo "no executable for $name in the build output" >&2; exit 1; }
    strip -o "/tmp/$name-$variant" "$exe"
    xz -6 -c "/tmp/$name-$variant" >".gpudata/$name-$variant.xz"
    rm -f "/tmp/$name-$variant" ".gpudata/bin/$name-$variant"
done
dirty=$(git status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "built from $(git rev-parse --short HEAD)$dirty on $(date -u +%F)"
    echo "CARGO_TARGET_DIR=$target ${command[*]}"
    ls -l .gpudata/*-"$variant".xz
} >>.gpudata/BUILT_FROM
cat .gpudata/BUILT_FROM
