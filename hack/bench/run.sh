#!/usr/bin/env bash
# Portway's data-plane benchmark: installs what it needs, then runs hack/bench/bench.mjs.
#   npm run bench                 (builds Portway first)
#   bash hack/bench/run.sh        (builds Portway if it was not run through `npm run bench`)
# Settings (environment): BENCH_DURATION=10 BENCH_WARMUP=3 BENCH_CONNECTIONS=50 BENCH_ROUNDS=3
#   BENCH_THREADS=1 BENCH_PIN=1 BENCH_HOSTS=1000 BENCH_ROUTES_PER_HOST=10
#   BENCH_SCENARIOS=direct,nginx,node-http-proxy,fastify-http-proxy,portway,portway-10k-routes
#   BENCH_BACKEND=node|nginx BENCH_NICE=-10 BENCH_PORTWAY_BIN=path/to/bin/portway.js
#   BENCH_OUT=hack/bench/results/latest.json BENCH_STRICT=1 (exit 1 when a target is not met)
#   BENCH_BUILD=0 (skip the build) BENCH_KEEP_TMP=1 (keep the logs and generated configs)
# See hack/bench/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

log() { printf '[bench] %s\n' "$*"; }
# shellcheck source=hack/bench/lib.sh
source "$HERE/lib.sh"

# --- system packages: wrk and nginx (Debian) -------------------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  # nginx-light is gone from newer Debian releases: fall back to nginx.
  bench_apt_install "${missing[@]}" || bench_apt_install "${missing[@]/nginx-light/nginx}" ||
    { log "apt-get install ${missing[*]} failed"; exit 1; }
fi

# --- the Node.js peers, pinned by hack/bench/peers/package-lock.json -----------------------
lock_sum="$(sha256sum "$HERE/peers/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$HERE/peers/node_modules/.bench-lock-sum" 2>/dev/null)" != "$lock_sum" ]]; then
  log "npm ci in hack/bench/peers"
  (cd "$HERE/peers" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$HERE/peers/node_modules/.bench-lock-sum"
fi

# --- Portway itself --------------------------------------------------------------------------
bench_prepare_portway bench

# --- run, and stop everything it started whatever happens ------------------------------------
bench_run_node "$HERE/bench.mjs" portway-bench
