#!/bin/sh
# refresh-uplot.sh: replaces the pinned uPlot build under static/vendor/uplot
# with the files of the npm package at UPLOT_VERSION, checks them against the
# registry's integrity hash, and writes SHA256SUMS (which dashboard_test.go
# checks, so a hand edit of a vendored file fails the tests).
#
# Only this script needs Node's npm. The Go build embeds the committed files.
#
#   serving/dashboard/refresh-uplot.sh            # the pinned version
#   UPLOT_VERSION=1.6.33 serving/dashboard/refresh-uplot.sh   # a new pin: update the default below too
set -eu
UPLOT_VERSION="${UPLOT_VERSION:-1.6.32}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/static/vendor/uplot"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --silent "uplot@$UPLOT_VERSION" > pack.txt
tgz="uplot-$UPLOT_VERSION.tgz"
want="$(npm view "uplot@$UPLOT_VERSION" dist.integrity)"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$want" != "$got" ]; then
	echo "refresh-uplot: $tgz integrity $got, the registry says $want" >&2
	exit 1
fi
tar xzf "$tgz"
mkdir -p "$dest"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE "$dest/"
echo "$UPLOT_VERSION" > "$dest/VERSION"
cd "$dest"
sha256sum uPlot.iife.min.js uPlot.min.css LICENSE VERSION > SHA256SUMS
echo "refresh-uplot: uPlot $UPLOT_VERSION in $dest" >&2
