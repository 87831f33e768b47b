#!/usr/bin/env bash
# Makes (when missing or stale) every image the real node runs, and prints their archive paths,
# one a line, for node-up.sh to import into containerd:
#   pause, CoreDNS, metrics-server, echo-basic (each of the tags the Gateway API conformance
#   manifests name)   single-binary images around the programs build.sh made
#   Portway           hack/image/build.sh, from the repository's Dockerfile
# Progress goes to stderr.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
IMAGE_SCRIPTS="$CLUSTER_DIR/../image"

single() { # NAME:TAG BINARY [single-binary.sh options]
  local ref="$1" bin="$2"; shift 2
  local out="$PORTWAY_CACHE/images/$(echo "${ref%:*}" | tr '/' '_')-${ref##*:}.tar"
  [[ -x "$bin" ]] || die "$bin is missing (run hack/cluster/build.sh)"
  if [[ -s "$out" && "$out" -nt "$bin" && "$out" -nt "$IMAGE_SCRIPTS/single-binary.sh" ]]; then
    echo "$out"
  else
    "$IMAGE_SCRIPTS/single-binary.sh" "$ref" "$bin" --out "$out" "$@"
  fi
}

single "$PAUSE_IMAGE" "$PAUSE" --user 65535:65535
single "$COREDNS_IMAGE" "$COREDNS" --entrypoint /coredns
single "$METRICS_SERVER_IMAGE" "$METRICS_SERVER" --entrypoint /metrics-server
IFS=, read -r -a echo_tags <<<"$ECHO_BASIC_IMAGES"
for ref in "${echo_tags[@]}"; do single "$ref" "$ECHO_BASIC"; done
"$IMAGE_SCRIPTS/build.sh"
