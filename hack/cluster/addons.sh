#!/usr/bin/env bash
# Cluster add-ons for the real node, from the pinned upstream modules' own manifests (never
# hand-copied; the edits below are made by script and listed here):
#   CoreDNS         k8s.io/kubernetes cluster/addons/dns/coredns/coredns.yaml.sed, with kube-up's
#                   substitutions; the image is the one build.sh made; no `forward` (nothing
#                   outside this machine to forward to)
#   metrics-server  sigs.k8s.io/metrics-server manifests/overlays/release (kustomize), plus
#                   --kubelet-insecure-tls (as its own test overlay does) and the image build.sh made
# Called by up.sh after node-up.sh; waits until both serve.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$CLUSTER_DIR/node-net.sh"

D="$PORTWAY_CLUSTER_DIR"
A="$D/addons"
mkdir -p "$A"
K=("$KUBECTL" --kubeconfig="$D/kubeconfig")
modcache="$PORTWAY_CACHE/go/mod"

kube_mod="$modcache/k8s.io/kubernetes@$KUBERNETES_VERSION"
ms_mod="$modcache/sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION"
[[ -f "$kube_mod/cluster/addons/dns/coredns/coredns.yaml.sed" ]] || die "no CoreDNS manifest in $kube_mod (run hack/cluster/build.sh)"
[[ -d "$ms_mod/manifests/overlays/release" ]] || die "no metrics-server manifests in $ms_mod (run hack/cluster/build.sh)"

# --- CoreDNS ---------------------------------------------------------------------------------
sed -e "s/\$DNS_DOMAIN/cluster.local/g" -e "s/\$DNS_SERVER_IP/$CLUSTER_DNS_IP/g" -e "s/\$DNS_MEMORY_LIMIT/170Mi/g" \
  -e "s#image: registry.k8s.io/coredns/coredns:.*#image: $COREDNS_IMAGE#" \
  -e '/^ *forward \. \/etc\/resolv.conf {$/,/^ *}$/d' \
  "$kube_mod/cluster/addons/dns/coredns/coredns.yaml.sed" >"$A/coredns.yaml"
grep -q "image: $COREDNS_IMAGE" "$A/coredns.yaml" || die "could not set the CoreDNS image in $A/coredns.yaml (did the upstream manifest change?)"
grep -q 'forward \.' "$A/coredns.yaml" && die "could not remove CoreDNS's forward block (did the upstream manifest change?)"

# --- metrics-server --------------------------------------------------------------------------
rm -rf "$A/metrics-server"; cp -R "$ms_mod/manifests" "$A/metrics-server"; chmod -R u+w "$A/metrics-server"
cat >"$A/metrics-server/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- overlays/release
images:
- name: registry.k8s.io/metrics-server/metrics-server
  newName: ${METRICS_SERVER_IMAGE%:*}
  newTag: ${METRICS_SERVER_IMAGE##*:}
patches:
- target: {group: apps, version: v1, kind: Deployment, name: metrics-server, namespace: kube-system}
  patch: |
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --kubelet-insecure-tls
EOF
"${K[@]}" kustomize "$A/metrics-server" >"$A/metrics-server.yaml"
grep -q "image: $METRICS_SERVER_IMAGE" "$A/metrics-server.yaml" || die "could not set the metrics-server image"

log "applying CoreDNS and metrics-server"
"${K[@]}" apply -f "$A/coredns.yaml" -f "$A/metrics-server.yaml" >"$D/logs/addons.log"
"${K[@]}" -n kube-system rollout status deployment/coredns --timeout=120s >>"$D/logs/addons.log" ||
  die "CoreDNS did not become ready (kubectl -n kube-system describe pods -l k8s-app=kube-dns)"
"${K[@]}" -n kube-system rollout status deployment/metrics-server --timeout=120s >>"$D/logs/addons.log" ||
  die "metrics-server did not become ready (kubectl -n kube-system logs deploy/metrics-server)"
log "CoreDNS ($CLUSTER_DNS_IP) and metrics-server are ready"
