#!/usr/bin/env bash
# Builds the test platform's real servers from the Go module proxy into
# ~/.cache/feedcrawl/testbin/<name>-<version>/, skipping what is already there.
# Versions are pinned in versions.env; the k8s and etcd wrapper modules (with
# their go.sum) live in testbin/. Usage: build-testbin.sh [name…]
#   names: etcd versitygw helm toxiproxy promtool k8s containerd crictl cni images
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${FEEDCRAWL_TESTBIN:-$HOME/.cache/feedcrawl/testbin}
export CGO_ENABLED=0 GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "build-testbin: Go is required (https://go.dev/dl)" >&2; exit 1; }

log() { printf '[testbin] %s\n' "$*" >&2; }

# built NAME VERSION FILE… — true when every FILE exists in NAME-VERSION/.
built() {
  local dir="$cache/$1-$2"; shift 2
  for b in "$@"; do [ -e "$dir/$b" ] || return 1; done
}

# publish NAME VERSION TMPDIR — atomically moves a finished build into place.
publish() {
  rm -rf "$cache/$1-$2"; mv "$3" "$cache/$1-$2"
}

# The control plane and node binaries share one wrapper module, tags and
# ldflags, so they are the same build of the same version.
build_k8s() {
  local v=$K8S_VERSION minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  local bins=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)
  built kubernetes "$v" "${bins[@]}" && return
  local missing=() b
  for b in "${bins[@]}"; do [ -x "$cache/kubernetes-$v/$b" ] || missing+=("$b"); done
  log "building ${missing[*]} v$v (cold: ~15-25 min on 2 cores for all six; ~3 min for the node's three on a warm Go cache)"
  local out; out=$(mktemp -d "$cache/.kubernetes.XXXX")
  local pkgv=k8s.io/component-base/version cgv=k8s.io/client-go/pkg/version
  (cd "$here/testbin/k8s" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w \
      -X $pkgv.gitVersion=v$v -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$minor -X $pkgv.gitTreeState=clean \
      -X $pkgv.gitCommit=0000000000000000000000000000000000000000 -X $pkgv.buildDate=1970-01-01T00:00:00Z \
      -X $cgv.gitVersion=v$v -X $cgv.gitMajor=1 -X $cgv.gitMinor=$minor" \
    -o "$out/" "${missing[@]/#/k8s.io/kubernetes/cmd/}")
  # Keep what an earlier run built; add the new ones.
  [ -d "$cache/kubernetes-$v" ] && cp -n "$cache/kubernetes-$v"/* "$out/" 2>/dev/null || true
  publish kubernetes "$v" "$out"
}

build_etcd() {
  built etcd "$ETCD_VERSION" etcd && return
  log "building etcd v$ETCD_VERSION (cold: ~2 min)"
  local out; out=$(mktemp -d "$cache/.etcd.XXXX")
  (cd "$here/testbin/etcd" && go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
    -o "$out/etcd" go.etcd.io/etcd/server/v3)
  publish etcd "$ETCD_VERSION" "$out"
}

# go_install NAME VERSION "PKG…" "BIN…" [LDFLAGS] [TAGS] — for modules without
# replace directives; several PKGs of one module build in one go.
go_install() {
  local name=$1 v=$2 ldflags=${5:-} tags=${6:-} pkgs bins
  read -r -a pkgs <<<"$3"; read -r -a bins <<<"$4"
  built "$name" "$v" "${bins[@]}" && return
  local out; out=$(mktemp -d "$cache/.$name.XXXX")
  GOBIN="$out" go install -trimpath ${tags:+-tags "$tags"} -ldflags "-s -w $ldflags" "${pkgs[@]/%/@v$v}"
  [ -x "$out/${bins[0]}" ] || mv "$out/$(basename "${pkgs[0]}")" "$out/${bins[0]}"
  publish "$name" "$v" "$out"
}

build_helm() {
  local hv=helm.sh/helm/v3 minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  built helm "$HELM_VERSION" helm || log "building helm v$HELM_VERSION (cold: ~2.5 min)"
  go_install helm "$HELM_VERSION" "$hv/cmd/helm" helm \
    "-X $hv/internal/version.version=v$HELM_VERSION \
     -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$minor \
     -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$minor"
}
build_versitygw() {
  built versitygw "$VERSITYGW_VERSION" versitygw || log "building versitygw v$VERSITYGW_VERSION (cold: ~1.5 min)"
  go_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw versitygw
}
build_toxiproxy() {
  built toxiproxy "$TOXIPROXY_VERSION" toxiproxy-server || log "building toxiproxy v$TOXIPROXY_VERSION (cold: ~15 s)"
  go_install toxiproxy "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/server toxiproxy-server \
    "-X github.com/Shopify/toxiproxy/v2.Version=v$TOXIPROXY_VERSION"
}

build_promtool() {
  local pv=github.com/prometheus/common/version
  built promtool "$PROMTOOL_VERSION" promtool || log "building promtool (Prometheus module v$PROMTOOL_VERSION) (cold: ~3 min)"
  go_install promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool promtool \
    "-X $pv.Version=v$PROMTOOL_VERSION"
}

# The node's container runtime; no_btrfs etc. drop snapshotters that need cgo.
build_containerd() {
  local m=github.com/containerd/containerd/v2
  built containerd "$CONTAINERD_VERSION" containerd ctr containerd-shim-runc-v2 ||
    log "building containerd, ctr, containerd-shim-runc-v2 v$CONTAINERD_VERSION (cold: ~3.5 min)"
  go_install containerd "$CONTAINERD_VERSION" "$m/cmd/containerd $m/cmd/ctr $m/cmd/containerd-shim-runc-v2" \
    "containerd ctr containerd-shim-runc-v2" \
    "-X $m/version.Version=v$CONTAINERD_VERSION -X $m/version.Revision=v$CONTAINERD_VERSION" \
    no_btrfs,no_devmapper,no_zfs
}
build_crictl() {
  built crictl "$CRICTL_VERSION" crictl || log "building crictl v$CRICTL_VERSION (cold: ~1 min)"
  go_install crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION"
}
build_cni() {
  local m=github.com/containernetworking/plugins/plugins
  built cni-plugins "$CNI_PLUGINS_VERSION" bridge host-local loopback portmap ||
    log "building CNI plugins bridge, host-local, loopback, portmap v$CNI_PLUGINS_VERSION (cold: ~20 s)"
  go_install cni-plugins "$CNI_PLUGINS_VERSION" "$m/main/bridge $m/ipam/host-local $m/main/loopback $m/meta/portmap" \
    "bridge host-local loopback portmap" \
    "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v$CNI_PLUGINS_VERSION"
}

# Images the node imports instead of pulling: the pause image from the k8s
# module's own pause.c (static, as upstream builds it) and podcheck, a static
# Go program the node test runs in a pod. podcheck's folder is named after its
# source's hash, so an edit rebuilds it.
build_images() {
  local pause_dir pause_tag src_hash
  if ! built pause "$K8S_VERSION" pause.oci.tar; then
    pause_dir=$(cd "$here/testbin/k8s" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/build/pause
    pause_tag=$(sed -n 's/^TAG ?= *//p' "$pause_dir/Makefile")
    log "building the pause image $pause_tag from k8s v$K8S_VERSION (cold: ~1 s)"
    command -v gcc >/dev/null || { echo "build-testbin: gcc is required for the pause image: apt-get install -y gcc libc6-dev" >&2; exit 1; }
    local out; out=$(mktemp -d "$cache/.pause.XXXX")
    gcc -Os -Wall -Werror -static -DVERSION="v$pause_tag-feedcrawl" -o "$out/pause" "$pause_dir/linux/pause.c"
    bash "$here/testbin/oci-archive.sh" "$out/pause.oci.tar" "localhost/feedcrawl/pause:$pause_tag" 65535:65535 /pause "$out/pause"
    echo "localhost/feedcrawl/pause:$pause_tag" >"$out/image-name"
    publish pause "$K8S_VERSION" "$out"
  fi
  src_hash=$(cat "$here/testbin/podcheck/go.mod" "$here/testbin/podcheck/main.go" | sha256sum | cut -c1-12)
  if ! built podcheck "$src_hash" podcheck.oci.tar; then
    log "building the podcheck image (cold: ~10 s)"
    local out; out=$(mktemp -d "$cache/.podcheck.XXXX")
    (cd "$here/testbin/podcheck" && go build -trimpath -ldflags "-s -w" -o "$out/podcheck" .)
    bash "$here/testbin/oci-archive.sh" "$out/podcheck.oci.tar" "localhost/feedcrawl/podcheck:$src_hash" 65534:65534 /podcheck "$out/podcheck"
    echo "localhost/feedcrawl/podcheck:$src_hash" >"$out/image-name"
    publish podcheck "$src_hash" "$out"
  fi
}

mkdir -p "$cache"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(etcd versitygw helm toxiproxy promtool k8s containerd crictl cni images)
for t in "${targets[@]}"; do
  declare -F "build_$t" >/dev/null || { echo "build-testbin: unknown part '$t' (etcd versitygw helm toxiproxy promtool k8s containerd crictl cni images)" >&2; exit 2; }
  start=$SECONDS
  "build_$t"
  log "$t ready ($((SECONDS - start)) s)"
done
