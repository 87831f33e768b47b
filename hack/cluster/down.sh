#!/usr/bin/env bash
# Stops the cluster started by up.sh in PORTWAY_CLUSTER_DIR (the real node through
# node-down.sh, then the control plane) and removes its data.
# Only processes whose PID file is in that directory, and whose command line names that
# directory, are signalled (a recycled PID is never killed).
#
#   hack/cluster/down.sh            stop and remove the state directory
#   hack/cluster/down.sh --keep     stop, but keep the directory (logs, etcd data) for debugging
set -euo pipefail
. "$(dirname "$0")/lib.sh"

D="$PORTWAY_CLUSTER_DIR"
keep=0; [[ "${1:-}" == "--keep" ]] && keep=1

if [[ ! -d "$D" ]]; then log "nothing to stop: $D does not exist"; exit 0; fi
# An empty directory: up.sh stopped before creating anything (e.g. a port was taken).
if [[ -z "$(ls -A "$D")" ]]; then rmdir "$D"; log "removed empty $D"; exit 0; fi
[[ -f "$D/.portway-cluster" ]] || die "$D is not a portway cluster dir (no .portway-cluster marker); not touching it"

ours() { # pid → 0 if it is alive and its command line names our state dir
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$D/"
}

# The real node first (its pods are deleted through the apiserver so that the CNI plugin
# removes their network), then the control plane.
if [[ -d "$D/node" ]]; then "$CLUSTER_DIR/node-down.sh"; fi

# Reverse start order: kwok and the controllers first, etcd last.
for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f="$D/pids/$c.pid"
  [[ -f "$f" ]] || continue
  pid="$(cat "$f")"
  if ours "$pid"; then
    log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do ours "$pid" || break; sleep 0.1; done
    if ours "$pid"; then log "$c did not exit after 10s; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
done

if [[ $keep -eq 1 ]]; then
  log "stopped; kept $D"
else
  rm -rf -- "$D"
  log "stopped; removed $D"
fi
