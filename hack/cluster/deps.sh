#!/usr/bin/env bash
# Installs the Debian packages a real Kubernetes node needs (see
# /work/shared/design/REAL-NODE.md), when they are missing:
#   containerd runc           container runtime (started by hand, no systemd)
#   iptables nftables conntrack   kube-proxy, CNI portmap/bridge masquerading, conntrack cleanup
#   umoci skopeo              make OCI images locally and turn them into archives for containerd
#
#   hack/cluster/deps.sh           install what is missing (needs root); silent if nothing is
#   hack/cluster/deps.sh --check   name what is missing on stderr, exit 1 if anything is
#
# Idempotent. `apt-get update` runs (once) only when something has to be installed.
set -euo pipefail

PACKAGES=(containerd runc iptables nftables conntrack umoci skopeo)

err() { printf '[hack/cluster deps] %s\n' "$*" >&2; }
die() { err "ERROR: $*"; exit 1; }

command -v dpkg-query >/dev/null ||
  die "dpkg-query not found: this script knows Debian/Ubuntu only; install these yourself: ${PACKAGES[*]}"

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
missing_packages() { local p; for p in "${PACKAGES[@]}"; do installed "$p" || echo "$p"; done; }

mapfile -t missing < <(missing_packages)

case "${1:-}" in
  --check)
    if [[ ${#missing[@]} -gt 0 ]]; then
      err "missing Debian packages: ${missing[*]} (install them with: sudo hack/cluster/deps.sh)"
      exit 1
    fi
    exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (usage: deps.sh [--check])" ;;
esac

[[ ${#missing[@]} -eq 0 ]] && exit 0

[[ "$(id -u)" -eq 0 ]] ||
  die "missing Debian packages: ${missing[*]}; installing them needs root: run sudo $0 (or apt-get install ${missing[*]})"

export DEBIAN_FRONTEND=noninteractive
apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
err "installing ${missing[*]}"
"${apt[@]}" update >/dev/null || die "apt-get update failed"
"${apt[@]}" install --no-install-recommends "${missing[@]}" >/dev/null ||
  die "apt-get install ${missing[*]} failed (see the apt-get output above)"

mapfile -t still < <(missing_packages)
[[ ${#still[@]} -eq 0 ]] || die "still missing after apt-get install: ${still[*]}"
err "installed ${missing[*]}"
