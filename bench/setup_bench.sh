#!/usr/bin/env bash
# What a new user waits for: cold `./dev main` on a fresh clone (no .venv, no rust_bridge/target, pip's
# cache off, so torch is downloaded as on a new machine; crates.io downloads may come from
# ~/.cargo/registry), then `./dev setup` (the binaries the tests use), a warm `./dev test` (the fast tier) and a warm `./dev main` in the same clone,
# timed in this one run.
#   bench/setup_bench.sh [CLONE_DIR]   (default: a fresh directory beside this repository, so that
#                                       ../shared/data resolves as it does here)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$(dirname "$src")/setup-bench-$$}
[ -e "$dir" ] && { echo "setup_bench: $dir exists" >&2; exit 2; }
git clone -q "$src" "$dir"
cd "$dir"
export PIP_NO_CACHE_DIR=1
log="$dir.log"
timed() {
  local label=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$@" >>"$log" 2>&1 || { echo "setup_bench: '$*' failed, see $log" >&2; exit 1; }
  t1=$(date +%s.%N)
  printf '%-18s %6.0f s\n' "$label" "$(echo "$t1 - $t0" | bc)"
}
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), commit $(git rev-parse --short HEAD)"
timed "cold ./dev main" ./dev main
timed "./dev setup" ./dev setup
timed "warm ./dev test" ./dev test
timed "warm ./dev main" ./dev main
echo "clone left at $dir (log $log)"
