#!/usr/bin/env bash
# Refreshes the embedded htmx files from the npm registry and checks them against the pinned SHA-256
# sums in SHA256SUMS. The files are copied unmodified, each with its license beside it.
#
# Two flavors are embedded side by side:
#   htmx 2: htmx.min.js, sse.min.js (htmx-ext-sse), htmx.LICENSE, htmx-ext-sse.LICENSE
#   htmx 4: htmx4.min.js, hx-sse4.min.js (htmx 4 ships its SSE extension in its own package), and
#           htmx4.LICENSE
#
#   assets/refresh.sh            fetch the pinned versions and verify them
#   assets/refresh.sh --check    verify only the files already here (no network)
#
# To move to a new version: change the version below, run with --update-sums, read the diff of
# SHA256SUMS and the files, and commit them together.
set -euo pipefail

HTMX_VERSION=2.0.11
SSE_VERSION=2.2.4
HTMX4_VERSION=4.0.1

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

case "${1:-}" in
  --check)
    sha256sum --check --strict SHA256SUMS
    exit 0
    ;;
  --update-sums | "") ;;
  *)
    echo "usage: $0 [--check | --update-sums]" >&2
    exit 2
    ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "htmx.org@$HTMX_VERSION" "htmx-ext-sse@$SSE_VERSION" \
  "htmx.org@$HTMX4_VERSION" >/dev/null)
mkdir "$work/htmx" "$work/sse" "$work/htmx4"
tar -xzf "$work/htmx.org-$HTMX_VERSION.tgz" -C "$work/htmx"
tar -xzf "$work/htmx-ext-sse-$SSE_VERSION.tgz" -C "$work/sse"
tar -xzf "$work/htmx.org-$HTMX4_VERSION.tgz" -C "$work/htmx4"

cp "$work/htmx/package/dist/htmx.min.js" "$work/htmx.min.js"
cp "$work/htmx/package/LICENSE" "$work/htmx.LICENSE"
cp "$work/sse/package/dist/sse.min.js" "$work/sse.min.js"
cp "$work/sse/package/LICENSE" "$work/htmx-ext-sse.LICENSE"
cp "$work/htmx4/package/dist/htmx.min.js" "$work/htmx4.min.js"
cp "$work/htmx4/package/dist/ext/hx-sse.min.js" "$work/hx-sse4.min.js"
cp "$work/htmx4/package/LICENSE" "$work/htmx4.LICENSE"

files=(htmx.min.js htmx.LICENSE sse.min.js htmx-ext-sse.LICENSE htmx4.min.js hx-sse4.min.js htmx4.LICENSE)
versions="htmx.org@$HTMX_VERSION, htmx-ext-sse@$SSE_VERSION and htmx.org@$HTMX4_VERSION"

if [ "${1:-}" = --update-sums ]; then
  (cd "$work" && sha256sum "${files[@]}") > SHA256SUMS
  echo "wrote SHA256SUMS for $versions"
fi

# Verify before anything in the repository is replaced.
(cd "$work" && sha256sum --check --strict --quiet "$here/SHA256SUMS")
(cd "$work" && cp "${files[@]}" "$here")
echo "$versions are in place and match SHA256SUMS"
