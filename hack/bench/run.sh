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

# --- system packages: wrk and nginx (Debian) -------------------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The nginx package must not start a system nginx on port 80: when no policy-rc.d forbids
  # service starts, add one for the duration of the install.
  added_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  install_ok=1
  $SUDO apt-get update -qq || true
  if ! $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; then
    # nginx-light is gone from newer Debian releases: fall back to nginx.
    missing=("${missing[@]/nginx-light/nginx}")
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null || install_ok=
  fi
  [[ -n $added_policy ]] && $SUDO rm -f /usr/sbin/policy-rc.d
  [[ -n $install_ok ]] || { log "apt-get install ${missing[*]} failed"; exit 1; }
fi

# --- the Node.js peers, pinned by hack/bench/peers/package-lock.json -----------------------
lock_sum="$(sha256sum "$HERE/peers/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$HERE/peers/node_modules/.bench-lock-sum" 2>/dev/null)" != "$lock_sum" ]]; then
  log "npm ci in hack/bench/peers"
  (cd "$HERE/peers" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$HERE/peers/node_modules/.bench-lock-sum"
fi

# --- Portway itself --------------------------------------------------------------------------
if [[ ! -d "$ROOT/node_modules" ]]; then
  log "npm ci (Portway's dependencies)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ "${npm_lifecycle_event:-}" != "bench" && "${BENCH_BUILD:-1}" != "0" ]]; then
  # `npm run bench` has just built; run directly, build here. A failed build is not fatal: tsc
  # still emits what compiles, a Portway that cannot start is reported as such in the table,
  # and the peers are measured either way.
  log "npm run build"
  npm run --silent build >"${TMPDIR:-/tmp}/portway-bench-build.log" 2>&1 ||
    log "the build reported errors (see ${TMPDIR:-/tmp}/portway-bench-build.log); measuring what dist/ holds"
fi

# --- run, and stop everything it started whatever happens ------------------------------------
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/portway-bench.XXXXXX")"
export BENCH_TMP
bench_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
  # bench.mjs starts each process in its own process group and lists the live ones here as
  # "pid start-time" (it stops them itself; this is for when it could not). A group is killed
  # only while its leader is still the process that was started, never a recycled pid.
  if [[ -f "$BENCH_TMP/pids" ]]; then
    while read -r pgid started; do
      [[ $pgid =~ ^[0-9]+$ && -n $started ]] || continue
      stat="$(cat "/proc/$pgid/stat" 2>/dev/null)" || continue
      now="$(awk '{print $20}' <<<"${stat##*) }")"
      [[ $now == "$started" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$BENCH_TMP/pids"
  fi
  if [[ -n ${BENCH_KEEP_TMP:-} || $rc -ne 0 ]]; then log "logs kept in $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

node "$HERE/bench.mjs" &
bench_pid=$!
wait "$bench_pid"
