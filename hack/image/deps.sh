#!/usr/bin/env bash
# Installs the Debian packages hack/image needs (root; apt-get), skipping what is there:
#   buildah      builds the Dockerfile (bud) and the base images
#   mmdebstrap   the Debian rootfs of the local Node build base
#   umoci skopeo single-binary images (OCI layout -> docker-archive)
#   containerd   ctr, to import archives into a node's containerd (load.sh)
#   runc         runs the image for the SIGTERM check (check-signals.sh), as the node does
#
#   hack/image/deps.sh           install what is missing
#   hack/image/deps.sh --check   exit 0 if everything is installed, 1 otherwise
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# command -> Debian package
CMDS=(buildah mmdebstrap umoci skopeo ctr runc)
pkg_of() { case "$1" in ctr) echo containerd ;; *) echo "$1" ;; esac; }

missing=()
for c in "${CMDS[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$(pkg_of "$c")"); done
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ "${1:-}" == "--check" ]] && { log "missing: ${missing[*]}"; exit 1; }
[[ "$(id -u)" == 0 ]] || die "need root to apt-get install ${missing[*]}"
log "apt-get install ${missing[*]}"
# Other scripts may be running apt at the same time: wait for the dpkg lock instead of failing.
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >&2
