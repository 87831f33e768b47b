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

single() { "$IMAGE_SCRIPTS/single-binary.sh" "$@"; }   # NAME:TAG BINARY [options]; reuses a current archive

single "$PAUSE_IMAGE" "$PAUSE" --user 65535:65535
single "$COREDNS_IMAGE" "$COREDNS" --entrypoint /coredns
single "$METRICS_SERVER_IMAGE" "$METRICS_SERVER" --entrypoint /metrics-server
IFS=, read -r -a echo_tags <<<"$ECHO_BASIC_IMAGES"
for ref in "${echo_tags[@]}"; do single "$ref" "$ECHO_BASIC"; done
"$IMAGE_SCRIPTS/build.sh"
