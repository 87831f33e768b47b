#!/usr/bin/env bash
# Runs the Portway image as a container (runc, from its OCI config: user 1337, entrypoint
# `portway`, Node.js as PID 1 in its own PID and network namespaces), sends SIGTERM and times
# the exit, for:
#   proxy-files       `portway proxy --config` serving a gateway       -> drains, exits 0
#   proxy-kubernetes  `portway proxy` against an API server that never answers (still starting)
#   operator          `portway operator` against an API server that never answers
# Each must exit within LIMIT seconds of the signal (default 5; the drain is 1 s), not at the
# end of a kill grace period. Prints one line per case on stdout: NAME EXIT-CODE SECONDS.
#
#   hack/image/check-signals.sh [ARCHIVE]     default: the archive build.sh makes
# Environment: LIMIT (seconds).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

archive="${1:-$("$IMAGE_DIR/build.sh" --print | head -1)}"
[[ -s "$archive" ]] || die "no image archive at $archive (run hack/image/build.sh)"
LIMIT="${LIMIT:-5}"
"$IMAGE_DIR/deps.sh"

work="$(mktemp -d "${TMPDIR:-/tmp}/portway-check-signals.XXXXXX")"
state="$work/runc-state"
ids=()
cleanup() {
  for id in "${ids[@]}"; do runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

skopeo copy --quiet "docker-archive:$archive" "oci:$work/oci:img" >&2
umoci unpack --image "$work/oci:img" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
mkdir -p "$rootfs/tmp/cfg"
cp "$REPO_ROOT/examples/standalone/gateway.yaml" "$rootfs/tmp/cfg/"
# An API server address nothing listens on inside the container's own network namespace.
cat >"$rootfs/tmp/kubeconfig" <<'KC'
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
KC
chmod -R a+rX "$rootfs/tmp/cfg" "$rootfs/tmp/kubeconfig"

# NAME|READY-REGEX|ARGS (the entrypoint `portway` comes from the image)
cases=(
  "proxy-files|serving snapshot|proxy --config /tmp/cfg --drain-duration 1s"
  "proxy-kubernetes||proxy --drain-duration 1s"
  "operator|serving /healthz|operator --leader-elect true --namespace default"
)
cp "$work/bundle/config.json" "$work/config.orig.json"
failed=0
for c in "${cases[@]}"; do
  IFS='|' read -r name ready args <<<"$c"
  id="portway-sig-$$-$name"
  ids+=("$id")
  # The image's own config (user, env, entrypoint), with these arguments and no terminal.
  node -e '
    const fs = require("fs"); const [file, out, args] = process.argv.slice(1);
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    c.process.terminal = false;
    // No cgroups: none is needed here (and crun refuses the hybrid v1/v2 hierarchy of these machines).
    delete c.linux.cgroupsPath; delete c.linux.resources;
    c.mounts = c.mounts.filter((m) => m.type !== "cgroup" && m.type !== "cgroup2");
    c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== "cgroup");
    c.process.args = [c.process.args[0], ...args.split(" ")];
    c.process.env.push("KUBECONFIG=/tmp/kubeconfig", "POD_NAMESPACE=default");
    fs.writeFileSync(out, JSON.stringify(c));
  ' "$work/config.orig.json" "$work/bundle/config.json" "$args"
  out="$work/$name.log"
  runc --root "$state" run --bundle "$work/bundle" "$id" >"$out" 2>&1 </dev/null &
  runpid=$!
  # Started: the ready line, or (no line to wait for) 3 s of running.
  for _ in $(seq 1 200); do
    if [[ -n "$ready" ]]; then grep -q "$ready" "$out" && break; elif [[ $_ -ge 30 ]]; then break; fi
    kill -0 "$runpid" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$runpid" 2>/dev/null; then
    log "$name: exited before SIGTERM:"; cat "$out" >&2; failed=1; continue
  fi
  pid1="$(runc --root "$state" state "$id" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).pid))')"
  [[ -r "/proc/$pid1/cmdline" ]] && log "$name: PID 1 is $(tr '\0' ' ' <"/proc/$pid1/cmdline")"
  start=$(date +%s%N)
  runc --root "$state" kill "$id" SIGTERM
  code=0
  for _ in $(seq 1 $((LIMIT * 10 + 50))); do kill -0 "$runpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$runpid" 2>/dev/null; then
    runc --root "$state" kill "$id" SIGKILL || true
    wait "$runpid" || code=$?
    secs="timeout"
  else
    wait "$runpid" || code=$?
    secs="$(awk -v ns=$(( $(date +%s%N) - start )) 'BEGIN{printf "%.2f", ns/1e9}')"
  fi
  echo "$name $code $secs"
  if [[ "$secs" == timeout ]] || awk -v s="$secs" -v l="$LIMIT" 'BEGIN{exit !(s > l)}'; then
    log "$name: did not exit within $LIMIT s of SIGTERM; its output:"; cat "$out" >&2; failed=1
  fi
  runc --root "$state" delete -f "$id" >/dev/null 2>&1 || true
done
exit "$failed"
