#!/usr/bin/env bash
# Refreshes the embedded htmx files from the npm registry and checks them against the pinned SHA-256
# sums in SHA256SUMS. The files are copied unmodified, each with its license beside it.
#
#   assets/refresh.sh            fetch the pinned versions and verify them
#   assets/refresh.sh --check    verify only the files already here (no network)
#
# To move to a new version: change the version below, run with --update-sums, read the diff of
# SHA256SUMS and the files, and commit them together.
set -euo pipefail

HTMX_VERSION=2.0.11
SSE_VERSION=2.2.4

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

(cd "$work" && npm pack --silent "htmx.org@$HTMX_VERSION" "htmx-ext-sse@$SSE_VERSION" >/dev/null)
mkdir "$work/htmx" "$work/sse"
tar -xzf "$work/htmx.org-$HTMX_VERSION.tgz" -C "$work/htmx"
tar -xzf "$work/htmx-ext-sse-$SSE_VERSION.tgz" -C "$work/sse"

cp "$work/htmx/package/dist/htmx.min.js" "$work/htmx.min.js"
cp "$work/htmx/package/LICENSE" "$work/htmx.LICENSE"
cp "$work/sse/package/dist/sse.min.js" "$work/sse.min.js"
cp "$work/sse/package/LICENSE" "$work/htmx-ext-sse.LICENSE"

if [ "${1:-}" = --update-sums ]; then
  (cd "$work" && sha256sum htmx.min.js htmx.LICENSE sse.min.js htmx-ext-sse.LICENSE) > SHA256SUMS
  echo "wrote SHA256SUMS for htmx.org@$HTMX_VERSION and htmx-ext-sse@$SSE_VERSION"
fi

# Verify before anything in the repository is replaced.
(cd "$work" && sha256sum --check --strict --quiet "$here/SHA256SUMS")
cp "$work/htmx.min.js" "$work/htmx.LICENSE" "$work/sse.min.js" "$work/htmx-ext-sse.LICENSE" .
echo "htmx.org@$HTMX_VERSION and htmx-ext-sse@$SSE_VERSION are in place and match SHA256SUMS"
