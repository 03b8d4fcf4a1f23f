#!/usr/bin/env bash
# Vendors the NHS design system (npm `nhsuk-frontend`, MIT) into
# crates/wardline-nhsuk/assets/nhsuk: the compiled stylesheet, the script
# module and the icons the stylesheet uses. The server embeds these files at
# build time and serves them itself, so nothing is fetched at run time.
#
# Changes made to the upstream files (and only these):
#   * the @font-face rules that load Frutiger from assets.nhs.uk are removed
#     (no run-time downloads; the design system's own fallback is Arial);
#   * url(/assets/images/…) becomes url(images/…) (relative to the stylesheet).
#
# Re-run after changing VERSION/INTEGRITY; commit the result.
set -euo pipefail
VERSION=10.6.1
INTEGRITY="sha512-PZorqQZjZx/A26yJoskCL9z0ib6AtkAyF0o4K/RHr8zRrJyXrUOCnMbjy0VNXsGO4tfTNMwqlkwATKs4a0xayw=="
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/crates/wardline-nhsuk/assets/nhsuk"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "nhsuk-frontend@$VERSION" >/dev/null)
TGZ="$TMP/nhsuk-frontend-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TGZ" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
    echo "vendor-nhsuk: integrity mismatch for nhsuk-frontend@$VERSION: $GOT" >&2
    exit 1
fi
tar -xzf "$TGZ" -C "$TMP"
DIST="$TMP/package/dist/nhsuk"
rm -rf "$OUT"
mkdir -p "$OUT/images"
sed -e 's#@font-face{[^}]*assets\.nhs\.uk[^}]*}##g' \
    -e 's#url(/assets/images/#url(images/#g' \
    "$DIST/nhsuk-frontend.min.css" > "$OUT/nhsuk-frontend.min.css"
sed -e 's#//\# sourceMappingURL=.*$##' "$DIST/nhsuk-frontend.min.js" > "$OUT/nhsuk-frontend.min.js"
for f in $(grep -o 'url(images/[^)]*)' "$OUT/nhsuk-frontend.min.css" | sed 's#url(images/##; s#)##' | sort -u) \
    favicon.ico favicon.svg; do
    cp "$DIST/assets/images/$f" "$OUT/images/$f"
done
cat > "$OUT/README.md" <<NOTE
# nhsuk-frontend $VERSION (vendored)

From the npm registry package \`nhsuk-frontend@$VERSION\` ($INTEGRITY),
by NHS England, MIT licence (see the package's package.json; the licence text
is at https://github.com/nhsuk/nhsuk-frontend/blob/main/LICENSE).
Written by \`scripts/vendor-nhsuk.sh\`; do not edit by hand. The script's
header lists the two changes made to the upstream files.
NOTE
grep -q 'assets.nhs.uk' "$OUT/nhsuk-frontend.min.css" && { echo "vendor-nhsuk: external font URLs remain" >&2; exit 1; }
ls -la "$OUT" "$OUT/images"
