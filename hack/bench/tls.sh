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
# shellcheck source=hack/bench/lib.sh
source "$HERE/lib.sh"

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
  # Without the stream module only the nginx passthrough figure is missing: not fatal.
  bench_apt_install "${missing[@]}" || log "apt-get install ${missing[*]} failed; measuring what can be"
fi

# --- Portway itself
bench_prepare_portway bench:tls

# --- run, and stop everything it started whatever happens
bench_run_node "$HERE/tls.mjs" portway-tls-bench
