#!/usr/bin/env bash
# Installs what teleread needs from Debian when it is missing: Orthanc with its DICOMweb and
# PostgreSQL index plugins, a CJK font for report PDFs and npm (which fetches the OHIF viewer,
# scripts/install-ohif.sh) (always), and for the test suite Chromium (browser tests), dcmtk (the
# viewer's pixel-exactness reference), Node.js (eslint, JS unit tests), the PostgreSQL server
# (tests/postgres_server.py) and Caddy (the proxy in front of tests/test_failover.py's replicas).
# Idempotent and quiet when all is there.
set -euo pipefail

want_tests=${1:-}
packages=()
command -v Orthanc >/dev/null 2>&1 || packages+=(orthanc)
# The modality worklist plugin ships in Debian's orthanc package.
[ -f /usr/share/orthanc/plugins/libModalityWorklists.so ] || packages+=(orthanc)
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || packages+=(orthanc-dicomweb)
# Orthanc's index in PostgreSQL, shared by several Orthancs (TELEREAD_ORTHANC_INDEX_URL).
[ -f /usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so ] || packages+=(orthanc-postgresql)
# A TrueType CJK font embedded in the signed report PDFs (reportlab cannot embed CFF/OTF fonts).
[ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || packages+=(fonts-wqy-zenhei)
command -v npm >/dev/null 2>&1 || packages+=(npm)  # fetches the OHIF viewer (make ohif)
if [ "$want_tests" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || packages+=(chromium)
    command -v dciodvfy >/dev/null 2>&1 || packages+=(dicom3tools)  # validates the report's DICOM
    command -v dcm2pnm >/dev/null 2>&1 || packages+=(dcmtk)  # viewer exactness tests
    command -v findscu >/dev/null 2>&1 || packages+=(dcmtk)  # worklist and DICOM port tests
    # eslint and node's built-in test runner for the JavaScript (package.json, tests/js).
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    # pdfsig and pdffonts check the signed report PDF as outside tools see it.
    command -v pdfsig >/dev/null 2>&1 || packages+=(poppler-utils)
    # The tests start throwaway PostgreSQL clusters from Debian's server (initdb, postgres).
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || packages+=(postgresql)
    # The proxy in front of three replicas in the failover test (tests/test_failover.py), as
    # compose's scale profile runs it.
    command -v caddy >/dev/null 2>&1 || packages+=(caddy)
fi
if [ ! -x .venv/bin/python ]; then
    # Debian's python3 makes venvs only with python3-venv installed: try it once for real.
    probe=$(mktemp -d)
    python3 -m venv "$probe/v" >/dev/null 2>&1 || packages+=(python3-venv)
    rm -rf "$probe"
fi

[ ${#packages[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install: ${packages[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "Installing Debian packages: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# The Debian package may start a system-wide Orthanc daemon on 8042/4242; teleread runs its own.
if printf '%s\n' "${packages[@]}" | grep -qx orthanc && command -v systemctl >/dev/null 2>&1 \
        && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now orthanc >/dev/null 2>&1 || true
fi
# Likewise Debian's caddy starts a system-wide proxy on port 80; the tests run their own.
if printf '%s\n' "${packages[@]}" | grep -qx caddy && command -v systemctl >/dev/null 2>&1 \
        && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now caddy >/dev/null 2>&1 || true
fi
