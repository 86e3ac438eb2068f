#!/usr/bin/env bash
# Rebuild the board's vendored chart library from the npm package (no CDN at run time):
#   services/marketflow/web/vendor.sh            # fetch, verify, copy into static/vendor/uplot
#   services/marketflow/web/vendor.sh --check    # exit 1 if the committed files differ
# Needs `npm` and the npm registry. The package's published build (dist/) is what ships:
# uPlot.iife.min.js (the browser global `uPlot`), uPlot.min.css and the MIT LICENSE.
# `npm pack` checks the tarball against the registry's integrity hash; the sha256 of each
# file copied is recorded in VERSION.
set -euo pipefail
UPLOT_VERSION="${UPLOT_VERSION:-1.6.32}"
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/static/vendor/uplot"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "uplot@${UPLOT_VERSION}" >/dev/null)
tar -xzf "$work/uplot-${UPLOT_VERSION}.tgz" -C "$work"
files=(dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE)
{
  echo "uplot ${UPLOT_VERSION} (npm), MIT; rebuilt by services/marketflow/web/vendor.sh"
  for f in "${files[@]}"; do
    echo "$(sha256sum "$work/package/$f" | cut -d' ' -f1)  $(basename "$f")"
  done
} > "$work/VERSION"

if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "${files[@]}" VERSION; do
    src="$work/package/$f"; [ "$f" = VERSION ] && src="$work/VERSION"
    cmp -s "$src" "$dest/$(basename "$f")" || { echo "differs: $(basename "$f")"; status=1; }
  done
  [ $status = 0 ] && echo "static/vendor/uplot matches uplot ${UPLOT_VERSION}"
  exit $status
fi

mkdir -p "$dest"
for f in "${files[@]}"; do cp "$work/package/$f" "$dest/"; done
cp "$work/VERSION" "$dest/VERSION"
echo "vendored uplot ${UPLOT_VERSION} into ${dest#"$PWD"/}"
