"""Translations, locale negotiation and HTML page rendering.

English is the source language: msgids are English and there is no ``en`` catalogue.
Every other locale in :data:`SUPPORTED_LOCALES` has a ``<locale_dir>/<locale>/LC_MESSAGES/
messages.po`` that is read and compiled in memory at start-up, so no binary ``.mo`` file is
ever committed or built.

Server-side strings should be marked with a function called ``_`` so that babel extraction
(``babel.cfg``) and ``tests/test_i18n.py`` see them::

    _ = renderer.gettext(locale)
    message = _("You do not have permission to view this page.")
"""

from __future__ import annotations

import functools
import gettext as _gettext
import os
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import jinja2
from babel.core import parse_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SUPPORTED_LOCALES = ("en", "zh_CN")
DEFAULT_LOCALE = "en"

#: BCP 47 tag of each supported locale, for ``<html lang>`` and ``Intl`` in the browser.
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}

#: Primary language subtag → supported locale. Every Chinese tag (zh, zh-CN, zh-Hans,
#: zh-SG, and also zh-TW/zh-Hant, for lack of a Traditional catalogue) maps to zh_CN.
_LANGUAGE_TO_LOCALE = {"en": "en", "zh": "zh_CN"}

#: Accept-Language headers are client-controlled: look at a bounded number of entries.
_MAX_ACCEPT_LANGUAGE_ENTRIES = 32

CATALOGUE_DOMAIN = "messages"


def catalogue_path(locale_dir: Path, locale: str) -> Path:
    return Path(locale_dir) / locale / "LC_MESSAGES" / f"{CATALOGUE_DOMAIN}.po"


def load_translations(po_path: Path, locale: str) -> _gettext.GNUTranslations:
    """Read a .po file and compile it in memory into a GNUTranslations object."""
    compiled = _compiled_catalogue(str(po_path), os.stat(po_path).st_mtime_ns, locale)
    return _gettext.GNUTranslations(BytesIO(compiled))


@functools.lru_cache(maxsize=16)
def _compiled_catalogue(po_path: str, mtime_ns: int, locale: str) -> bytes:
    """The .mo bytes of a .po file, compiled once per process and file version: compiling
    costs about 60 ms, which every app built by the test suite (hundreds) paid again."""
    with open(po_path, "rb") as fh:
        catalog = read_po(fh, locale=locale, domain=CATALOGUE_DOMAIN)
    buf = BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def match_locale(tag: str | None) -> str | None:
    """Map one language tag ("zh-Hans-CN", "en_US", "zh_CN", ...) to a supported locale."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-")
    if not tag or tag == "*":
        return None
    try:
        language = parse_locale(tag, sep="-")[0]
    except ValueError:
        # e.g. "zh-yue": babel rejects the subtag, but the primary language is still usable.
        language = tag.split("-", 1)[0]
        if not (2 <= len(language) <= 3 and language.isascii() and language.isalpha()):
            return None
    return _LANGUAGE_TO_LOCALE.get(language.lower())


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags of an Accept-Language header, best first (q=0 and malformed dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:_MAX_ACCEPT_LANGUAGE_ENTRIES]):
        tag, _sep, params = part.partition(";")
        tag = tag.strip()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if not 0.0 < quality <= 1.0:
            continue
        weighted.append((-quality, index, tag))
    weighted.sort()
    return [tag for _q, _i, tag in weighted]


@functools.cache
def shared_renderer(templates_dir: Path, locale_dir: Path) -> PageRenderer:
    """One renderer per process for these directories: a renderer never changes once made, and
    each one parses the catalogues and compiles every template it renders again (~15 ms a
    template), which every app built in the same process (the test suite builds hundreds in
    each worker) would otherwise pay once more."""
    return PageRenderer(templates_dir, locale_dir)


class PageRenderer:
    """Jinja2 environments (one per locale) sharing one template directory."""

    def __init__(self, templates_dir: Path, locale_dir: Path) -> None:
        self.templates_dir = Path(templates_dir)
        self.locale_dir = Path(locale_dir)
        self._translations: dict[str, _gettext.NullTranslations] = {}
        for locale in SUPPORTED_LOCALES:
            if locale == DEFAULT_LOCALE:
                self._translations[locale] = _gettext.NullTranslations()
            else:
                self._translations[locale] = load_translations(
                    catalogue_path(self.locale_dir, locale), locale
                )
        loader = jinja2.FileSystemLoader(str(self.templates_dir))
        self._environments = {
            locale: self._make_environment(loader, translations)
            for locale, translations in self._translations.items()
        }

    @staticmethod
    def _make_environment(
        loader: jinja2.BaseLoader, translations: _gettext.NullTranslations
    ) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=loader,
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # Must match the `trimmed` option of the jinja2 extractor in babel.cfg.
        env.policies["ext.i18n.trimmed"] = True
        env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
        env.globals["html_lang"] = HTML_LANG
        return env

    def _check(self, locale: str) -> str:
        if locale not in self._environments:
            raise ValueError(f"unsupported locale {locale!r}; expected one of {SUPPORTED_LOCALES}")
        return locale

    def negotiate(self, accept_language: str | None, preferred: str | None = None) -> str:
        """The locale to use for a request.

        ``preferred`` (user setting or the ``teleread_lang`` cookie) wins if it names a
        supported locale; otherwise the best supported match of the Accept-Language header;
        otherwise :data:`DEFAULT_LOCALE`.
        """
        chosen = match_locale(preferred)
        if chosen:
            return chosen
        for tag in parse_accept_language(accept_language):
            chosen = match_locale(tag)
            if chosen:
                return chosen
        return DEFAULT_LOCALE

    def render(self, template: str, locale: str, **context: Any) -> str:
        """Render ``template`` in ``locale``.

        ``locale`` is put in the context; ``user`` (None), ``csrf_token`` (""), ``page``
        (the template's name without ".html") and ``embedded`` (False: the page is not inside
        another, so it has the site header) get defaults when the caller leaves them out.
        """
        env = self._environments[self._check(locale)]
        values: dict[str, Any] = {
            "user": None,
            "csrf_token": "",
            "page": Path(template).stem,
            "embedded": False,
        }
        values.update(context)
        values["locale"] = locale
        return env.get_template(template).render(values)

    def gettext(self, locale: str) -> Callable[[str], str]:
        """gettext for server-side strings (mark them with a function named ``_``)."""
        return self._translations[self._check(locale)].gettext

    def ngettext(self, locale: str) -> Callable[[str, str, int], str]:
        return self._translations[self._check(locale)].ngettext
