#!/usr/bin/env bash
# Starts a local Kubernetes cluster: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok (fake nodes whose pods get loopback IPs, for scale tests) and, by default,
# one real node (containerd, kubelet, kube-proxy, CNI bridge, LoadBalancer addresses, CoreDNS,
# metrics-server; node-up.sh) on which pods from locally built images really run.
#
#   eval "$(hack/cluster/up.sh)"     # prints: export KUBECONFIG=...; export PATH=<kubectl, helm>:$PATH
#
# Idempotent: when the control plane in PORTWAY_CLUSTER_DIR is already up, it prints the same
# lines and starts nothing. Builds the binaries first if they are missing (hack/cluster/build.sh).
#
# Environment (all optional):
#   PORTWAY_CLUSTER_DIR      state: PID files, certificates, etcd data, logs, kubeconfigs
#                            (default ${TMPDIR:-/tmp}/portway-cluster-$UID)
#   PORTWAY_APISERVER_PORT   24443   PORTWAY_ETCD_CLIENT_PORT 24379  PORTWAY_ETCD_PEER_PORT 24380
#   PORTWAY_KCM_PORT         24257   PORTWAY_SCHEDULER_PORT   24259
#   PORTWAY_NODES            number of kwok nodes (default 3), zones zone-a, zone-b, zone-c, ...
#   PORTWAY_POD_NET          first two octets of pod IPs (default 127.1: node i gets 127.1.i.0/24)
#   PORTWAY_CACHE            where binaries are built (see build.sh)
#   PORTWAY_REAL_NODE        1 (default): add the real node (needs root); 0: kwok nodes only
#   PORTWAY_NODE_NET         10.N (default 10.213): the real node's addresses (node-net.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

D="$PORTWAY_CLUSTER_DIR"
PORTWAY_NODES="${PORTWAY_NODES:-3}"
PORTWAY_POD_NET="${PORTWAY_POD_NET:-127.1}"
[[ "$PORTWAY_POD_NET" =~ ^127\.[0-9]{1,3}$ ]] || die "PORTWAY_POD_NET must look like 127.N (got $PORTWAY_POD_NET)"
[[ "$PORTWAY_NODES" =~ ^[0-9]+$ && "$PORTWAY_NODES" -ge 1 && "$PORTWAY_NODES" -le 200 ]] || die "PORTWAY_NODES must be 1..200"
PORTWAY_REAL_NODE="${PORTWAY_REAL_NODE:-1}"
[[ "$PORTWAY_REAL_NODE" =~ ^[01]$ ]] || die "PORTWAY_REAL_NODE must be 0 or 1"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
APISERVER_HOST=127.0.0.1
if [[ $PORTWAY_REAL_NODE == 1 ]]; then
  . "$CLUSTER_DIR/node-net.sh"
  COMPONENTS+=(containerd kubelet kube-proxy portway-lb)
  # Pods reach the apiserver through the `kubernetes` Service, whose endpoint is the advertise
  # address: 127.0.0.1 would be each pod's own loopback. It binds the node address instead.
  APISERVER_HOST="$NODE_IP"
fi

print_env() {
  printf 'export KUBECONFIG=%q\n' "$D/kubeconfig"
  printf 'export PATH=%q:%q:"$PATH"\n' "$KUBE_BIN_DIR" "$HELM_BIN_DIR"
}


apiserver_ready() {
  curl -sf --max-time 5 --cacert "$D/pki/ca.crt" --cert "$D/pki/admin.crt" --key "$D/pki/admin.key" \
    "https://$APISERVER_HOST:$(state_port APISERVER)/readyz" >/dev/null 2>&1
}

# Ports come from the running cluster's cluster.env when there is one.
state_port() { local v="PORTWAY_$1_PORT"; echo "${!v}"; }

# --- already up? -----------------------------------------------------------------------------
if [[ -f "$D/.portway-cluster" && -f "$D/cluster.env" ]]; then
  # shellcheck disable=SC1091
  . "$D/cluster.env"
  all=1
  for c in "${COMPONENTS[@]}"; do alive "$c" || all=0; done
  if [[ $all -eq 1 ]] && apiserver_ready; then
    log "control plane already up in $D"
    print_env
    exit 0
  fi
  log "found a partial or stopped control plane in $D; restarting it"
  "$CLUSTER_DIR/down.sh" >&2
fi

# --- binaries ----------------------------------------------------------------------------------
"$CLUSTER_DIR/build.sh" --check || "$CLUSTER_DIR/build.sh"
command -v openssl >/dev/null || die "openssl is needed to make the cluster certificates"
command -v curl >/dev/null || die "curl is needed to probe the control plane"
if [[ $PORTWAY_REAL_NODE == 1 ]]; then
  [[ $(id -u) -eq 0 ]] || die "the real node needs root; run as root, or PORTWAY_REAL_NODE=0 for kwok nodes only"
  # Debian packages the node needs (containerd, runc, nftables, ...): installed when missing.
  "$CLUSTER_DIR/deps.sh" || die "the real node's Debian packages could not be installed (see above); install them with hack/cluster/deps.sh, or use PORTWAY_REAL_NODE=0"
  # Images for the node (pause, CoreDNS, metrics-server, echo-basic, Portway): built or
  # refreshed before anything starts, so that a failure here leaves nothing behind.
  images_out="$("$CLUSTER_DIR/node-images.sh")" || die "could not make the node's images (see above)"
  NODE_IMAGES_LIST="$(tr '\n' ' ' <<<"$images_out")"
  export NODE_IMAGES_LIST
fi

for p in APISERVER ETCD_CLIENT ETCD_PEER KCM SCHEDULER; do
  port="$(state_port "$p")"
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "port $port (PORTWAY_${p}_PORT) is already in use; set PORTWAY_${p}_PORT to another port"
  fi
done

T0=$(date +%s)
mkdir -p "$D"
[[ -z "$(ls -A "$D" 2>/dev/null)" || -f "$D/.portway-cluster" ]] || die "$D exists and is not a portway cluster dir"
touch "$D/.portway-cluster"
# On any failure, take down whatever was started (processes, the node's network), keeping
# the logs: nothing is left half-made.
trap 'rc=$?; if [[ $rc -ne 0 ]]; then log "the cluster did not come up; stopping what was started"; PORTWAY_CLUSTER_DIR=$D "$CLUSTER_DIR/down.sh" --keep >&2 || true; log "logs kept in $D/logs (remove with: PORTWAY_CLUSTER_DIR=$D $CLUSTER_DIR/down.sh)"; fi' EXIT
mkdir -p "$D/pki" "$D/pids" "$D/logs" "$D/etcd"
chmod 700 "$D" "$D/pki"
cat >"$D/cluster.env" <<EOF
PORTWAY_APISERVER_PORT=$PORTWAY_APISERVER_PORT
PORTWAY_ETCD_CLIENT_PORT=$PORTWAY_ETCD_CLIENT_PORT
PORTWAY_ETCD_PEER_PORT=$PORTWAY_ETCD_PEER_PORT
PORTWAY_KCM_PORT=$PORTWAY_KCM_PORT
PORTWAY_SCHEDULER_PORT=$PORTWAY_SCHEDULER_PORT
PORTWAY_NODES=$PORTWAY_NODES
PORTWAY_POD_NET=$PORTWAY_POD_NET
KUBE_BIN_DIR=$KUBE_BIN_DIR
PORTWAY_REAL_NODE=$PORTWAY_REAL_NODE
APISERVER_HOST=$APISERVER_HOST
EOF
if [[ $PORTWAY_REAL_NODE == 1 ]]; then "$CLUSTER_DIR/node-up.sh" net; fi

# --- certificates --------------------------------------------------------------------------------
P="$D/pki"
ossl() { openssl "$@" 2>>"$D/logs/openssl.log"; }
mkca() { # name CN
  ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -keyout "$P/$1.key" -out "$P/$1.crt" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}
mkcert() { # name ca subject extendedKeyUsage [subjectAltName]
  local ext="$P/$1.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$4"
    [[ -n "${5:-}" ]] && echo "subjectAltName=$5"
  } >"$ext"
  ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$3"
  ossl x509 -req -in "$P/$1.csr" -CA "$P/$2.crt" -CAkey "$P/$2.key" -CAcreateserial -days 3650 \
    -extfile "$ext" -out "$P/$1.crt"
  rm -f "$P/$1.csr" "$ext"
}
mkca ca portway-cluster-ca
mkca front-proxy-ca portway-front-proxy-ca
mkcert apiserver ca "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.96.0.1${NODE_IP:+,IP:$NODE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
mkcert admin ca "/O=system:masters/CN=portway-admin" clientAuth
mkcert kube-controller-manager ca "/CN=system:kube-controller-manager" clientAuth
mkcert kube-scheduler ca "/CN=system:kube-scheduler" clientAuth
mkcert kwok ca "/O=system:masters/CN=kwok-controller" clientAuth   # kwok plays every kubelet
mkcert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
if [[ $PORTWAY_REAL_NODE == 1 ]]; then
  mkcert kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  mkcert kubelet-serving ca "/O=system:nodes/CN=system:node:$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
  mkcert kube-proxy ca "/CN=system:kube-proxy" clientAuth
  # The apiserver's client identity towards kubelets (logs, exec, port-forward).
  mkcert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
fi
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/sa.key"
ossl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub"
chmod 600 "$P"/*.key

write_kubeconfig "$D/kubeconfig" admin "https://$APISERVER_HOST:$PORTWAY_APISERVER_PORT" "$P"
for c in kube-controller-manager kube-scheduler kwok; do write_kubeconfig "$D/$c.kubeconfig" "$c" "https://$APISERVER_HOST:$PORTWAY_APISERVER_PORT" "$P"; done

# --- processes --------------------------------------------------------------------------------

start etcd "$ETCD" --name portway --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$PORTWAY_ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$PORTWAY_ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PORTWAY_ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PORTWAY_ETCD_PEER_PORT" \
  --initial-cluster "portway=http://127.0.0.1:$PORTWAY_ETCD_PEER_PORT" \
  --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
wait_for "etcd health" 60 etcd curl -sf --max-time 2 "http://127.0.0.1:$PORTWAY_ETCD_CLIENT_PORT/health"

apiserver_node_flags=()
if [[ $PORTWAY_REAL_NODE == 1 ]]; then
  apiserver_node_flags=(
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key"
    --kubelet-preferred-address-types=InternalIP,Hostname
    # Namespaces of scale tests pin their pods to kwok nodes (node selector + toleration
    # annotations); everything else runs on the real node.
    --enable-admission-plugins=PodNodeSelector,PodTolerationRestriction
  )
fi
start kube-apiserver "$KUBE_APISERVER" \
  --bind-address="$APISERVER_HOST" --advertise-address="$APISERVER_HOST" --secure-port="$PORTWAY_APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$PORTWAY_ETCD_CLIENT_PORT" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --allow-privileged=true \
  --enable-aggregator-routing=true \
  --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key" \
  --profiling=false "${apiserver_node_flags[@]}"
wait_for "kube-apiserver /readyz" 180 kube-apiserver apiserver_ready

# --node-monitor-grace-period: kwok's nodes are simulated, and a test that stops the apiserver
# for a few seconds on a busy machine otherwise has the node lifecycle controller see stale
# leases afterwards (default grace 50 s; seen after a 45 s outage), mark the nodes NotReady and
# their pods not ready, and empty the EndpointSlices of the tests that run next.
start kube-controller-manager "$KUBE_CONTROLLER_MANAGER" \
  --kubeconfig="$D/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$D/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$D/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$PORTWAY_KCM_PORT" \
  --controllers='*' --use-service-account-credentials=true \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --service-cluster-ip-range=10.96.0.0/16 --allocate-node-cidrs=false \
  --node-monitor-grace-period=10m \
  --leader-elect=false --profiling=false

start kube-scheduler "$KUBE_SCHEDULER" \
  --kubeconfig="$D/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$D/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$D/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$PORTWAY_SCHEDULER_PORT" \
  --leader-elect=false --profiling=false

# kwok: its own default stages (node-initialize, node-heartbeat-with-lease, pod-ready,
# pod-complete, pod-delete) from the same kwok version, copied there by build.sh.
{
  echo "apiVersion: config.kwok.x-k8s.io/v1alpha1"
  echo "kind: KwokConfiguration"
  # Explicit: kwok applies its documented defaults only when no KwokConfiguration is given.
  echo "options:"
  echo "  podPlayStageParallelism: 4"
  echo "  nodePlayStageParallelism: 4"
  echo "  nodeLeaseParallelism: 4"
  echo "  podsOnNodeSyncParallelism: 1"
  echo "  enablePodsOnNodeSyncListPager: true"
  echo "  enablePodsOnNodeSyncStreamWatch: false"
  for f in "$KWOK_BIN_DIR"/stages/*.yaml; do echo "---"; cat "$f"; done
} >"$D/kwok.yaml"
start kwok "$KWOK" --kubeconfig="$D/kwok.kubeconfig" --config="$D/kwok.yaml" \
  --manage-nodes-with-label-selector=type=kwok --node-ip=127.0.0.1 --cidr="$PORTWAY_POD_NET.255.0/24" \
  --node-lease-duration-seconds=40

wait_for "kube-controller-manager /healthz" 120 kube-controller-manager \
  curl -sfk --max-time 2 "https://127.0.0.1:$PORTWAY_KCM_PORT/healthz"
wait_for "kube-scheduler /healthz" 120 kube-scheduler \
  curl -sfk --max-time 2 "https://127.0.0.1:$PORTWAY_SCHEDULER_PORT/healthz"

# --- fake nodes ---------------------------------------------------------------------------------
K=("$KUBECTL" --kubeconfig="$D/kubeconfig")
zones=(a b c d e f g h)
{
  for (( i = 0; i < PORTWAY_NODES; i++ )); do
    zone="zone-${zones[$(( i % ${#zones[@]} ))]}"
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/worker: ""
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
spec:
  podCIDR: $PORTWAY_POD_NET.$i.0/24
  podCIDRs: [$PORTWAY_POD_NET.$i.0/24]
EOF
    # Beside a real node, nothing lands on a fake one unless it asks to (useNamespace's kwok
    # namespaces do, through PodTolerationRestriction).
    if [[ $PORTWAY_REAL_NODE == 1 ]]; then printf '  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]\n'; fi
  done
} >"$D/nodes.yaml"
"${K[@]}" apply -f "$D/nodes.yaml" >&2
wait_for "kwok nodes Ready" 120 kwok "${K[@]}" wait --for=condition=Ready node --all --timeout=2s
# The controller manager is really working once it has made the default ServiceAccount.
wait_for "ServiceAccount default/default" 120 kube-controller-manager "${K[@]}" get serviceaccount default -n default

if [[ $PORTWAY_REAL_NODE == 1 ]]; then
  "$CLUSTER_DIR/node-up.sh" node
  "$CLUSTER_DIR/addons.sh"
fi

log "cluster up in $(( $(date +%s) - T0 ))s: apiserver https://$APISERVER_HOST:$PORTWAY_APISERVER_PORT, state in $D"
print_env
