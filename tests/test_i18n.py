"""Translations, locale negotiation, page rendering and CSP hygiene of templates/static files."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from service.i18n import (
    DEFAULT_LOCALE,
    SUPPORTED_LOCALES,
    PageRenderer,
    catalogue_path,
    parse_accept_language,
)

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "service"
TEMPLATES = SERVICE / "templates"
STATIC = SERVICE / "static"
LOCALE_DIR = SERVICE / "locale"
TEMPLATE_NAMES = ("login.html", "worklist.html", "upload.html", "error.html")
ROLES = ("radiographer", "clinician", "requester", "specialist", "manager", "admin")
PAGE_SCRIPTS = {
    "login.html": ("login.js",),
    "worklist.html": ("worklist.js", "saved_filters.js", "reassign.js", "countdown.js"),
    "upload.html": ("upload.js",),
    "roster.html": ("roster.js",),
}

PLACEHOLDER_BRACE = re.compile(r"\{(\w+)\}")
PLACEHOLDER_PERCENT = re.compile(r"%\((\w+)\)[sd]")


def make_user(role: str = "specialist", **overrides: str) -> dict[str, str]:
    user = {
        "username": "wang.fang",
        "role": role,
        "facility_name": "Regional Imaging Centre",
        "facility_timezone": "Asia/Shanghai",
    }
    user.update(overrides)
    return user


def page_context(template: str, role: str = "specialist") -> dict[str, object]:
    """The context the handlers pass for each template (see the templates' headers)."""
    if template == "login.html":
        return {"user": None, "csrf_token": "", "page": "login", "next": "/worklist", "error": None}
    context: dict[str, object] = {
        "user": make_user(role),
        "csrf_token": "tok-123",
        "page": template.removesuffix(".html"),
    }
    if template == "error.html":
        context.update(status=404, message="")
    return context


@pytest.fixture(scope="module")
def renderer() -> PageRenderer:
    return PageRenderer(TEMPLATES, LOCALE_DIR)


@pytest.fixture(scope="module")
def zh_catalog():
    with open(catalogue_path(LOCALE_DIR, "zh_CN"), "rb") as fh:
        return read_po(fh, locale="zh_CN")


def extracted(prefix: str) -> list[tuple[str, int, str | tuple[str, ...]]]:
    """Messages that babel extracts with babel.cfg, from files whose path starts with prefix."""
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh, "babel.cfg")
    service_dir = str(SERVICE)
    results = extract_from_dir(
        str(ROOT),
        method_map,
        options_map,
        # Only walk service/ (not var/, .venv/ or data directories).
        directory_filter=lambda path: path == service_dir or path.startswith(service_dir + "/"),
    )
    return [
        (filename, lineno, message)
        for filename, lineno, message, _comments, _context in results
        if filename.startswith(prefix)
    ]


def translation_problems(catalog, messages) -> list[str]:
    problems = []
    for filename, lineno, message in messages:
        where = f"{filename}:{lineno}"
        msgid = message[0] if isinstance(message, tuple) else message
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(f"{where}: {message!r} is not in the zh_CN catalogue")
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(s and s.strip() for s in strings):
            problems.append(f"{where}: {message!r} is untranslated or fuzzy")
            continue
        ids = message if isinstance(message, tuple) else (message,)
        for pattern in (PLACEHOLDER_BRACE, PLACEHOLDER_PERCENT):
            wanted = set(pattern.findall(ids[-1]))
            for s in strings:
                if set(pattern.findall(s)) != wanted:
                    problems.append(f"{where}: placeholders differ in {s!r} for {message!r}")
        for s in (*ids, *strings):
            if "%" in PLACEHOLDER_PERCENT.sub("", s):
                problems.append(f"{where}: stray '%' in {s!r} (breaks newstyle gettext)")
    return problems


# ---- (1) every extracted msgid is translated ------------------------------------------


def test_template_messages_are_all_translated(zh_catalog) -> None:
    messages = extracted("service/templates/")
    assert len(messages) > 50, "extraction found suspiciously few template strings"
    assert translation_problems(zh_catalog, messages) == []


def test_python_messages_are_all_translated(zh_catalog) -> None:
    """Server-side strings marked with _() anywhere under service/ need a translation too."""
    assert translation_problems(zh_catalog, extracted("service/")) == []


def test_catalogue_is_consistent(zh_catalog) -> None:
    assert zh_catalog.plural_forms == "nplurals=1; plural=0;"
    assert not zh_catalog.fuzzy
    assert [(m.id, errors) for m, errors in zh_catalog.check()] == []
    assert not list(LOCALE_DIR.rglob("*.mo")), "catalogues are compiled in memory; no .mo files"


def test_gettext_for_server_side_strings(renderer) -> None:
    assert renderer.gettext("zh_CN")("Worklist") == "工作列表"
    assert renderer.gettext("en")("Worklist") == "Worklist"
    assert renderer.gettext("zh_CN")("not in the catalogue") == "not in the catalogue"
    with pytest.raises(ValueError):
        renderer.gettext("fr")


# ---- (2) negotiation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("zh-CN,zh;q=0.9", "zh_CN"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh-Hans", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh-SG", "zh_CN"),
        ("zh_CN", "zh_CN"),
        ("en-US", "en"),
        ("en-GB,en;q=0.9", "en"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("en;q=0.5,zh-CN;q=0.9", "zh_CN"),
        ("fr-FR,fr;q=0.9,zh;q=0.5", "zh_CN"),
        ("fr-FR,de;q=0.9", DEFAULT_LOCALE),
        ("zh;q=0,en;q=0.1", "en"),
        ("*", DEFAULT_LOCALE),
        (None, DEFAULT_LOCALE),
        ("", DEFAULT_LOCALE),
        ("garbage", DEFAULT_LOCALE),
        ("%%%;;;q=abc,,,", DEFAULT_LOCALE),
        ("zh;q=banana", DEFAULT_LOCALE),
    ],
)
def test_negotiate_accept_language(renderer, accept_language, expected) -> None:
    assert renderer.negotiate(accept_language) == expected


@pytest.mark.parametrize(
    ("accept_language", "preferred", "expected"),
    [
        ("zh-CN,zh;q=0.9", "en", "en"),
        ("en-US", "zh_CN", "zh_CN"),
        (None, "zh_CN", "zh_CN"),
        ("en-US", "zh-CN", "zh_CN"),
        ("zh-CN", "fr", "zh_CN"),
        ("en-US", "", "en"),
        ("zh-CN", None, "zh_CN"),
        (None, "garbage", DEFAULT_LOCALE),
    ],
)
def test_negotiate_preferred_wins_when_supported(
    renderer, accept_language, preferred, expected
) -> None:
    assert renderer.negotiate(accept_language, preferred) == expected


def test_parse_accept_language_orders_by_quality() -> None:
    assert parse_accept_language("en;q=0.3, zh-CN, fr;q=0.8") == ["zh-CN", "fr", "en"]
    assert len(parse_accept_language(",".join(["en"] * 1000))) <= 32


# ---- (3) rendering --------------------------------------------------------------------


def test_login_page_in_chinese(renderer) -> None:
    html = renderer.render("login.html", "zh_CN", **page_context("login.html"))
    assert '<html lang="zh-CN">' in html
    assert "登录" in html
    assert "用户名" in html and "密码" in html
    assert 'data-locale="zh-CN"' in html
    assert 'id="login-form"' in html and 'data-next="/worklist"' in html
    assert 'id="login-error"' in html and 'role="alert"' in html


def test_login_page_in_english(renderer) -> None:
    html = renderer.render("login.html", "en", **page_context("login.html"))
    assert '<html lang="en">' in html
    assert "Log in" in html
    assert "登录" not in html
    assert '<meta name="csrf-token" content="">' in html


def test_login_next_and_error(renderer) -> None:
    html = renderer.render(
        "login.html", "en", next='/worklist?status=ready&x="y"', error="Session expired"
    )
    assert 'data-next="/worklist?status=ready&amp;x=&#34;y&#34;"' in html
    assert "Session expired" in html
    # Without next/error (and without user/csrf_token) the defaults apply.
    assert 'data-next="/worklist"' in renderer.render("login.html", "en")


def test_status_and_priority_labels_in_json_block(renderer) -> None:
    html = renderer.render("worklist.html", "zh_CN", **page_context("worklist.html"))
    strings = json.loads(json_block(html))
    assert strings["priority"] == {"stat": "急诊", "urgent": "加急", "routine": "常规"}
    assert strings["status"] == {
        "awaiting_images": "待上传影像",
        "awaiting_request": "待补充申请",
        "ready": "待阅片",
        "awaiting_review": "待审核",
        "signed": "已签发",
        "closed": "已结束",
        "cancelled": "已取消",
    }
    assert strings["plurals"]["consultations"] == {"one": "共 {n} 例会诊", "other": "共 {n} 例会诊"}
    english = json.loads(json_block(renderer.render("worklist.html", "en", user=make_user())))
    assert english["plurals"]["consultations"]["one"] == "{n} consultation"
    assert english["plurals"]["consultations"]["other"] == "{n} consultations"


@pytest.mark.parametrize("role", ROLES)
def test_header_nav_by_role(renderer, role) -> None:
    html = renderer.render("worklist.html", "en", **page_context("worklist.html", role))
    assert ('href="/worklist" aria-current="page"' in html) == (role != "admin")
    assert ('href="/upload"' in html) == (role in ("radiographer", "requester"))
    assert 'id="logout-button"' in html
    assert 'href="?lang=en"' in html and 'href="?lang=zh_CN"' in html
    assert 'data-timezone="Asia/Shanghai"' in html
    assert '<meta name="csrf-token" content="tok-123">' in html
    assert "wang.fang" in html and "Regional Imaging Centre" in html


def test_display_name_shown_when_present(renderer) -> None:
    html = renderer.render("worklist.html", "zh_CN", user=make_user(display_name="王芳"))
    assert '<span class="user-name" title="wang.fang">王芳</span>' in html
    html = renderer.render("worklist.html", "zh_CN", user=make_user(display_name=""))
    assert '<span class="user-name" title="wang.fang">wang.fang</span>' in html


def test_worklist_and_upload_hooks(renderer) -> None:
    worklist = renderer.render("worklist.html", "zh_CN", **page_context("worklist.html"))
    for hook in (
        'id="worklist"',
        "<tbody>",
        'id="filter-status"',
        'id="filter-priority"',
        'id="filter-modality"',
        'id="worklist-counts"',
        'id="load-more"',
        'id="worklist-empty"',
        "时间按 Asia/Shanghai 时区显示",
    ):
        assert hook in worklist
    upload = renderer.render("upload.html", "en", **page_context("upload.html", "radiographer"))
    for hook in (
        'id="dropzone"',
        'id="file-input"',
        "multiple",
        'id="upload-list"',
        'id="request-form"',
        'id="request-priority"',
        '<option value="routine" selected>',
        'name="clinical_history"',
        'name="clinical_question"',
    ):
        assert hook in upload


def test_error_page(renderer) -> None:
    html = renderer.render(
        "error.html", "zh_CN", user=None, status=403, message="您没有查看此页面的权限。"
    )
    assert "无权访问" in html and "错误 403" in html and "您没有查看此页面的权限。" in html
    assert 'href="/login"' in html
    html = renderer.render("error.html", "en", user=make_user(), status=599, message="")
    assert "Something went wrong" in html and 'href="/worklist"' in html


def test_unsupported_locale_is_an_error(renderer) -> None:
    with pytest.raises(ValueError):
        renderer.render("login.html", "fr")


# ---- (4) CSP: no inline code, handlers or styles --------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._script_text = dict(attrs), []

    def handle_data(self, data):
        if self._script is not None:
            self._script_text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None


def csp_problems(html: str) -> list[str]:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    problems = []
    for attrs, text in parser.scripts:
        if attrs.get("type") == "application/json":
            continue
        if not (attrs.get("src") or "").startswith("/static/") or text.strip():
            problems.append(f"inline or foreign script: {attrs} {text[:60]!r}")
    for tag, attrs in parser.tags:
        if tag == "style":
            problems.append("<style> element")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag} {name}=...> event handler attribute")
            if name == "style":
                problems.append(f"<{tag} style=...> attribute")
            if name in ("href", "src", "action") and value:
                if value.strip().lower().startswith("javascript:"):
                    problems.append(f"<{tag} {name}={value!r}>")
                if re.match(r"^(https?:)?//", value.strip()):
                    problems.append(f"<{tag} {name}={value!r}> loads from another origin")
    return problems


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_rendered_pages_are_csp_clean(renderer, template, locale) -> None:
    for role in ROLES:
        html = renderer.render(template, locale, **page_context(template, role))
        assert csp_problems(html) == []
        assert html.count('id="i18n-strings"') == 1


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_template_sources_are_csp_clean(path) -> None:
    source = path.read_text(encoding="utf-8")
    for match in re.finditer(r"<script\b([^>]*)>", source, re.IGNORECASE):
        attrs = match.group(1)
        assert re.search(r'\bsrc="/static/(?:[\w-]+/)?[\w.-]+\.js"', attrs) or re.search(
            r'\btype="application/json"', attrs
        ), f"inline script in {path.name}: {match.group(0)}"
    assert not re.search(r"\son[a-z]+\s*=", source, re.IGNORECASE), f"on*= handler in {path.name}"
    assert not re.search(r"\sstyle\s*=", source, re.IGNORECASE), f"style= in {path.name}"
    assert not re.search(r"<style\b", source, re.IGNORECASE), f"<style> in {path.name}"


@pytest.mark.parametrize("path", sorted(STATIC.glob("*.*")), ids=lambda p: p.name)
def test_static_files_are_self_contained_and_safe(path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", source), f"{path.name} refers to another origin"
    if path.suffix == ".css":
        assert "@import" not in source and "url(" not in source, "CSS must not load anything"
    if path.suffix == ".js":
        for unsafe in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            'setAttribute("style"',
        ):
            assert unsafe not in source, f"{path.name} uses {unsafe}"


def message_keys(source: str) -> set[str]:
    """The message keys a script uses: t("key"), errorText(answer, "fallback_key", {code: "key"}),
    the {code: "key"} maps of a page's `const ERRORS`, and the `{ key: "key", vars }` messages
    a pure module (countdown.js) hands to the page's t()."""
    keys = set(re.findall(r'\bt\(\s*"(\w+)"', source))
    keys |= set(re.findall(r'\{\s*key:\s*"(\w+)"', source))
    keys |= set(re.findall(r'\berrorText\(\s*\w+\s*,\s*"(\w+)"', source))
    for block in re.findall(
        r'(?:\bconst ERRORS =|\berrorText\(\s*\w+\s*,\s*"\w+"\s*,)\s*\{([^}]*)\}', source
    ):
        keys |= set(re.findall(r':\s*"(\w+)"', block))
    return keys


@pytest.mark.parametrize("template", sorted(PAGE_SCRIPTS))
def test_js_message_keys_exist(renderer, template) -> None:
    html = renderer.render(template, "zh_CN", **page_context(template, "radiographer"))
    strings = json.loads(json_block(html))
    page_strings = {**strings["common"], **strings.get("page", {})}
    for script, available in (
        ("common.js", strings["common"]),
        ("bell.js", strings["common"]),
        ("site_header.js", strings["common"]),
        *((name, page_strings) for name in PAGE_SCRIPTS[template]),
    ):
        source = (STATIC / script).read_text(encoding="utf-8")
        missing = message_keys(source) - set(available)
        assert not missing, f"{script} uses keys missing from {template}: {missing}"
        for key in re.findall(r'\bplural\(\s*"(\w+)"', source):
            assert key in strings.get("plurals", {}), f"{script}: plural {key!r} missing"
        for table in re.findall(r'\blabel\(\s*"(\w+)"', source):
            assert table in strings, f"{script}: label table {table!r} missing"


# ---- (5) the JSON data block cannot break out of its <script> -------------------------


def json_block(html: str) -> str:
    match = re.search(
        r'<script type="application/json" id="i18n-strings">(.*?)</script>', html, re.S
    )
    assert match, "no #i18n-strings block"
    return match.group(1)


def test_json_block_escapes_script_end(tmp_path) -> None:
    hostile = '</script><script>alert("x")</script><!-- & \' \u2028'
    with open(catalogue_path(LOCALE_DIR, "zh_CN"), "rb") as fh:
        catalog = read_po(fh, locale="zh_CN")
    catalog.get("Awaiting images").string = hostile
    target = catalogue_path(tmp_path, "zh_CN")
    target.parent.mkdir(parents=True)
    with open(target, "wb") as fh:
        write_po(fh, catalog)
    hostile_renderer = PageRenderer(TEMPLATES, tmp_path)

    html = hostile_renderer.render(
        "worklist.html",
        "zh_CN",
        user=make_user(username="<img src=x onerror=alert(1)>", facility_name='"><script>x'),
        csrf_token='"><script>',
    )
    block = json_block(html)
    assert "<" not in block and ">" not in block
    assert json.loads(block)["status"]["awaiting_images"] == hostile
    # The block ends at its own </script>: the first one after the opening tag.
    start = html.index('id="i18n-strings">') + len('id="i18n-strings">')
    assert html.index("</script>", start) == start + len(block)
    # (Catalogue text elsewhere in the page is trusted like template source: Jinja marks
    # translations safe. Data from users and facilities is always escaped.)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '"><script>x' not in html and "&#34;&gt;&lt;script&gt;x" in html
    assert '<meta name="csrf-token" content="&#34;&gt;&lt;script&gt;">' in html


def test_user_data_is_escaped_everywhere(renderer) -> None:
    user = make_user(
        role="admin",
        username="<script>alert(1)</script>",
        facility_name='"onmouseover="x',
        facility_timezone='"><b>',
    )
    for template in TEMPLATE_NAMES:
        context = {**page_context(template, "admin"), "user": user, "csrf_token": '"x'}
        if template == "error.html":
            context["message"] = "<b>bad</b>"
        html = renderer.render(template, "en", **context)
        assert csp_problems(html) == []
        assert "<script>alert(1)" not in html and "<b>" not in html
