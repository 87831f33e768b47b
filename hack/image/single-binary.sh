#!/usr/bin/env bash
# Makes a tiny image around one static binary (pause, CoreDNS, metrics-server, echo-basic, ...)
# as a docker-archive tagged NAME:TAG, with umoci and skopeo (no daemon, no registry). Prints the
# archive's path.
#
#   hack/image/single-binary.sh NAME:TAG BINARY [options]
#     --user UID[:GID]     user to run as (default 65532:65532, "nonroot" as in distroless)
#     --entrypoint ARG     entrypoint argv, one element per flag (default: /<basename of BINARY>)
#     --cmd ARG            default arguments, one element per flag
#     --env K=V            environment variable (repeatable)
#     --file SRC:DEST      another file to add (repeatable), e.g. a Corefile
#     --out PATH           archive path (default $PORTWAY_CACHE/images/<name>-<tag>.tar)
#
# The image holds /<basename of BINARY>, /etc/passwd and /etc/group (root, nobody, the user),
# /etc/nsswitch.conf, /etc/ssl/certs/ca-certificates.crt (the host's bundle, if present) and an
# empty /tmp (1777). A dynamically linked BINARY is refused: nothing else is in the image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() { die "usage: $0 NAME:TAG BINARY [--user UID[:GID]] [--entrypoint ARG]... [--cmd ARG]... [--env K=V]... [--file SRC:DEST]... [--out PATH]"; }
[[ $# -ge 2 ]] || usage
ref="$1" binary="$2"; shift 2
[[ "$ref" == *:* && "${ref##*:}" != */* ]] || die "NAME:TAG needs a tag: $ref"
user=65532:65532 out="" entrypoint=() cmd=() envs=() files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --user) user="${2:?}"; shift 2 ;;
    --entrypoint) entrypoint+=("${2?}"); shift 2 ;;
    --cmd) cmd+=("${2?}"); shift 2 ;;
    --env) envs+=("${2:?}"); shift 2 ;;
    --file) files+=("${2:?}"); shift 2 ;;
    --out) out="${2:?}"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -f "$binary" && -x "$binary" ]] || die "not an executable file: $binary"
if LC_ALL=C readelf -l "$binary" 2>/dev/null | grep -q 'INTERP'; then
  die "$binary is dynamically linked (it has an ELF interpreter); build it static (CGO_ENABLED=0)"
fi
"$IMAGE_DIR/deps.sh"

base="$(basename "$binary")"
[[ ${#entrypoint[@]} -gt 0 ]] || entrypoint=("/$base")
uid="${user%%:*}" gid="${user#*:}"; [[ "$user" == *:* ]] || gid="$uid"
[[ "$uid" =~ ^[0-9]+$ && "$gid" =~ ^[0-9]+$ ]] || die "--user takes numeric UID[:GID]: $user"
name_file="$(echo "${ref%:*}" | tr '/' '_')-${ref##*:}"
out="${out:-$IMAGES_CACHE/$name_file.tar}"
mkdir -p "$(dirname "$out")"
# Nothing changed since the archive was made (same binary, same script, same options file):
# reuse it. --file inputs are compared too.
if [[ -s "$out" && "$out" -nt "$binary" && "$out" -nt "$0" ]]; then
  fresh=1
  for f in "${files[@]}"; do [[ "$out" -nt "${f%%:*}" ]] || fresh=0; done
  if [[ $fresh -eq 1 && -f "$out.args" && "$(cat "$out.args")" == "$ref $user ${entrypoint[*]} ${cmd[*]} ${envs[*]} ${files[*]}" ]]; then echo "$out"; exit 0; fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/portway-single-binary.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/$base"
{
  echo 'root:x:0:0:root:/root:/sbin/nologin'
  echo 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin'
  [[ "$uid" == 0 || "$uid" == 65534 ]] || echo "app:x:$uid:$gid:app:/tmp:/sbin/nologin"
} >"$root/etc/passwd"
{
  echo 'root:x:0:'
  echo 'nogroup:x:65534:'
  [[ "$gid" == 0 || "$gid" == 65534 ]] || echo "app:x:$gid:"
} >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
for f in "${files[@]}"; do
  src="${f%%:*}" dest="${f#*:}"
  [[ -f "$src" && "$dest" == /* && "$f" == *:* ]] || die "--file SRC:DEST needs an existing SRC and an absolute DEST: $f"
  mkdir -p "$root$(dirname "$dest")"
  cp "$src" "$root$dest"
done

layout="$work/oci"
umoci init --layout "$layout"
umoci new --image "$layout:img"
# One layer holding the whole rootfs; files owned by root (as copied into a fresh image).
umoci insert --image "$layout:img" "$root" /
config=(--config.user "$uid:$gid" --config.workingdir / --clear=config.entrypoint --clear=config.cmd)
for a in "${entrypoint[@]}"; do config+=(--config.entrypoint "$a"); done
for a in "${cmd[@]}"; do config+=(--config.cmd "$a"); done
for e in "${envs[@]}"; do config+=(--config.env "$e"); done
umoci config --image "$layout:img" --os linux --architecture amd64 "${config[@]}"
umoci gc --layout "$layout"
tmp="$out.tmp.$$"
rm -f "$tmp"
skopeo copy --quiet "oci:$layout:img" "docker-archive:$tmp:$ref" >&2
mv -f "$tmp" "$out"
echo "$ref $user ${entrypoint[*]} ${cmd[*]} ${envs[*]} ${files[*]}" >"$out.args"
log "made $ref: $out ($(du -k "$out" | cut -f1) KB)"
echo "$out"
