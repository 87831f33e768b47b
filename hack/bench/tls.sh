#!/usr/bin/env bash
# Portway's TLS benchmark: installs what it needs, then runs hack/bench/tls.mjs.
#   npm run bench:tls             (builds Portway first)
#   bash hack/bench/tls.sh        (builds Portway unless BENCH_BUILD=0)
# Settings (environment): TLS_BENCH_DURATION=5 TLS_BENCH_ROUNDS=3 TLS_BENCH_WARMUP=2
#   TLS_BENCH_SCENARIOS=handshake-ecdsa,handshake-rsa,resume,https-requests,passthrough
#   TLS_BENCH_SYSTEMS=nginx,portway TLS_BENCH_VERSION=1.3|1.2 TLS_BENCH_HANDSHAKE_CONNECTIONS=16
#   TLS_BENCH_CONNECTIONS=50 TLS_BENCH_BULK_CONNECTIONS=4 TLS_BENCH_BULK_MB=64
#   TLS_BENCH_OUT=hack/bench/results/tls.json TLS_BENCH_PORTWAY_NODE_FLAGS='--cpu-prof …'
#   BENCH_PIN=1 BENCH_NICE=-10 BENCH_PORTWAY_BIN=… BENCH_STRICT=1 BENCH_KEEP_TMP=1
# See hack/bench/README.md, "TLS benchmark".
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

log() { printf '[bench:tls] %s\n' "$*"; }

# --- system packages (Debian): wrk, nginx with the stream module, a C compiler and OpenSSL headers
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[[ -e /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
modules="$(nginx -V 2>&1 | grep -o -- '--modules-path=[^ ]*' | cut -d= -f2 || true)"
if ! command -v nginx >/dev/null 2>&1 || { nginx -V 2>&1 | grep -q -- '--with-stream=dynamic' && [[ ! -e "${modules:-/usr/lib/nginx/modules}/ngx_stream_module.so" ]]; }; then
  missing+=(libnginx-mod-stream)
fi
if ((${#missing[@]})); then
  SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The nginx package must not start a system nginx: forbid service starts during the install.
  added_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $SUDO apt-get update -qq || true
  install_ok=1
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null || install_ok=
  [[ -n $added_policy ]] && $SUDO rm -f /usr/sbin/policy-rc.d
  # Without the stream module only the nginx passthrough figure is missing: not fatal.
  [[ -n $install_ok ]] || log "apt-get install ${missing[*]} failed; measuring what can be"
fi

# --- Portway itself
if [[ ! -d "$ROOT/node_modules" ]]; then
  log "npm ci (Portway's dependencies)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ "${npm_lifecycle_event:-}" != "bench:tls" && "${BENCH_BUILD:-1}" != "0" ]]; then
  log "npm run build"
  npm run --silent build >"${TMPDIR:-/tmp}/portway-bench-build.log" 2>&1 ||
    log "the build reported errors (see ${TMPDIR:-/tmp}/portway-bench-build.log); measuring what dist/ holds"
fi

# --- run, and stop everything it started whatever happens
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/portway-tls-bench.XXXXXX")"
export BENCH_TMP
bench_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
  # tls.mjs lists its live process groups here as "pgid start-time"; a group is killed only
  # while its leader is still the process that was started, never a recycled pid.
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

node "$HERE/tls.mjs" &
bench_pid=$!
wait "$bench_pid"
