#!/usr/bin/env bash
# Builds the pinned binaries (versions.env) of the control plane and of a real node from the Go
# module proxy into $PORTWAY_CACHE/bin/<tool>-<version>/, skipping whatever is already there.
#
#   hack/cluster/build.sh [TOOL...]          build what is missing (of the named tools, or all)
#   hack/cluster/build.sh --check [TOOL...]  exit 0 if built, else name what is missing on stderr
#                                            and exit 1 (builds nothing)
#   hack/cluster/build.sh --print [TOOL...]  print the binary paths
#
# Tools: kubernetes (kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet
# kube-proxy), etcd, kwok, helm, cni-plugins (bridge host-local loopback portmap), pause
# (hack/cluster/pause), coredns, metrics-server, echo-basic (Gateway API conformance backend).
#
# Environment: PORTWAY_CACHE (default ~/.cache/portway), GOPROXY (go's default).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Go caches live under PORTWAY_CACHE too, so a fresh clone reuses them and the repo stays clean.
export GOMODCACHE="$PORTWAY_CACHE/go/mod"
export GOCACHE="$PORTWAY_CACHE/go/build"
export GOPATH="$PORTWAY_CACHE/go/path"
export GOTOOLCHAIN=local   # never download another Go toolchain; fail loudly instead
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GOWORK=off

TIMINGS="$PORTWAY_CACHE/logs/build-timings.log"

# The one change made to upstream Kubernetes (see README "Loopback pod IPs"): the apiserver
# rejects loopback addresses in Endpoints/EndpointSlices (ValidateEndpointIP); we need pods at
# 127.1.x.y so that a local process can stand in for a pod. setup_kubernetes applies it.
# Bump the id when the patch changes (it names a marker file in the bin dir).
KUBE_PATCH_ID="allow-loopback-endpoint-ips-1"

# tool name -> "dir|binaries"
want() {
  case "$1" in
    kubernetes) echo "$KUBE_BIN_DIR|kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy" ;;
    etcd) echo "$ETCD_BIN_DIR|etcd" ;;
    kwok) echo "$KWOK_BIN_DIR|kwok" ;;
    helm) echo "$HELM_BIN_DIR|helm" ;;
    cni-plugins) echo "$CNI_BIN_DIR|bridge host-local loopback portmap" ;;
    pause) echo "$PAUSE_BIN_DIR|pause" ;;
    portway-lb) echo "$PORTWAY_LB_BIN_DIR|portway-lb" ;;
    coredns) echo "$COREDNS_BIN_DIR|coredns" ;;
    metrics-server) echo "$METRICS_SERVER_BIN_DIR|metrics-server" ;;
    echo-basic) echo "$ECHO_BASIC_BIN_DIR|echo-basic" ;;
    *) die "unknown tool: $1 (tools: ${TOOLS[*]})" ;;
  esac
}
TOOLS=(kubernetes etcd kwok helm cni-plugins pause portway-lb coredns metrics-server echo-basic)

# How a tool is built, beyond its version. Stored as .recipe in its bin dir; change the string
# when the way a tool is built changes and the next run rebuilds it (from the warm Go cache).
recipe_of() {
  case "$1" in
    kubernetes) echo "3 $KUBE_PATCH_ID version-ldflags kubelet-kube-proxy" ;;
    etcd) echo "1" ;;
    kwok) echo "2 version-ldflags default-stages" ;;
    helm) echo "2 version-ldflags kube-version-ldflags" ;;
    cni-plugins) echo "1 version-ldflags" ;;
    pause) echo "1 $PAUSE_RECIPE" ;;
    portway-lb) echo "1 $PORTWAY_LB_RECIPE" ;;
    coredns) echo "1 version-ldflags" ;;
    metrics-server) echo "1 version-ldflags" ;;
    echo-basic) echo "1" ;;
  esac
}

bins_of() { local s; s="$(want "$1")"; echo "${s#*|}"; }
is_built() {
  local dir b; dir="$(want "$1")"; dir="${dir%%|*}"
  for b in $(bins_of "$1"); do [[ -x "$dir/$b" ]] || return 1; done
  [[ -f "$dir/.recipe" && "$(cat "$dir/.recipe")" == "$(recipe_of "$1")" ]]
}

# What a tool lacks, one line each ("" if it is built).
what_is_missing() {
  local dir b; dir="$(want "$1")"; dir="${dir%%|*}"
  if [[ ! -d "$dir" ]]; then echo "$1: not built ($(bins_of "$1") in $dir)"; return; fi
  for b in $(bins_of "$1"); do [[ -x "$dir/$b" ]] || echo "$1: $dir/$b is missing"; done
  if [[ ! -f "$dir/.recipe" ]]; then echo "$1: $dir/.recipe is missing"
  elif [[ "$(cat "$dir/.recipe")" != "$(recipe_of "$1")" ]]; then
    echo "$1: built with recipe '$(cat "$dir/.recipe")', build.sh now wants '$(recipe_of "$1")'"
  fi
}

mode=build
case "${1:-}" in
  --check) mode=check; shift ;;
  --print) mode=print; shift ;;
  -*) die "unknown argument: $1" ;;
esac
if [[ $# -gt 0 ]]; then
  for t in "$@"; do want "$t" >/dev/null; done   # dies on an unknown name
  SELECTED=("$@")
else
  SELECTED=("${TOOLS[@]}")
fi
case "$mode" in
  check)
    rc=0
    for t in "${SELECTED[@]}"; do
      is_built "$t" && continue
      rc=1; what_is_missing "$t" | sed 's/^/build.sh --check: /' >&2
    done
    [[ $rc -eq 0 ]] || echo "build.sh --check: run hack/cluster/build.sh to build what is missing" >&2
    exit "$rc" ;;
  print)
    for t in "${SELECTED[@]}"; do spec="$(want "$t")"; for b in $(bins_of "$t"); do echo "${spec%%|*}/$b"; done; done
    exit 0 ;;
esac

command -v go >/dev/null || die "go is not installed (needed to build the cluster binaries)"
mkdir -p "$BIN_ROOT" "$PORTWAY_CACHE/logs" "$PORTWAY_CACHE/src"

# One build at a time per cache (parallel test runs wait here instead of racing).
exec 9>"$PORTWAY_CACHE/build.lock"
if ! flock -n 9; then log "another build holds $PORTWAY_CACHE/build.lock; waiting"; flock 9; fi

# Half-built directories of an interrupted build (nobody else builds while we hold the lock).
rm -rf "$BIN_ROOT"/*.tmp.*

missing=()
for t in "${SELECTED[@]}"; do is_built "$t" || missing+=("$t"); done
if [[ ${#missing[@]} -eq 0 ]]; then log "all binaries present under $BIN_ROOT"; exit 0; fi
log "building: ${missing[*]}  (cache $PORTWAY_CACHE, $(go version | cut -d' ' -f3), $(nproc) cores)"

now() { date +%s; }
T0=$(now)
timing() { printf '%s %-28s %5ss  %s\n' "$(date -u +%FT%TZ)" "$1" "$2" "${3:-}" >>"$TIMINGS"; }

# --- per-tool module set-up ---------------------------------------------------------------
src_dir() { echo "$PORTWAY_CACHE/src/$1"; }

setup_kubernetes() {
  local d; d="$(src_dir "kubernetes-$KUBERNETES_VERSION")"; mkdir -p "$d"
  local info gomod moddir
  info="$(cd "$d" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION")"
  gomod="$(sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' <<<"$info")"
  moddir="$(sed -n 's/.*"Dir": "\(.*\)",*/\1/p' <<<"$info")"
  [[ -f "$gomod" && -d "$moddir" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  # The patch (see KUBE_PATCH_ID): Go refuses -overlay for files in the module cache, so build
  # from a copy of the module (124 MB, a second to make) with the one file changed.
  local src="$d/k8s.io-kubernetes" f
  rm -rf "$src"; cp -R "$moddir" "$src"; chmod -R u+w "$src"
  f="$src/pkg/apis/core/validation/validation.go"
  awk '
    /^func ValidateEndpointIP\(/ { infn = 1 }
    infn && /^}/ { infn = 0 }
    infn && /^\tif ip\.IsLoopback\(\) \{$/ {
      print "\tif false && ip.IsLoopback() { // portway hack/cluster: loopback endpoint IPs allowed"; n++; next
    }
    { print }
    END { if (n != 1) exit 3 }' "$moddir/pkg/apis/core/validation/validation.go" >"$f" ||
    die "could not patch ValidateEndpointIP in k8s.io/kubernetes@$KUBERNETES_VERSION (did the function change? see hack/cluster/README.md)"
  # k8s.io/kubernetes replaces every k8s.io/* staging module with ./staging/...; those replaces
  # do not apply to a dependent module, so map each to the published v0.x module instead.
  {
    echo "module portway.local/build/kubernetes"
    echo
    echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    echo "	k8s.io/kubernetes => ./k8s.io-kubernetes"
    grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v v="$KUBERNETES_STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$d/go.mod"
  grep -q "=> k8s.io/api $KUBERNETES_STAGING_VERSION" "$d/go.mod" || die "no staging replaces found in $gomod"
}

setup_simple() { # name module version
  local d; d="$(src_dir "$1-$3")"; mkdir -p "$d"
  printf 'module portway.local/build/%s\n\ngo %s\n\nrequire %s %s\n' \
    "$1" "$(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')" "$2" "$3" >"$d/go.mod"
}

pkgs_of() {
  case "$1" in
    kubernetes) local c; for c in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do echo "k8s.io/kubernetes/cmd/$c"; done ;;
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
    helm) echo "helm.sh/helm/${HELM_VERSION%%.*}/cmd/helm" ;;
    cni-plugins) local p; for p in main/bridge ipam/host-local main/loopback meta/portmap; do echo "github.com/containernetworking/plugins/plugins/$p"; done ;;
    pause) echo portway.local/hack/cluster/pause ;;
    portway-lb) echo portway.local/hack/cluster/lb ;;
    coredns) echo github.com/coredns/coredns ;;
    metrics-server) echo sigs.k8s.io/metrics-server/cmd/metrics-server ;;
    echo-basic) echo sigs.k8s.io/gateway-api/conformance/echo-basic ;;
  esac
}
ver_of() {
  case "$1" in
    kubernetes) echo "$KUBERNETES_VERSION" ;; etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;; helm) echo "$HELM_VERSION" ;;
    cni-plugins) echo "$CNI_PLUGINS_VERSION" ;; pause) echo "$PAUSE_RECIPE" ;; portway-lb) echo "$PORTWAY_LB_RECIPE" ;;
    coredns) echo "$COREDNS_VERSION" ;; metrics-server) echo "$METRICS_SERVER_VERSION" ;;
    echo-basic) echo "$GATEWAY_API_VERSION" ;;
  esac
}
ldflags_of() {
  local v kmaj kmin
  case "$1" in
    kubernetes)
      v="$KUBERNETES_VERSION"; kmaj="${v#v}"; kmaj="${kmaj%%.*}"; kmin="${v#v*.}"; kmin="${kmin%%.*}"
      local x=""
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        x+=" -X $p.gitVersion=$v -X $p.gitMajor=$kmaj -X $p.gitMinor=$kmin -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
      done
      echo "-s -w$x" ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBERNETES_VERSION" ;;
    helm)
      # As helm's Makefile: the default Kubernetes version of `helm template` and `helm lint`
      # (.Capabilities.KubeVersion) is 1.<minor of helm's client-go>; unset it is v1.20.0.
      local h="helm.sh/helm/${HELM_VERSION%%.*}" cg minor
      cg="$(cd "$(src_dir "helm-$HELM_VERSION")" && go list -m -f '{{.Version}}' k8s.io/client-go)"
      minor="${cg#v0.}"; minor="${minor%%.*}"
      [[ "$minor" =~ ^[0-9]+$ ]] || die "could not read helm's k8s.io/client-go version ($cg)"
      echo "-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean" \
        "-X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$minor" \
        "-X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$minor" ;;
    # As the upstream release scripts / Makefiles do:
    cni-plugins) echo "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" ;;
    coredns) echo "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" ;;
    metrics-server) echo "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/client-go/pkg/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z" ;;
    pause) echo "-s -w -X main.version=portway-$PAUSE_RECIPE" ;;
    *) echo "-s -w" ;;
  esac
}

# Phase 1 (network-bound, in parallel): write go.mod and resolve + download every module
# the packages need (go list -deps with -mod=mod fills go.mod/go.sum).
prepare() {
  local t="$1" d t1; t1=$(now)
  case "$t" in
    kubernetes) setup_kubernetes ;;
    etcd) setup_simple etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ;;
    kwok) setup_simple kwok sigs.k8s.io/kwok "$KWOK_VERSION" ;;
    helm) setup_simple helm "helm.sh/helm/${HELM_VERSION%%.*}" "$HELM_VERSION" ;;
    cni-plugins) setup_simple cni-plugins github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" ;;
    coredns) setup_simple coredns github.com/coredns/coredns "$COREDNS_VERSION" ;;
    metrics-server) setup_simple metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" ;;
    echo-basic)
      # echo-basic is a package of the nested module sigs.k8s.io/gateway-api/conformance, whose
      # go.mod requires sigs.k8s.io/gateway-api v0.0.0-... with "replace => ../": pin the same release.
      setup_simple echo-basic sigs.k8s.io/gateway-api/conformance "$GATEWAY_API_VERSION"
      printf '\nreplace sigs.k8s.io/gateway-api => sigs.k8s.io/gateway-api %s\n' "$GATEWAY_API_VERSION" \
        >>"$(src_dir "echo-basic-$GATEWAY_API_VERSION")/go.mod" ;;
    pause)   # our own program: build a copy of hack/cluster/pause (no dependencies)
      d="$(src_dir "pause-$PAUSE_RECIPE")"; rm -rf "$d"; mkdir -p "$d"
      cp "$CLUSTER_DIR/pause/go.mod" "$CLUSTER_DIR/pause/main.go" "$d/" ;;
    portway-lb)   # our own program (hack/cluster/lb): client-go at the pinned staging version
      d="$(src_dir "portway-lb-$PORTWAY_LB_RECIPE")"; rm -rf "$d"; mkdir -p "$d"
      cp "$CLUSTER_DIR/lb/go.mod" "$CLUSTER_DIR/lb/go.sum" "$CLUSTER_DIR/lb/main.go" "$d/" ;;
  esac
  d="$(src_dir "$t-$(ver_of "$t")")"
  # shellcheck disable=SC2046
  (cd "$d" && go list -deps $(pkgs_of "$t") | wc -l >"$d/.package-count")
  timing "prepare $t $(ver_of "$t")" $(( $(now) - t1 ))
}

# Phase 2 (CPU-bound, one at a time: go build already uses every core).
compile() {
  local t="$1" d spec dir tmp t1; t1=$(now)
  d="$(src_dir "$t-$(ver_of "$t")")"
  spec="$(want "$t")"; dir="${spec%%|*}"; tmp="$dir.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  if [[ "$t" == kubernetes ]]; then
    printf 'k8s.io/kubernetes %s with %s: pkg/apis/core/validation ValidateEndpointIP accepts loopback IPs\n' \
      "$KUBERNETES_VERSION" "$KUBE_PATCH_ID" >"$tmp/PATCHES-$KUBE_PATCH_ID"
  fi
  if [[ "$t" == kwok ]]; then   # kwok's own default stages (what kwokctl uses), same version
    local kd; kd="$(cd "$d" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
    mkdir -p "$tmp/stages"
    cp "$kd/node/fast/node-initialize.yaml" "$kd/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
      "$kd/pod/fast/pod-ready.yaml" "$kd/pod/fast/pod-complete.yaml" "$kd/pod/fast/pod-delete.yaml" "$tmp/stages/"
  fi
  # go build -v names each package as it compiles it: count them for a progress line.
  local vlog="$PORTWAY_CACHE/logs/compile-$t.packages" bpid rc=0 last=$t1
  local ldflags; ldflags="$(ldflags_of "$t")"
  # shellcheck disable=SC2046
  (cd "$d" && exec go build -v -trimpath -ldflags="$ldflags" -o "$tmp/" $(pkgs_of "$t")) 2>"$vlog" &
  bpid=$!
  while kill -0 "$bpid" 2>/dev/null; do
    sleep 1
    if (( $(now) - last >= 30 )); then
      last=$(now)
      log "  $t: $(wc -l <"$vlog") of at most $(cat "$d/.package-count" 2>/dev/null || echo '?') packages compiled, $(( last - t1 ))s so far"
    fi
  done
  wait "$bpid" || rc=$?
  if [[ $rc -ne 0 ]]; then tail -n 40 "$vlog" >&2; rm -rf "$tmp"; die "go build of $t failed (exit $rc)"; fi
  if [[ "$t" == portway-lb && -x "$tmp/lb" ]]; then mv "$tmp/lb" "$tmp/portway-lb"; fi   # named after its folder
  if [[ "$t" == etcd ]]; then   # package go.etcd.io/etcd/server/v3 is named "server" by go build
    for n in server v3; do [[ -x "$tmp/$n" ]] && mv "$tmp/$n" "$tmp/etcd"; done
  fi
  for b in $(bins_of "$t"); do [[ -x "$tmp/$b" ]] || die "$t: $b was not produced"; done
  recipe_of "$t" >"$tmp/.recipe"
  rm -rf "$dir"; mv "$tmp" "$dir"
  timing "compile $t $(ver_of "$t")" $(( $(now) - t1 )) "$(du -sh "$dir" | cut -f1)"
  log "built $t $(ver_of "$t") in $(( $(now) - t1 ))s → $dir"
}

pids=()
for t in "${missing[@]}"; do
  ( prepare "$t" >"$PORTWAY_CACHE/logs/prepare-$t.log" 2>&1 || { tail -30 "$PORTWAY_CACHE/logs/prepare-$t.log" >&2; exit 1; } ) &
  pids+=($!)
done
log "downloading modules for ${missing[*]} (logs in $PORTWAY_CACHE/logs/)"
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[[ $fail -eq 0 ]] || die "module download failed"
log "modules ready after $(( $(now) - T0 ))s; compiling (this is the long part on a cold cache)"

# Smallest first so progress shows early; kubernetes last.
for t in pause portway-lb cni-plugins etcd echo-basic kwok helm coredns metrics-server kubernetes; do
  [[ " ${missing[*]} " == *" $t "* ]] || continue
  log "compiling $t $(ver_of "$t") ..."
  if ! compile "$t" 2>&1 | tee -a "$PORTWAY_CACHE/logs/compile-$t.log" >&2; then
    die "compiling $t failed (see $PORTWAY_CACHE/logs/compile-$t.log)"
  fi
done
timing "total (${missing[*]})" $(( $(now) - T0 ))
log "done in $(( $(now) - T0 ))s"
