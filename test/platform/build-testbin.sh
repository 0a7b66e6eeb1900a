#!/usr/bin/env bash
# Builds the test platform's real servers from the Go module proxy into
# ~/.cache/feedcrawl/testbin/<name>-<version>/, skipping what is already there.
# Versions are pinned in versions.env; the k8s and etcd wrapper modules (with
# their go.sum) live in testbin/. Usage: build-testbin.sh [name…]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${FEEDCRAWL_TESTBIN:-$HOME/.cache/feedcrawl/testbin}
export CGO_ENABLED=0 GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "build-testbin: Go is required (https://go.dev/dl)" >&2; exit 1; }

log() { printf '[testbin] %s\n' "$*" >&2; }

# built NAME VERSION BIN… — true when every BIN exists in NAME-VERSION/.
built() {
  local dir="$cache/$1-$2"; shift 2
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

# publish NAME VERSION TMPDIR — atomically moves a finished build into place.
publish() {
  rm -rf "$cache/$1-$2"; mv "$3" "$cache/$1-$2"
}

build_k8s() {
  local v=$K8S_VERSION minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  built kubernetes "$v" kube-apiserver kube-controller-manager kubectl && return
  log "building kube-apiserver, kube-controller-manager, kubectl v$v (cold: ~15-25 min on 2 cores)"
  local out; out=$(mktemp -d "$cache/.kubernetes.XXXX")
  local pkgv=k8s.io/component-base/version cgv=k8s.io/client-go/pkg/version
  (cd "$here/testbin/k8s" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w \
      -X $pkgv.gitVersion=v$v -X $pkgv.gitMajor=1 -X $pkgv.gitMinor=$minor -X $pkgv.gitTreeState=clean \
      -X $pkgv.gitCommit=0000000000000000000000000000000000000000 -X $pkgv.buildDate=1970-01-01T00:00:00Z \
      -X $cgv.gitVersion=v$v -X $cgv.gitMajor=1 -X $cgv.gitMinor=$minor" \
    -o "$out/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  publish kubernetes "$v" "$out"
}

build_etcd() {
  built etcd "$ETCD_VERSION" etcd && return
  log "building etcd v$ETCD_VERSION"
  local out; out=$(mktemp -d "$cache/.etcd.XXXX")
  (cd "$here/testbin/etcd" && go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
    -o "$out/etcd" go.etcd.io/etcd/server/v3)
  publish etcd "$ETCD_VERSION" "$out"
}

# go_install NAME VERSION PKG BIN [LDFLAGS] — for modules without replace directives.
go_install() {
  local name=$1 v=$2 pkg=$3 bin=$4 ldflags=${5:-}
  built "$name" "$v" "$bin" && return
  log "building $name v$v"
  local out; out=$(mktemp -d "$cache/.$name.XXXX")
  GOBIN="$out" go install -trimpath -ldflags "-s -w $ldflags" "$pkg@v$v"
  [ -x "$out/$bin" ] || mv "$out/$(basename "$pkg")" "$out/$bin"
  publish "$name" "$v" "$out"
}

build_helm() {
  local hv=helm.sh/helm/v3 minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  go_install helm "$HELM_VERSION" "$hv/cmd/helm" helm \
    "-X $hv/internal/version.version=v$HELM_VERSION \
     -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$minor \
     -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$minor"
}
build_versitygw() { go_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw versitygw; }
build_toxiproxy() {
  go_install toxiproxy "$TOXIPROXY_VERSION" github.com/Shopify/toxiproxy/v2/cmd/server toxiproxy-server \
    "-X github.com/Shopify/toxiproxy/v2.Version=v$TOXIPROXY_VERSION"
}

mkdir -p "$cache"
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(etcd versitygw helm toxiproxy k8s)
for t in "${targets[@]}"; do
  start=$SECONDS
  "build_$t"
  log "$t ready ($((SECONDS - start)) s)"
done
