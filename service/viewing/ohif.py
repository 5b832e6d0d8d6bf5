"""The OHIF v3 viewer, served from teleread's own origin under ``/ohif/``.

The files are the built ``dist/`` of the npm package ``@ohif/app`` (``make ohif``,
scripts/install-ohif.sh), left as the package has them. That build assumes it is served at the
root of its site: index.html names its files ``/app.bundle….js``, webpack's runtime loads chunks,
workers and WebAssembly from ``__webpack_require__.p = "/"``, the stylesheet loads its font from
``url(/…)``. Serving it under a prefix would otherwise mean putting 250 files at the root of
teleread's site, next to its own pages. So the few files that name the root are rewritten as they
are served (``OhifFiles.read``) and the rewritten bytes kept (about 18 MB, the main bundle).

index.html also loses its two inline scripts (``window.PUBLIC_URL`` and the dynamic-import helper
move into the generated app-config.js: teleread's Content-Security-Policy allows no inline script)
and its service-worker registration: a service worker would keep fetched studies offline in the
browser, and nothing of a patient may stay behind on a shared reading-room computer.

The configuration (``app_config``) replaces the package's app-config.js: one DICOMweb data
source, teleread's own ``/dicom-web`` on the page's origin, so the browser's session cookie goes
with every request and the user's scope applies; no token is pasted anywhere.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "/ohif/"
"""Where the viewer is served; OHIF's router base name is the same without the trailing slash."""

PUBLIC_PATH = b'__webpack_require__.p = "/"'
_INLINE_SCRIPT = re.compile(rb"<script>[^<]*</script>")
_SERVICE_WORKER = re.compile(rb'<script[^>]*src="/init-service-worker\.js"[^>]*></script>')
_ROOT_ATTRIBUTE = re.compile(rb'(href|src|content)="/(?!/)')
_ROOT_URL = re.compile(rb"url\(/(?!/)")


COMPRESSIBLE = (".js", ".css", ".html", ".json", ".wasm", ".map", ".svg")
GZIP_LEVEL = 6  # once per file and process: 0.4 s for the 17 MB main bundle, to 3.4 MB
LARGEST_COMPRESSED = 64 << 20


class OhifNotInstalled(Exception):
    """The viewer's files are not where the settings say (run ``make ohif``)."""


@dataclass
class OhifFiles:
    """The installed viewer's files, as served under :data:`PREFIX`."""

    root: Path
    _rewritten: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)
    _gzipped: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def installed(self) -> bool:
        return (self.root / "index.html").is_file()

    def path(self, relative: str) -> Path | None:
        """The file a request names, or None if there is none (or it is outside the root)."""
        if not relative or relative.startswith("/") or "\\" in relative:
            return None
        candidate = (self.root / relative).resolve()
        root = self.root.resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def read(self, relative: str) -> bytes | None:
        """The file rewritten for the prefix, or None when it is served as it is.

        Blocking (reads the file the first time): call it on a thread.
        """
        path = self.path(relative)
        if path is None:
            raise OhifNotInstalled(relative)
        if not relative.endswith((".html", ".js", ".css")):
            return None
        stamp = path.stat().st_mtime_ns
        with self._lock:
            known = self._rewritten.get(relative)
        if known is not None and known[0] == stamp:
            return known[1]
        rewritten = rewrite(relative, path.read_bytes())
        with self._lock:
            self._rewritten[relative] = (stamp, rewritten)
        return rewritten

    def gzipped(self, relative: str) -> bytes | None:
        """The file as served (rewritten or not), gzipped once and kept; None for a kind that
        does not compress (images, fonts) or a file too large to hold.

        OHIF is 39 MB of JavaScript, most of it fetched on the first visit; a township clinic's
        link is slow, and gzip makes the main bundle a fifth. Blocking: call it on a thread.
        """
        path = self.path(relative)
        if path is None:
            raise OhifNotInstalled(relative)
        stat = path.stat()
        if not relative.endswith(COMPRESSIBLE) or stat.st_size > LARGEST_COMPRESSED:
            return None
        with self._lock:
            known = self._gzipped.get(relative)
        if known is not None and known[0] == stat.st_mtime_ns:
            return known[1]
        content = self.read(relative)
        if content is None:
            content = path.read_bytes()
        compressed = gzip.compress(content, GZIP_LEVEL, mtime=0)
        with self._lock:
            self._gzipped[relative] = (stat.st_mtime_ns, compressed)
        return compressed


def rewrite(relative: str, content: bytes) -> bytes | None:
    """``content`` with its references to the site's root moved under :data:`PREFIX`, or None
    if it has none."""
    prefix = PREFIX.encode()
    if relative == "index.html":
        content = _SERVICE_WORKER.sub(b"", content)
        content = _INLINE_SCRIPT.sub(b"", content)
        return _ROOT_ATTRIBUTE.sub(rb'\1="' + prefix, content)
    if relative.endswith(".js") and PUBLIC_PATH in content:
        return content.replace(PUBLIC_PATH, b'__webpack_require__.p = "' + prefix + b'"')
    if relative.endswith(".css") and _ROOT_URL.search(content):
        return _ROOT_URL.sub(b"url(" + prefix, content)
    return None


DICOMWEB_ROOT = "/dicom-web"
WADO_URI_ROOT = "/wado"


def app_config() -> str:
    """OHIF's app-config.js: teleread's DICOMweb as the only data source, on the page's origin
    (QIDO-RS and WADO-RS under ``/dicom-web``, WADO-URI at ``/wado``).

    The roots are absolute (OHIF resolves BulkDataURIs against them) and built in the browser
    from ``location.origin``, so they are right behind any proxy without a setting.
    """
    config: dict[str, Any] = {
        "name": "teleread",
        "routerBasename": PREFIX.rstrip("/"),
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        # Same origin: nothing to warn about.
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "teleread",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "teleread",
                "configuration": {
                    "friendlyName": "teleread",
                    "name": "teleread",
                    "qidoSupportsIncludeField": True,
                    "supportsFuzzyMatching": True,
                    "supportsWildcard": True,
                    "supportsReject": False,
                    "dicomUploadEnabled": False,
                    "staticWado": False,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
                },
            }
        ],
    }
    return (
        "// Generated by teleread (service/viewing/ohif.py); the package's own file is not used.\n"
        f"window.PUBLIC_URL = {json.dumps(PREFIX)};\n"
        "function browserImportFunction(n) { return import(n); }\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        "(function () {\n"
        f"  const root = window.location.origin + {json.dumps(DICOMWEB_ROOT)};\n"
        f"  const wado = window.location.origin + {json.dumps(WADO_URI_ROOT)};\n"
        "  for (const source of window.config.dataSources) {\n"
        "    Object.assign(source.configuration,"
        " { qidoRoot: root, wadoRoot: root, wadoUriRoot: wado });\n"
        "  }\n"
        "})();\n"
    )
