"""The course site: built from the committed notebooks without executing
them, refused for notebooks without outputs, and checked in a real headless
Chromium: every page loads, every image resolves, math renders, and no
internal link is broken. A screenshot of the first chapter is saved (copied
to ``$CALIBKD_ARTIFACTS`` when set; the committed one is
``tests/artifacts/site_chapter01.png``)."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from calibkd.course import editions, site
from calibkd.course.site import SiteError
from calibkd.study.runner import NOTEBOOK_DIR

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).is_file()), None)
NO_BROWSER = "headless Chromium is not installed: `make browser` installs Debian's chromium and chromium-driver (as root)"


def _executed_notebook(path: Path, *, outputs: bool) -> Path:
    cell = nbformat.v4.new_code_cell("# Exercise: print it\n# --- solution ---\nprint(1)")
    cell.metadata["tags"] = ["solution"]
    if outputs:
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 09 · Toy\n\nSee [the next](10_next.ipynb)."), cell])
    nbformat.write(notebook, path)
    return path


def test_site_refuses_notebooks_without_outputs(tmp_path):
    bare = _executed_notebook(tmp_path / "09_toy.ipynb", outputs=False)
    with pytest.raises(SiteError, match="has no outputs.*executes nothing"):
        site.build([bare], tmp_path / "site")
    assert not (tmp_path / "site").exists() and not list(tmp_path.glob(".site.*"))
    assert site.main(["build", str(bare), "--out", str(tmp_path / "site")]) == 1
    with pytest.raises(SiteError, match="does not exist"):
        site.build([tmp_path / "missing.ipynb"], tmp_path / "site")


def test_site_of_toy_notebooks_links_chapters_and_replaces_an_old_build(tmp_path):
    first = _executed_notebook(tmp_path / "09_toy.ipynb", outputs=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 10 · Next")]), tmp_path / "10_next.ipynb")
    out = tmp_path / "site"
    out.mkdir()
    (out / "stale.html").write_text("old")
    with pytest.raises(editions.EditionError):  # chapter 10 has no exercise: no student edition
        site.build([first, tmp_path / "10_next.ipynb"], out)
    assert (out / "stale.html").is_file()  # a failed build leaves the old site alone
    site.build([first], out)
    assert not (out / "stale.html").exists()
    page = (out / "09_toy.html").read_text()
    assert 'href="index.html"' in page and 'href="student/09_toy.ipynb"' in page
    assert "mathjax/MathJax.js?config=" in page and not re.search(r'<script[^>]*src="https?://', page)
    assert (out / "mathjax" / "MathJax.js").is_file() and (out / "student" / "09_toy.ipynb").is_file()
    assert "09 · Toy" in (out / "index.html").read_text()


# ---------------------------------------------------------------------------
# the real site in headless Chromium
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    return site.build(out=tmp_path_factory.mktemp("built") / "site")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CALIBKD_REQUIRE_BROWSER"):  # `make test` as root: CI must run the browser checks
            pytest.fail(NO_BROWSER)
        pytest.skip(NO_BROWSER)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1000,1300",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages(built_site: Path) -> list[str]:
    return ["index.html"] + [p.with_suffix(".html").name for p in editions.numbered_notebooks()]


def _wait(driver, script: str, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _failures(driver) -> list[str]:
    """Severe console messages: a resource that did not load, a script error.
    MathJax 2 probes web-font support with a font at about:blank, which Chromium
    reports; that probe is no failure."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "about:blank" not in e["message"]]


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = response.read()
            return response.status, body.decode("utf-8", "replace") if url.split("#")[0].endswith(".html") else ""
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_every_page_loads_with_its_images_and_math(built_site, server, browser):
    pages = _pages(built_site)
    assert pages[1:] == sorted(pages[1:]), "chapters in order"
    for page in pages:
        browser.get(server + page)
        _wait(browser, "return document.readyState === 'complete'")
        assert "404" not in browser.title
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src.slice(0, 80))")
        assert broken == [], f"{page}: images that did not load: {broken}"
        if page == "index.html":
            links = browser.execute_script("return Array.from(document.querySelectorAll('li.chapter h2 a')).map(a => a.getAttribute('href'))")
            assert links == pages[1:], "the index lists the chapters in order"
            assert _failures(browser) == []
            continue
        assert browser.execute_script("return document.images.length") > 0, f"{page} shows no figure"
        assert browser.execute_script("return document.querySelectorAll('.jp-RenderedHTMLCommon table, table.dataframe').length") > 0 \
            or page.startswith("05"), f"{page} shows no table"
        _wait(browser, "return window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0")
        notebook = nbformat.read(NOTEBOOK_DIR / page.replace(".html", ".ipynb"), as_version=4)
        if any("$" in c.source for c in notebook.cells if c.cell_type == "markdown"):
            assert browser.execute_script("return document.querySelectorAll('.MathJax, .MathJax_Display').length") > 0, \
                f"{page}: MathJax rendered no formula"
        assert not browser.execute_script("return document.querySelectorAll('.MathJax_Error, merror').length")
        assert not re.search(r'<script[^>]*src="https?://', browser.page_source), f"{page} loads a script from the network"
        assert _failures(browser) == [], f"{page}: resources that failed to load, or script errors"


def test_no_internal_link_is_broken(built_site, server, browser):
    checked: dict[str, tuple[int, str]] = {}
    broken = []
    for page in _pages(built_site):
        browser.get(server + page)
        _wait(browser, "return document.readyState === 'complete'")
        hrefs = browser.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
        for href in hrefs:
            if not href.startswith(server):
                continue  # external links are not the site's to keep alive
            target, _, fragment = href.partition("#")
            if target not in checked:
                checked[target] = _fetch(target)
            status, body = checked[target]
            if status != 200:
                broken.append(f"{page} -> {href} (HTTP {status})")
            elif fragment and not any(re.search(rf'(id|name)="{re.escape(f)}"', body)  # as browsers match fragments:
                                      for f in (fragment, urllib.parse.unquote(fragment))):  # as written, then decoded
                broken.append(f"{page} -> {href} (no anchor #{fragment})")
    assert len(checked) >= len(_pages(built_site)), "the pages link to each other"
    assert broken == []


def test_screenshot_of_the_first_chapter(built_site, server, browser, tmp_path):
    from PIL import Image

    browser.get(server + "01_teacher_training.html")
    _wait(browser, "return document.readyState === 'complete'")
    _wait(browser, "return !window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0)")
    shot = tmp_path / "site_chapter01.png"
    assert browser.save_screenshot(str(shot))
    image = Image.open(shot)
    assert image.width >= 800 and image.height >= 800
    colours = image.convert("L").getextrema()
    assert colours[0] < 100 < colours[1], "the screenshot shows text on a light page, not a blank page"
    small = image.convert("RGB").resize((image.width // 2, image.height // 2), Image.LANCZOS).quantize(64)
    target_dir = os.environ.get("CALIBKD_ARTIFACTS")
    if target_dir:
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        small.save(Path(target_dir) / "site_chapter01.png", optimize=True)
