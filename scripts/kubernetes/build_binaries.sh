#!/usr/bin/env bash
# Builds Kubernetes 1.20.2 from Debian 12's own `kubernetes` source package
# (the full tree with vendor/), offline, with Debian's Go: kubeadm, kubelet,
# kubectl, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy,
# and the static pause binary from build/pause/linux/pause.c.
#
# Usage: build_binaries.sh CACHE_DIR   (root; prints the folder that holds
# bin/NAME and VERSION). The result is cached under CACHE_DIR by a key of this
# recipe, the source package version and the Go version: later runs reuse it.
# Needs: golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev gcc
# libc6-dev (scripts/kubernetes/deps.sh installs them).
set -euo pipefail
cache=${1:?usage: build_binaries.sh CACHE_DIR}
exec 3>&1 1>&2

srcpkg=kubernetes
srcver=1.20.5+really1.20.2-1.1+deb12u1
gitversion=v1.20.2
go=/usr/lib/go-1.19/bin/go
[[ -x $go ]] || { echo "build_binaries: $go missing (golang-1.19-go)" >&2; exit 1; }
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d $reflect2 ]] || { echo "build_binaries: $reflect2 missing (golang-github-modern-go-reflect2-dev)" >&2; exit 1; }

key=$( { cat "$0"; echo "$srcver"; "$go" version; dpkg-query -W golang-github-modern-go-reflect2-dev; } |
  sha256sum | cut -c1-16)
out="$cache/binaries-$key"
if [[ -f "$out/VERSION" ]]; then
  echo "build_binaries: cached in $out" >&2
  echo "$out" >&3
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

# apt-get source needs a deb-src entry: give it to these commands alone, never
# to the machine's apt configuration.
mkdir -p "$work/apt/sources" "$work/apt/lists/partial"
src_uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[[ -n "$src_uri" ]] || src_uri=http://deb.debian.org/debian
cat >"$work/apt/sources/debian-src.sources" <<EOF
Types: deb-src
URIs: $src_uri
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
sec_uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -m1 security || true)
[[ -n "$sec_uri" ]] || sec_uri=http://deb.debian.org/debian-security
cat >>"$work/apt/sources/debian-src.sources" <<EOF

Types: deb-src
URIs: $sec_uri
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-o "Dir::Etc::sourceparts=$work/apt/sources" -o Dir::Etc::sourcelist=/dev/null
  -o "Dir::State::Lists=$work/apt/lists")
apt-get "${apt_opts[@]}" update -q >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; exit 1; }
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only "$srcpkg=$srcver") >>"$work/apt.log" 2>&1 ||
  { tail -20 "$work/apt.log" >&2; exit 1; }
echo "build_binaries: source downloaded ($((SECONDS - start)) s)" >&2

gopath="$work/gopath"
tree="$gopath/src/k8s.io/kubernetes"
mkdir -p "$(dirname "$tree")"
dpkg-source --no-check -x "$work"/${srcpkg}_*.dsc "$tree" >>"$work/apt.log" 2>&1 ||
  { tail -20 "$work/apt.log" >&2; exit 1; }
# The vendored reflect2 1.0.1 segfaults under Go >= 1.18 when kubeadm writes
# YAML; Debian's 1.0.2 is API-compatible.
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
cp -a "$reflect2" "$tree/vendor/github.com/modern-go/reflect2"

export GOPATH=$gopath GO111MODULE=off GOPROXY=off CGO_ENABLED=0
export GOCACHE="$work/gocache" PATH="$(dirname "$go"):$PATH"
t=$SECONDS
# kube-apiserver needs the generated OpenAPI definitions.
(cd "$tree" && nice make generated_files) >"$work/generated.log" 2>&1 ||
  { tail -30 "$work/generated.log" >&2; exit 1; }
echo "build_binaries: generated files ($((SECONDS - t)) s)" >&2

# The three version packages upstream's hack/lib/version.sh stamps: without
# client-go's, the API server's /version says v0.0.0-master.
ldflags="-s -w"
for V in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/pkg/version \
  k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $V.gitVersion=$gitversion -X $V.gitMajor=1 -X $V.gitMinor=20 -X $V.gitTreeState=clean"
  ldflags+=" -X $V.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$work/out/bin"
timings=()
for name in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  t=$SECONDS
  (cd "$tree" && nice go build -trimpath -ldflags "$ldflags" -o "$work/out/bin/$name" "./cmd/$name") \
    >"$work/build-$name.log" 2>&1 || { tail -30 "$work/build-$name.log" >&2; exit 1; }
  timings+=("$name $((SECONDS - t)) s")
  echo "build_binaries: $name ($((SECONDS - t)) s)" >&2
done
gcc -Os -static -DVERSION=v3.4.1 -o "$work/out/bin/pause" "$tree/build/pause/linux/pause.c"
strip "$work/out/bin/pause"
"$work/out/bin/kubeadm" version -o short | grep -qx "$gitversion" ||
  { echo "build_binaries: kubeadm does not call itself $gitversion" >&2; exit 1; }
{
  echo "kubernetes $gitversion from Debian source $srcpkg $srcver"
  "$go" version
  printf '%s\n' "${timings[@]}"
  echo "total $((SECONDS - start)) s"
} >"$work/out/VERSION"
rm -rf "$out"
mv "$work/out" "$out"
echo "build_binaries: built in $((SECONDS - start)) s into $out" >&2
echo "$out" >&3
