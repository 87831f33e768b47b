# shellcheck shell=bash
# Common settings for hack/cluster scripts. Source it; do not run it.
#
# Everything built or downloaded lives outside the repository, under PORTWAY_CACHE:
#   $PORTWAY_CACHE/bin/<tool>-<version>/   the binaries (kubernetes-v1.37.2/kube-apiserver, ...)
#   $PORTWAY_CACHE/go/{mod,build,path}     Go module and build caches (warm runs are fast)
#   $PORTWAY_CACHE/src/<tool>-<version>/   throw-away go.mod per tool
#   $PORTWAY_CACHE/logs/                   build logs and build-timings.log

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$CLUSTER_DIR/versions.env"

PORTWAY_CACHE="${PORTWAY_CACHE:-$HOME/.cache/portway}"
BIN_ROOT="$PORTWAY_CACHE/bin"
KUBE_BIN_DIR="$BIN_ROOT/kubernetes-$KUBERNETES_VERSION"
ETCD_BIN_DIR="$BIN_ROOT/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$BIN_ROOT/kwok-$KWOK_VERSION"
HELM_BIN_DIR="$BIN_ROOT/helm-$HELM_VERSION"
# The real node's programs (build.sh builds them too).
CNI_BIN_DIR="$BIN_ROOT/cni-plugins-$CNI_PLUGINS_VERSION"     # bridge host-local loopback portmap
COREDNS_BIN_DIR="$BIN_ROOT/coredns-$COREDNS_VERSION"
METRICS_SERVER_BIN_DIR="$BIN_ROOT/metrics-server-$METRICS_SERVER_VERSION"
ECHO_BASIC_BIN_DIR="$BIN_ROOT/echo-basic-$GATEWAY_API_VERSION"
# pause is our own program (hack/cluster/pause): its "version" is a hash of its sources.
PAUSE_RECIPE="$(cat "$CLUSTER_DIR/pause/go.mod" "$CLUSTER_DIR/pause/main.go" | sha256sum | cut -c1-12)"
PAUSE_BIN_DIR="$BIN_ROOT/pause-$PAUSE_RECIPE"
# portway-lb, the LoadBalancer address allocator (hack/cluster/lb), likewise.
PORTWAY_LB_RECIPE="$(cat "$CLUSTER_DIR/lb/go.mod" "$CLUSTER_DIR/lb/go.sum" "$CLUSTER_DIR/lb/main.go" | sha256sum | cut -c1-12)"
PORTWAY_LB_BIN_DIR="$BIN_ROOT/portway-lb-$PORTWAY_LB_RECIPE"

KUBE_APISERVER="$KUBE_BIN_DIR/kube-apiserver"
KUBE_CONTROLLER_MANAGER="$KUBE_BIN_DIR/kube-controller-manager"
KUBE_SCHEDULER="$KUBE_BIN_DIR/kube-scheduler"
KUBECTL="$KUBE_BIN_DIR/kubectl"
ETCD="$ETCD_BIN_DIR/etcd"
KWOK="$KWOK_BIN_DIR/kwok"
HELM="$HELM_BIN_DIR/helm"
KUBELET="$KUBE_BIN_DIR/kubelet"
KUBE_PROXY="$KUBE_BIN_DIR/kube-proxy"
PAUSE="$PAUSE_BIN_DIR/pause"
PORTWAY_LB="$PORTWAY_LB_BIN_DIR/portway-lb"
COREDNS="$COREDNS_BIN_DIR/coredns"
METRICS_SERVER="$METRICS_SERVER_BIN_DIR/metrics-server"
ECHO_BASIC="$ECHO_BASIC_BIN_DIR/echo-basic"

# State of a running control plane (PID files, certificates, etcd data, logs, kubeconfig).
PORTWAY_CLUSTER_DIR="${PORTWAY_CLUSTER_DIR:-${TMPDIR:-/tmp}/portway-cluster-$(id -u)}"

# Ports on 127.0.0.1, away from common defaults and below the kernel's ephemeral range (32768+),
# where an outgoing connection can take a port between the check and the bind (seen: etcd's peer
# port 46380); override if they collide.
PORTWAY_APISERVER_PORT="${PORTWAY_APISERVER_PORT:-24443}"
PORTWAY_ETCD_CLIENT_PORT="${PORTWAY_ETCD_CLIENT_PORT:-24379}"
PORTWAY_ETCD_PEER_PORT="${PORTWAY_ETCD_PEER_PORT:-24380}"
PORTWAY_KCM_PORT="${PORTWAY_KCM_PORT:-24257}"
PORTWAY_SCHEDULER_PORT="${PORTWAY_SCHEDULER_PORT:-24259}"
PORTWAY_KWOK_PORT="${PORTWAY_KWOK_PORT:-24247}"

# Processes of the cluster in $D: each has a PID file, and its command line names $D.
alive() { # component [state dir, default $D] → 0 if its PID file names a live process of that cluster
  local d="${2:-$D}" pid
  [[ -f "$d/pids/$1.pid" ]] || return 1
  pid="$(cat "$d/pids/$1.pid")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$d/"
}
start() { # component binary args...
  local c="$1"; shift
  log "starting $c"
  setsid "$@" >"$D/logs/$c.log" 2>&1 </dev/null &
  echo $! >"$D/pids/$c.pid"
}
# Waits for a command to succeed; fails early when the component exited (names its log).
wait_for() { # what seconds component command...
  local what="$1" secs="$2" c="$3"; shift 3
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$c"; then tail -n 40 "$D/logs/$c.log" >&2; die "$c exited while waiting for $what (log: $D/logs/$c.log)"; fi
    if (( $(date +%s) > end )); then tail -n 40 "$D/logs/$c.log" >&2; die "timed out after ${secs}s waiting for $what (log: $D/logs/$c.log)"; fi
    sleep 0.5
  done
}

# A kubeconfig for a client certificate <pki>/<user>.crt signed by <pki>/ca.crt.
write_kubeconfig() { # file user server pki
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: portway
  cluster:
    server: $3
    certificate-authority: $4/ca.crt
users:
- name: $2
  user:
    client-certificate: $4/$2.crt
    client-key: $4/$2.key
contexts:
- name: portway
  context: {cluster: portway, user: $2}
current-context: portway
EOF
  chmod 600 "$1"
}

log() { printf '[hack/cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
