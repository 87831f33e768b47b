#!/usr/bin/env bash
# Removes the real node that node-up.sh made for $PORTWAY_CLUSTER_DIR, leaving the machine as it
# was: pods (so that their network namespaces and veths go), kube-proxy's and our nft tables,
# the LoadBalancer allocator, kubelet, containerd and its shims, mounts under the state dir,
# leftover cni-* network namespaces, the bridges and their routes, the /portway cgroups, the
# sysctls it changed, and the machine-wide lock. Idempotent; called by down.sh.
#
#   node-down.sh            tear down this cluster's node
#   node-down.sh --force    the same without asking the apiserver to delete pods first; also
#                           when the state directory is gone (a cluster half torn down by hand):
#                           processes that name it are killed and the node's named objects
#                           (bridges, netns, nft tables, cgroups, the lock) removed
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/node-net.sh"

D="$PORTWAY_CLUSTER_DIR"
N="$D/node"
force=0; [[ "${1:-}" == "--force" ]] && force=1
[[ -d "$N" || $force -eq 1 ]] || exit 0
[[ $(id -u) -eq 0 ]] || die "removing the real node needs root"
mkdir -p "$N"

ours() { [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$D/"; }
pid_of() { [[ -f "$D/pids/$1.pid" ]] && cat "$D/pids/$1.pid"; }
stop() { # component [seconds]
  local pid; pid="$(pid_of "$1" || true)"
  [[ -n "$pid" ]] && ours "$pid" || { rm -f "$D/pids/$1.pid"; return 0; }
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $(( ${2:-10} * 10 ))); do ours "$pid" || break; sleep 0.1; done
  if ours "$pid"; then log "$1 did not exit; killing"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$D/pids/$1.pid"
}
sock="$N/containerd/containerd.sock"
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }

# 1. Pods first, through the kubelet, so that the CNI plugin removes their veths and addresses.
kubelet_pid="$(pid_of kubelet || true)"
if [[ $force -eq 0 && -n "$kubelet_pid" ]] && ours "$kubelet_pid" && [[ -f "$D/kubeconfig" ]]; then
  K=("$KUBECTL" --kubeconfig="$D/kubeconfig" --request-timeout=5s)
  if "${K[@]}" get --raw /readyz >/dev/null 2>&1; then
    # Stop the controllers from making new pods while the old ones go.
    stop kube-controller-manager 5
    log "deleting the pods on $NODE_NAME"
    "${K[@]}" delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
    # Done when no task runs: the kubelet has stopped every sandbox, and with it run the CNI
    # plugin's DEL (exited containers stay listed until its garbage collection: not waited for).
    # The CRI plugin removes a sandbox's cni-* network namespace after the CNI DEL.
    new_netns() { comm -13 <(sort "$N/netns.before" 2>/dev/null || true) <(ls /run/netns 2>/dev/null | sort) | grep -c '^cni-' || true; }
    for _ in $(seq 1 60); do
      if ! ctr_ tasks ls 2>/dev/null | grep -q RUNNING && [[ "$(new_netns)" == 0 ]]; then break; fi
      sleep 0.5
    done
  fi
fi

# 2. Node processes: the allocator, kube-proxy, kubelet, then containerd.
stop portway-lb 5
stop kube-proxy 5
stop kubelet 10
# Containers the kubelet did not get to: kill them through containerd, then stop it.
if [[ -S "$sock" ]]; then
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$id" >/dev/null 2>&1 || true; done
  sleep 0.3
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
fi
stop containerd 10
# With the state directory gone there are no PID files: any process naming it is the node's.
if [[ $force -eq 1 ]]; then
  for p in $(pgrep -f -- "$D/" 2>/dev/null || true); do [[ $p != $$ ]] && ours "$p" && kill -KILL "$p" 2>/dev/null || true; done
fi
# Shims outlive containerd by design; theirs name our socket.
for p in $(pgrep -f containerd-shim 2>/dev/null || true); do ours "$p" && kill -KILL "$p" 2>/dev/null || true; done
# Any process still in the node's cgroups (a container whose shim is gone).
if [[ -d /sys/fs/cgroup/pids/portway ]]; then
  find /sys/fs/cgroup/pids/portway -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
fi
sleep 0.2

# 3. Mounts under the state dir (container root filesystems, /dev/shm, the kubelet's volumes),
# deepest first.
awk -v d="$D/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
done

# 4. Network namespaces the CRI plugin made and nothing removed (a pod that never stopped).
if [[ -d /run/netns ]]; then
  comm -13 <(sort "$N/netns.before" 2>/dev/null || true) <(ls /run/netns | sort) | { grep '^cni-' || true; } | while read -r ns; do
    ip netns del "$ns" 2>/dev/null || true
  done
fi
rm -f /var/lib/cni/results/portway-* 2>/dev/null || true
find /var/log/containers -maxdepth 1 -type l -lname "$N/*" -delete 2>/dev/null || true

# 5. Tables, links, routes: only while the machine-wide lock is ours (or was left by no one).
lock_ours=1
if [[ -f "$NODE_LOCK" && "$(cat "$NODE_LOCK")" != "$D" ]]; then lock_ours=0; fi
if [[ $lock_ours -eq 1 ]]; then
  for fam in ip ip6; do nft delete table "$fam" kube-proxy 2>/dev/null || true; done
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
  ip netns del "$CLIENT_NETNS" 2>/dev/null || true   # its veth goes with it
  for l in "$CLIENT_LINK" "$POD_BRIDGE" "$NODE_BRIDGE"; do ip link del "$l" 2>/dev/null || true; done
fi

# 6. cgroups the kubelet made under /portway, leaves first.
for h in /sys/fs/cgroup/*/; do
  [[ -d "$h/portway" ]] || continue
  find "$h/portway" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [[ -d "$h/portway" ]] && log "could not remove cgroup $h/portway (processes left in it?)"
done

# 7. Sysctls back to what they were.
if [[ $lock_ours -eq 1 && -f "$N/sysctl.orig" ]]; then
  while IFS= read -r kv; do sysctl -qw "$kv" 2>/dev/null || log "could not restore sysctl $kv"; done <"$N/sysctl.orig"
fi

# 8. Directories that were not there before, if they are empty now; then the lock.
if [[ -f "$N/made" ]]; then
  { grep '^dir ' "$N/made" || true; } | cut -d' ' -f2- | while read -r dir; do
    [[ -e "$dir" ]] || continue
    # Made by this node's containerd and kubelet alone (one real node per machine): sockets
    # such as /run/containerd/s/* and /var/lib/kubelet/device-plugins/kubelet.sock remain.
    case "$dir" in /run/containerd | /var/lib/kubelet | /var/lib/cni | /var/log/pods | /var/log/containers) rm -rf -- "$dir"; continue ;; esac
    # ip netns makes /run/netns a mount point of its own.
    if [[ "$dir" == /run/netns ]] && [[ -z "$(ls -A /run/netns)" ]]; then umount /run/netns 2>/dev/null || true; rmdir /run/netns 2>/dev/null || true; continue; fi
    find "$dir" -depth -type d -empty -delete 2>/dev/null || true
    [[ -e "$dir" ]] && log "left $dir in place: it is not empty ($(find "$dir" -mindepth 1 | head -3 | tr '\n' ' '))"
  done
fi
[[ $lock_ours -eq 1 ]] && rm -f "$NODE_LOCK"
rm -rf "$N"
rmdir "$D" 2>/dev/null || true   # only when empty: --force on a state dir that was already gone
log "real node removed"
