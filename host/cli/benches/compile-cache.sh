#!/usr/bin/env bash
# What the compilation caches save when a plugin is loaded: `sluice check`
# on a JavaScript and a Python plugin from `sluice new`, with the caches
# off, then with an empty cache folder (everything compiled and stored),
# then a second plugin of the same language (only its own functions
# compiled), then that plugin again (the whole component from the cache).
# Median of RUNS (default 3) wall times. The figures go to
# BENCHMARKS.md.
#
#   cargo build --release -p sluice-cli && host/cli/benches/compile-cache.sh
#
# Needs what `sluice build` needs for JavaScript and Python (tests/run
# installs it).
set -euo pipefail
cd "$(dirname "$0")/../../.."
sluice="${SLUICE:-$PWD/target/release/sluice}"
runs="${RUNS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export SLUICE_LOG=warn

# Two plugins per language; their components differ (names, paths).
for lang in js python; do
  for name in "first-$lang" "second-$lang"; do
    (cd "$work" && "$sluice" new filter "$name" --lang "$lang" >/dev/null && "$sluice" build "$name" >/dev/null)
  done
done

# median <command…>: the median wall time of RUNS runs, each after `prepare`.
median() {
  local times=()
  for _ in $(seq "$runs"); do
    prepare
    local start
    start=$(date +%s%N)
    "$@" >/dev/null
    times+=($((($(date +%s%N) - start) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
check() { "$sluice" check --config "$work/$1/pipeline.toml"; }

cache="$work/cache"
printf '| plugin | no cache | empty cache | another plugin compiled before | same plugin again |\n|---|---:|---:|---:|---:|\n'
for lang in js python; do
  prepare() { :; }
  off=$(SLUICE_CACHE_DIR= median check "second-$lang")
  prepare() { rm -rf "$cache"; }
  empty=$(SLUICE_CACHE_DIR="$cache" median check "second-$lang")
  prepare() { rm -rf "$cache" && SLUICE_CACHE_DIR="$cache" check "first-$lang" >/dev/null; }
  functions=$(SLUICE_CACHE_DIR="$cache" median check "second-$lang")
  prepare() { :; }
  modules=$(SLUICE_CACHE_DIR="$cache" median check "second-$lang")
  printf '| %s filter | %d ms | %d ms | %d ms | %d ms |\n' "$lang" "$off" "$empty" "$functions" "$modules"
done
