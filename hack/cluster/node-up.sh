#!/usr/bin/env bash
# The real node of the local cluster (see REAL-NODE in hack/cluster/README.md): containerd and
# runc from Debian, kubelet and kube-proxy from the pinned k8s.io/kubernetes, CNI bridge, the
# LoadBalancer allocator, CoreDNS and metrics-server. Called by up.sh in two phases:
#
#   node-up.sh net     before the control plane: bridges, routes, sysctls, the forward guard
#                      (the apiserver binds the node address, so it must exist first)
#   node-up.sh node    after it: containerd, images, kubelet, kube-proxy, LB allocator, addons
#
# Needs root. Everything it makes is recorded under $PORTWAY_CLUSTER_DIR/node and removed by
# node-down.sh (called by down.sh).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/node-net.sh"

D="$PORTWAY_CLUSTER_DIR"
N="$D/node"
P="$D/pki"
phase="${1:-}"

[[ $(id -u) -eq 0 ]] || die "the real node needs root (network bridges, containerd, cgroups); run as root or set PORTWAY_REAL_NODE=0 for a kwok-only cluster"




record() { echo "$*" >>"$N/made"; }   # what node-down.sh must undo, one line each

# --- phase 1: network ------------------------------------------------------------------------
phase_net() {
  local missing=() t
  for t in containerd runc ctr nft ip ss; do command -v "$t" >/dev/null || missing+=("$t"); done
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]}. Install them with: hack/cluster/deps.sh (Debian packages containerd runc nftables iproute2)"

  # One real node per machine.
  if [[ -e "$NODE_LOCK" ]]; then
    local other; other="$(cat "$NODE_LOCK")"
    if [[ "$other" != "$D" ]]; then
      if [[ -f "$other/.portway-cluster" ]] && { alive kubelet "$other" || alive containerd "$other" || alive kube-proxy "$other"; }; then
        die "another cluster's real node is running (state in $other); stop it with: PORTWAY_CLUSTER_DIR=$other $CLUSTER_DIR/down.sh (or set PORTWAY_REAL_NODE=0 for a kwok-only cluster)"
      fi
      log "a real node of $other was left behind; removing what it made"
      PORTWAY_CLUSTER_DIR="$other" "$CLUSTER_DIR/node-down.sh" --force >&2 || true
    fi
  fi
  for p in $KUBELET_PORT $KUBELET_HEALTHZ_PORT $KUBE_PROXY_HEALTHZ_PORT $KUBE_PROXY_METRICS_PORT; do
    if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
      die "port $p (kubelet/kube-proxy) is already in use by: $(ss -Hltnp "sport = :$p" | awk '{print $NF}' | head -1); stop that process first"
    fi
  done
  ip netns list 2>/dev/null | grep -qw "$CLIENT_NETNS" && die "network namespace $CLIENT_NETNS already exists (left by a cluster whose state is gone?); remove it with: ip netns del $CLIENT_NETNS"
  for l in "$NODE_BRIDGE" "$POD_BRIDGE" "$CLIENT_LINK"; do
    ip link show "$l" >/dev/null 2>&1 && die "network interface $l already exists (left by a cluster whose state is gone?); remove it with: ip link del $l"
  done
  nft list table ip "$NFT_TABLE" >/dev/null 2>&1 && die "nft table ip $NFT_TABLE already exists; remove it with: nft delete table ip $NFT_TABLE"
  nft list table ip kube-proxy >/dev/null 2>&1 && die "nft table ip kube-proxy exists (another kube-proxy on this machine?); remove it with: nft delete table ip kube-proxy"

  mkdir -p "$N"
  : >"$N/made"
  echo "$D" >"$NODE_LOCK"; record lock

  # Sysctls: remember the values found, node-down.sh puts them back.
  local s f
  for s in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
    f="/proc/sys/${s//.//}"
    [[ -f "$f" ]] || die "sysctl $s is missing (br_netfilter not available?); the real node needs it"
    echo "$s=$(cat "$f")" >>"$N/sysctl.orig"
  done
  local fwd_before; fwd_before="$(cat /proc/sys/net/ipv4/ip_forward)"

  ip link add "$NODE_BRIDGE" type bridge; record "link $NODE_BRIDGE"
  ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  ip route add "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  ip route add "$LB_CIDR" dev "$NODE_BRIDGE"
  # The pod bridge is made here rather than by the CNI plugin so that it can be removed by name.
  ip link add "$POD_BRIDGE" type bridge; record "link $POD_BRIDGE"
  ip link set "$POD_BRIDGE" up
  # The outside client: a network namespace behind a veth, routed through this machine.
  [[ -e /run/netns ]] || record "dir /run/netns"
  ip netns add "$CLIENT_NETNS"; record "netns $CLIENT_NETNS"
  ip link add "$CLIENT_LINK" type veth peer name eth0 netns "$CLIENT_NETNS"; record "link $CLIENT_LINK"
  ip addr add "$CLIENT_GW/24" dev "$CLIENT_LINK"
  ip link set "$CLIENT_LINK" up
  ip -n "$CLIENT_NETNS" addr add "$CLIENT_IP/24" dev eth0
  ip -n "$CLIENT_NETNS" link set eth0 up
  ip -n "$CLIENT_NETNS" link set lo up
  ip -n "$CLIENT_NETNS" route add default via "$CLIENT_GW"

  {
    echo "table ip $NFT_TABLE {"
    echo "  chain forward {"
    echo "    type filter hook forward priority -10; policy accept;"
    # Pods talk to the node, Services, and each other; never through another interface.
    echo "    iifname \"pw-*\" oifname != \"pw-*\" drop"
    echo "    oifname \"pw-*\" iifname != \"pw-*\" drop"
    # ip_forward was off: keep every other interface unforwarded, as before.
    [[ "$fwd_before" == 0 ]] && echo "    iifname != \"pw-*\" oifname != \"pw-*\" drop"
    echo "  }"
    echo "}"
  } >"$N/guard.nft"
  nft -f "$N/guard.nft"; record "nft $NFT_TABLE"

  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  log "node network: $NODE_BRIDGE $NODE_IP/24, pods $POD_CIDR on $POD_BRIDGE, LoadBalancer pool $LB_CIDR, outside client $CLIENT_IP (netns $CLIENT_NETNS)"
}


# --- phase 2: the node ---------------------------------------------------------------------------
cni_bin_dir() {
  local d="${PORTWAY_CNI_BIN_DIR:-}"
  [[ -z "$d" ]] && d="$(dirname "$("$CLUSTER_DIR/build.sh" --print | grep '/bridge$' | head -1)")"
  [[ -x "$d/bridge" && -x "$d/host-local" && -x "$d/loopback" ]] || die "CNI plugins not found in '$d' (hack/cluster/build.sh builds them)"
  echo "$d"
}


phase_node() {
  [[ -f "$N/made" ]] || die "node-up.sh net did not run for $D"
  local K=("$KUBECTL" --kubeconfig="$D/kubeconfig")
  mkdir -p "$N/containerd/root" "$N/containerd/state" "$N/cni/net.d" "$N/cni/ipam" "$N/kubelet" "$N/pod-logs" "$N/runc"

  # cgroups: pods live under /portway in every v1 hierarchy (and the unified one), so that
  # node-down.sh can remove exactly what the kubelet made.
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "$h" || continue
    mkdir -p "$h/portway"
  done
  record "cgroup portway"

  # containerd: its own root, state and socket; the CRI plugin with runc and our CNI config.
  local sock="$N/containerd/containerd.sock" cni; cni="$(cni_bin_dir)"
  cat >"$N/containerd.toml" <<EOF
version = 2
root = "$N/containerd/root"
state = "$N/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$N/containerd/containerd.sock.ttrpc"
[debug]
  address = "$N/containerd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$N/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  # As containerd 2 does by default: non-root containers may bind ports below 1024 (CoreDNS
  # on 53, a gateway on 80) and ping, each inside its own network namespace only.
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$N/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni"
    conf_dir = "$N/cni/net.d"
EOF
  cat >"$N/cni/net.d/10-portway.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "portway",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "hairpinMode": true,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$N/cni/ipam"
      }
    }
  ]
}
EOF
  # Network namespaces the CRI plugin makes are named cni-<uuid> under /run/netns: list the
  # ones present now, node-down.sh removes only new ones that survive the pods.
  ls /run/netns 2>/dev/null | sort >"$N/netns.before" || true
  # Machine-wide directories containerd, the CNI library and the kubelet may create: the ones
  # absent now are removed by node-down.sh (when empty; /run/containerd whole).
  local dir
  for dir in /run/containerd /run/netns /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni; do
    [[ -e "$dir" ]] || record "dir $dir"
  done
  start containerd containerd --config "$N/containerd.toml"
  record "proc containerd"
  wait_for "containerd" 60 containerd ctr --address "$sock" version

  # Images: every archive the image scripts made (pause, CoreDNS, metrics-server, echo-basic,
  # Portway), imported into the CRI namespace.
  local imported=0 a
  local images; read -r -a images <<<"${NODE_IMAGES_LIST:?up.sh passes the image archives}"
  for a in "${images[@]}"; do
    ctr --address "$sock" -n k8s.io images import --no-unpack=false "$a" >>"$D/logs/images.log" 2>&1 ||
      die "could not import image $a into containerd (log: $D/logs/images.log)"
    imported=$((imported + 1))
  done
  log "imported $imported images into the node's containerd"

  # kubelet: a node certificate for the Node authorizer, a serving certificate for the apiserver
  # and metrics-server, webhook authn/authz against the apiserver.
  write_kubeconfig "$N/kubelet.kubeconfig" kubelet "https://$NODE_IP:$PORTWAY_APISERVER_PORT" "$P"
  write_kubeconfig "$N/kube-proxy.kubeconfig" kube-proxy "https://$NODE_IP:$PORTWAY_APISERVER_PORT" "$P"
  : >"$N/resolv.conf"   # pods with dnsPolicy Default get no nameserver of this machine's
  cat >"$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /portway
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$sock
podLogsDir: $N/pod-logs
clusterDomain: cluster.local
clusterDNS: [$CLUSTER_DNS_IP]
resolvConf: $N/resolv.conf
registerNode: true
serializeImagePulls: false
maxPods: 110
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
kernelMemcgNotification: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
shutdownGracePeriod: 0s
nodeStatusUpdateFrequency: 5s
EOF
  start kubelet "$KUBELET" --config="$N/kubelet.yaml" --kubeconfig="$N/kubelet.kubeconfig" \
    --root-dir="$N/kubelet" --cert-dir="$N/kubelet/pki" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels="portway.dev/node=real,topology.kubernetes.io/region=local,topology.kubernetes.io/zone=zone-real" --v=1
  record "proc kubelet"
  wait_for "node $NODE_NAME Ready" 120 kubelet "${K[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s

  # kube-proxy: nftables mode, NodePorts only on the node address (never on this machine's
  # other interfaces), conntrack sysctls left alone.
  cat >"$N/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $N/kube-proxy.kubeconfig}
mode: nftables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$KUBE_PROXY" --config="$N/kube-proxy.yaml" --v=1
  record "proc kube-proxy"
  record "nft kube-proxy"
  wait_for "kube-proxy /healthz" 60 kube-proxy curl -sf --max-time 2 "http://$NODE_IP:$KUBE_PROXY_HEALTHZ_PORT/healthz"

  # LoadBalancer addresses (see lb/main.go).
  start portway-lb "$PORTWAY_LB" --kubeconfig="$D/kubeconfig" --bridge="$NODE_BRIDGE" --pool="$LB_CIDR" \
    --state-dir="$N/"
  record "proc portway-lb"
}

case "$phase" in
  net) phase_net ;;
  node) phase_node ;;
  *) die "usage: node-up.sh net|node" ;;
esac
