#!/usr/bin/env bash
# Installs the OHIF v3 viewer that teleread serves at /ohif/ (service/viewing/ohif.py): the built
# dist/ of the npm package @ohif/app at a pinned version, fetched with npm, checked against the
# pinned sha512 (the registry's dist.integrity, so a changed tarball is refused), unpacked into
# DEST. Never committed: the viewer is 200 MB of built files. The Makefile pins the version and
# its integrity and runs this once per version (its stamp is DEST/.installed-VERSION).
#
#   scripts/install-ohif.sh 3.13.2 sha512-... build/ohif
# Needs npm (and so node) only: the Dockerfile runs it in a node image.
set -euo pipefail

version=$1
integrity=$2
dest=$3

command -v npm >/dev/null 2>&1 || { echo "install-ohif: npm is needed (make test-system-deps)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "Installing OHIF @ohif/app@$version into $dest"
(cd "$work" && npm pack "@ohif/app@$version" --silent --no-audit --no-fund >/dev/null)
tarball=$(echo "$work"/ohif-app-"$version".tgz)
got=$(node -e 'const crypto = require("crypto"), fs = require("fs");
console.log("sha512-" + crypto.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tarball")
if [ "$got" != "$integrity" ]; then
    echo "install-ohif: @ohif/app@$version has integrity $got, expected $integrity: refused" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work" package/dist
[ -f "$work/package/dist/index.html" ] || { echo "install-ohif: no dist/index.html in the package" >&2; exit 1; }
# Replace the old copy only once the new one is complete.
rm -rf "$dest.new"
mkdir -p "$(dirname "$dest")"
mv "$work/package/dist" "$dest.new"
touch "$dest.new/.installed-$version"
rm -rf "$dest"
mv "$dest.new" "$dest"
