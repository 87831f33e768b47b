# Shared by run.sh and tls.sh (sourced, after they define log() and HERE/ROOT): installing
# what a benchmark needs, and running its script with a trap that stops everything it started.

# apt-get install PKG... without letting a package start its service (the nginx package would
# start a system nginx on port 80): a policy-rc.d forbids service starts during the install,
# when none is there already. Returns apt-get's status.
bench_apt_install() {
  local sudo= added_policy= rc=0
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  log "installing $* (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $sudo apt-get update -qq || true
  $sudo apt-get install -y -qq "$@" >/dev/null || rc=$?
  if [[ -n $added_policy ]]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

# Portway's own dependencies, and a build unless the npm script named NPM_EVENT has just built
# (or BENCH_BUILD=0). A failed build is not fatal: tsc still emits what compiles, a Portway
# that cannot start is reported as such, and the other systems are measured either way.
bench_prepare_portway() {
  local npm_event=$1
  if [[ ! -d "$ROOT/node_modules" ]]; then
    log "npm ci (Portway's dependencies)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
  if [[ "${npm_lifecycle_event:-}" != "$npm_event" && "${BENCH_BUILD:-1}" != "0" ]]; then
    log "npm run build"
    npm run --silent build >"${TMPDIR:-/tmp}/portway-bench-build.log" 2>&1 ||
      log "the build reported errors (see ${TMPDIR:-/tmp}/portway-bench-build.log); measuring what dist/ holds"
  fi
}

# Runs `node SCRIPT` with BENCH_TMP, a new folder named after TMP_PREFIX, and stops everything
# it started whatever happens. The script starts each process in its own process group and
# lists the live ones in $BENCH_TMP/pids as "pgid start-time" (it stops them itself; the trap
# is for when it could not). A group is killed only while its leader is still the process that
# was started, never a recycled pid. The folder is removed unless the run failed or
# BENCH_KEEP_TMP is set.
bench_run_node() {
  local script=$1 tmp_prefix=$2
  BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/$tmp_prefix.XXXXXX")"
  export BENCH_TMP
  bench_pid=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
  node "$script" &
  bench_pid=$!
  wait "$bench_pid"
}

bench_cleanup() {
  local rc=$? pgid started stat now
  trap - EXIT INT TERM HUP
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null || true
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
