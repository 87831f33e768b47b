#!/usr/bin/env bash
# Imports docker-archive (or OCI) image tarballs into a containerd, in the namespace the CRI
# plugin (the kubelet) uses, so pods can run them without a registry. Prints each image name.
#
#   hack/image/load.sh ARCHIVE... --address SOCKET [--namespace k8s.io] [--snapshotter NAME]
#
# ARCHIVE: e.g. the output of build.sh or single-binary.sh. Exit 1 if any import fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() { die "usage: $0 ARCHIVE... --address SOCKET [--namespace k8s.io] [--snapshotter NAME]"; }
archives=() address="" namespace=k8s.io snapshotter=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --address) address="${2:-}"; shift 2 ;;
    --address=*) address="${1#*=}"; shift ;;
    --namespace|-n) namespace="${2:-}"; shift 2 ;;
    --snapshotter) snapshotter="${2:-}"; shift 2 ;;
    -h|--help) usage ;;
    -*) usage ;;
    *) archives+=("$1"); shift ;;
  esac
done
[[ -n "$address" && ${#archives[@]} -gt 0 ]] || usage
[[ -S "$address" ]] || die "no containerd socket at $address"
command -v ctr >/dev/null || "$IMAGE_DIR/deps.sh"

for a in "${archives[@]}"; do
  [[ -s "$a" ]] || die "no archive at $a"
  start=$SECONDS
  # --no-unpack is not used: unpacking now (into the snapshotter) makes the first pod start fast.
  out="$(ctr --address "$address" -n "$namespace" images import ${snapshotter:+--snapshotter "$snapshotter"} "$a" 2>&1)" ||
    { printf '%s\n' "$out" >&2; die "ctr images import $a failed"; }
  # ctr prints "unpacking NAME (sha256:...)...done" per image in the archive.
  names="$(printf '%s\n' "$out" | sed -n 's/^unpacking \([^ ]*\) (.*/\1/p')"
  [[ -n "$names" ]] || { printf '%s\n' "$out" >&2; die "ctr imported no image from $a"; }
  log "imported $a into $namespace in $((SECONDS - start)) s: $(echo $names)"
  printf '%s\n' "$names"
done
