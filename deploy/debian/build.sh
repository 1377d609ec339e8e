#!/usr/bin/env bash
# Build the Debian package of opale-gateway and check it with lintian.
#
# Usage: deploy/debian/build.sh [OUTDIR]      (default: build/package)
#
# Copies the source tree to OUTDIR/src/opale-gateway-VERSION with this
# directory as debian/, runs `dpkg-buildpackage -b` there (debhelper; only
# the gateway is compiled), moves the .deb to OUTDIR and runs lintian on it:
# any lintian error fails the build (warnings are printed). Installs the
# missing Debian packages first (deploy/install-deps.sh). Prints the path
# of the .deb as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/build/package}
mkdir -p "$out"
out=$(cd "$out" && pwd)

"$top/deploy/install-deps.sh" debhelper dpkg-dev lintian fakeroot build-essential cmake \
    pkg-config libevent-dev libssl-dev libjansson-dev libhiredis-dev libnghttp2-dev check node-llhttp

version=$(dpkg-parsechangelog -l "$here/changelog" -S Version)
upstream=${version%-*}
src="$out/src/opale-gateway-$upstream"
rm -rf "$out/src"
mkdir -p "$src"
# the tree without build directories or VCS data
(cd "$top" && tar -cf - --exclude='./build*' --exclude=./.git --exclude='./deploy/sandbox/pki' \
    CMakeLists.txt Makefile README.md cmake gateway deploy docs tests bench policies) |
    tar -xf - -C "$src"
cp -r "$here" "$src/debian"
rm -f "$src/debian/build.sh"

cd "$src"
# as root no fakeroot is needed (Rules-Requires-Root: no); otherwise
# dpkg-buildpackage uses fakeroot for the binary target itself
dpkg-buildpackage -b -us -uc >"$out/dpkg-buildpackage.log" 2>&1 || {
    tail -n 60 "$out/dpkg-buildpackage.log"
    echo "build.sh: dpkg-buildpackage failed (log: $out/dpkg-buildpackage.log)" >&2
    exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="opale-gateway_${version}_${arch}.deb"
mv "$out/src/$deb" "$out/$deb"
rm -f "$out"/src/*.buildinfo "$out"/src/*.changes "$out"/src/*.ddeb \
      "$out"/src/opale-gateway-dbgsym_*.deb
# lintian as root warns about it; run it as nobody when possible
lint=(lintian --fail-on error --display-info "$out/$deb")
if "${lint[@]}" >"$out/lintian.log" 2>&1; then
    cat "$out/lintian.log"
else
    cat "$out/lintian.log"
    echo "build.sh: lintian reports errors" >&2
    exit 1
fi
echo "$out/$deb"
