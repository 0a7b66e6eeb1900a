#!/usr/bin/env bash
# Packs static binaries into a one-layer OCI image archive (oci-layout,
# index.json, blobs/) that `ctr images import` loads: the test node has no
# registry, so its pause image and test images are made here from files.
# Usage: oci-archive.sh OUT.tar IMAGE-NAME USER ENTRYPOINT FILE…
#   (each FILE lands at /<basename>; USER e.g. 65535:65535)
set -euo pipefail
out=$1 name=$2 user=$3 entrypoint=$4
shift 4
arch=${OCI_ARCH:-$(go env GOARCH 2>/dev/null || echo amd64)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
for f in "$@"; do install -m 0755 "$f" "$work/rootfs/$(basename "$f")"; done

# blob FILE — stores FILE under its digest and prints "DIGEST SIZE".
blob() {
  local digest size
  digest=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$work/oci/blobs/sha256/$digest"
  echo "$digest $size"
}

# An uncompressed layer, so its digest is also its diff_id; fixed owner and
# mtime keep the digest the same from build to build.
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" .
read -r layer layer_size < <(blob "$work/layer.tar")

printf '{"architecture":"%s","os":"linux","config":{"User":"%s","Entrypoint":["%s"],"Env":["PATH=/"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$user" "$entrypoint" "$layer" >"$work/config.json"
read -r config config_size < <(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
read -r manifest manifest_size < <(blob "$work/manifest.json")

# io.containerd.image.name is the full name ctr gives the imported image.
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$manifest_size" "$arch" "$name" "${name##*:}" >"$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/oci" -cf "$out" oci-layout index.json blobs
