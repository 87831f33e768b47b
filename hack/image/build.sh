#!/usr/bin/env bash
# Builds the Portway image from the repository's Dockerfile with buildah (no Docker daemon) and
# exports it as a docker-archive tagged as the chart's default image (charts/portway/values.yaml:
# image.repository and image.tag, else Chart.yaml appVersion), so that `helm install portway
# charts/portway` finds it once load.sh has imported it into a node's containerd.
#
#   hack/image/build.sh           build (reusing cached layers) and print the archive's path
#   hack/image/build.sh --check   exit 0 if the archive exists and is newer than every input
#                                 (Dockerfile, package*.json, sources), 1 otherwise; builds nothing
#   hack/image/build.sh --print   print the archive's path and the image name (two lines)
#
# The Dockerfile's build stage is FROM ${NODE_IMAGE}; here that is the local stand-in
# hack/image/base.sh makes (same Node version and Debian suite as the Dockerfile's default).
# RUN steps have the host's network (npm registry, Debian mirror) under chroot isolation.
# Environment: PORTWAY_CACHE (default ~/.cache/portway), PORTWAY_IMAGE_ARCHIVE (output path).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE="$(chart_image)"
ARCHIVE="${PORTWAY_IMAGE_ARCHIVE:-$IMAGES_CACHE/portway.tar}"
# The inputs the Dockerfile copies (keep in step with its COPY lines).
INPUTS=(Dockerfile .dockerignore package.json package-lock.json tsconfig.json bin cli dataplane kube operator hack test crds)

is_current() {
  [[ -s "$ARCHIVE" ]] || return 1
  local newer
  newer="$(cd "$REPO_ROOT" && find "${INPUTS[@]}" -newer "$ARCHIVE" -print -quit 2>/dev/null)"
  [[ -z "$newer" ]]
}

case "${1:-}" in
  --check) is_current; exit ;;
  --print) echo "$ARCHIVE"; echo "$IMAGE"; exit 0 ;;
  "") ;;
  *) die "usage: $0 [--check|--print]" ;;
esac

"$IMAGE_DIR/deps.sh"
mkdir -p "$IMAGES_CACHE" "$LOG_DIR" "$(dirname "$ARCHIVE")"
start=$SECONDS
base="$("$IMAGE_DIR/base.sh")"

log "buildah bud $IMAGE from Dockerfile, NODE_IMAGE=$base (log: $LOG_DIR/image-build.log)"
bud_start=$SECONDS
# The host's CA bundle, for npm in RUN steps (see base.sh: NODE_EXTRA_CA_CERTS); mounted, not copied.
host_ca="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
ca_mount=(); [[ -s "$host_ca" ]] && ca_mount=(-v "$host_ca:/etc/ssl/host-ca.crt:ro")
# --layers: every step's result is kept in the store and reused while its inputs are unchanged
# (re2's compile is redone only when package-lock.json changes).
if ! bah bud --pull-never --isolation chroot --layers --format docker "${ca_mount[@]}" \
    --build-arg NODE_IMAGE="$base" -t "$IMAGE" -f "$REPO_ROOT/Dockerfile" "$REPO_ROOT" \
    >"$LOG_DIR/image-build.log" 2>&1; then
  tail -n 30 "$LOG_DIR/image-build.log" >&2
  die "buildah bud failed: see $LOG_DIR/image-build.log"
fi
bud_s=$((SECONDS - bud_start))

tmp="$ARCHIVE.tmp.$$"
trap 'rm -f "$tmp"' EXIT
bah push --quiet "$IMAGE" "docker-archive:$tmp:$IMAGE" >&2
mv -f "$tmp" "$ARCHIVE"
trap - EXIT
size="$(bah inspect --type image --format '{{.FromImageID}}' "$IMAGE" >/dev/null 2>&1; du -m "$ARCHIVE" | cut -f1)"
log "built $IMAGE: $ARCHIVE (${size} MB) in $((SECONDS - start)) s (bud ${bud_s} s)"
echo "$(date -u +%FT%TZ) build.sh total=$((SECONDS - start))s bud=${bud_s}s archive=${size}MB" >>"$LOG_DIR/image-timings.log"
echo "$ARCHIVE"
