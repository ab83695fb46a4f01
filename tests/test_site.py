"""The course sites (Sphinx + myst-nb + sphinx-book-theme): built from the
committed notebooks without executing them, refused for notebooks without
outputs, no solution text on the student site, and both sites checked in a
real headless Chromium: every page loads every resource from the site itself
(nothing from the network), images have pixels, formulas are typeset, the
sidebar, the page contents and the download button are there, prose lines
are of a readable length, internal links resolve and search answers offline.
Screenshots of both sites are saved (copied to ``$CALIBKD_ARTIFACTS`` when
set; the committed ones are ``tests/artifacts/site_*.png``)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import statistics
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("sphinx", reason="the course extra is not installed (make setup)")

from calibkd.course import editions, site  # noqa: E402
from calibkd.course.site import SiteError  # noqa: E402

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).is_file()), None)
NO_BROWSER = "headless Chromium is not installed: `make browser` installs Debian's chromium and chromium-driver (as root)"
CHAPTERS = editions.numbered_notebooks()


def _executed_notebook(path: Path, *, outputs: bool) -> Path:
    cell = nbformat.v4.new_code_cell("# Exercise: print it\n### BEGIN SOLUTION\nprint(1)  # the toy's secret\n### END SOLUTION")
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": "ex", "locked": False, "schema_version": 3, "solution": True}
    setup = nbformat.v4.new_code_cell("x = 1  # set-up", metadata={"tags": ["parameters"]})
    if outputs:
        cell.execution_count, setup.execution_count = 2, 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 09 · Toy\n\nWith $x^2$."), setup, cell],
                                        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                                                  "language_info": {"name": "python"}})
    nbformat.write(notebook, path)
    return path


def test_site_refuses_notebooks_without_outputs(tmp_path):
    bare = _executed_notebook(tmp_path / "09_toy.ipynb", outputs=False)
    with pytest.raises(SiteError, match="has no outputs.*executes nothing"):
        site.build([bare], tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert site.main(["build", str(bare), "--out", str(tmp_path / "site")]) == 1
    with pytest.raises(SiteError, match="does not exist"):
        site.build([tmp_path / "missing.ipynb"], tmp_path / "site")


def test_setup_cells_are_collapsed_on_a_copy():
    notebook = nbformat.read(CHAPTERS[0], as_version=4)
    hidden = site.hide_setup(notebook)
    code = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    parameters = next(i for i in code if "parameters" in notebook.cells[i].metadata.get("tags", []))
    assert all(site.HIDE_CELL in hidden.cells[i].metadata.tags for i in code if i <= parameters)
    after = next(i for i in code if i > parameters)
    assert site.HIDE_INPUT in hidden.cells[after].metadata.tags
    assert not any(site.HIDE_CELL in c.metadata.get("tags", []) or site.HIDE_INPUT in c.metadata.get("tags", [])
                   for c in notebook.cells), "the source is untouched"


def test_toy_site_replaces_an_old_build_and_keeps_the_secret_off_the_student_site(tmp_path):
    first = _executed_notebook(tmp_path / "09_toy.ipynb", outputs=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 10 · Next")],
                                            metadata={"language_info": {"name": "python"}}), tmp_path / "10_next.ipynb")
    out = tmp_path / "site"
    (out / "student").mkdir(parents=True)
    (out / "student" / "stale.html").write_text("old")
    with pytest.raises(editions.EditionError):  # chapter 10 has no exercise: no student edition
        site.build([first, tmp_path / "10_next.ipynb"], out)
    assert (out / "student" / "stale.html").is_file()  # a failed build leaves the old site alone
    built = site.build([first], out)
    assert not (out / "student" / "stale.html").exists() and not list(tmp_path.glob("site/.*"))
    student, instructor = (built[e] / "09_toy.html" for e in ("student", "instructor"))
    assert "the toy&#39;s secret" not in student.read_text() and "YOUR CODE HERE" in student.read_text()
    assert "secret" in instructor.read_text()
    for page in (student, instructor):
        text = page.read_text()
        assert "_static/mathjax/MathJax.js?config=" in text and not re.search(r'<(script|link)[^>]*(src|href)="https?://', text)
    assert (built["student"] / "_static" / "mathjax" / "MathJax.js").is_file()
    assert (built["student"] / "_sources" / "09_toy.ipynb").is_file()


# ---------------------------------------------------------------------------
# the real sites
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_sites(tmp_path_factory):
    return site.build(out=tmp_path_factory.mktemp("built") / "site")


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[A-Za-z0-9]+", text)) + " "


def _page_text(path: Path) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(), "html.parser")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return soup.get_text(" ")


def _leaks(site_dir: Path) -> dict[str, list[str]]:
    """Solution lines (``editions.solution_text``: answers, worked answers, the
    outputs of answers and checks) found anywhere in a site: in the pages'
    text (compared word by word, as markdown and highlighting change the
    characters around the words) and in the notebooks it offers."""
    found: dict[str, list[str]] = {}
    for chapter in CHAPTERS:
        secret = editions.solution_text(nbformat.read(chapter, as_version=4), chapter.stem)
        words = [w for w in (_words(line) for line in secret) if len(w.split()) >= 4]
        page = _words(_page_text(site_dir / f"{chapter.stem}.html"))
        notebook = (site_dir / "_sources" / chapter.name).read_text()
        hits = [w.strip() for w in words if w in page] + [line for line in secret if line in notebook or json.dumps(line)[1:-1] in notebook]
        if hits:
            found[chapter.stem] = hits
    return found


def test_no_solution_text_reaches_the_student_site(built_sites):
    student = _leaks(built_sites["student"])
    assert student == {}, f"solution text on the student site: {student}"
    instructor = _leaks(built_sites["instructor"])
    assert sorted(instructor) == [c.stem for c in CHAPTERS], "the same check finds the answers on the instructor site"
    every_file = "\n".join(p.read_text(errors="replace") for p in built_sites["student"].rglob("*")
                           if p.is_file() and p.suffix in (".html", ".js", ".ipynb", ".md", ".txt") and "mathjax" not in p.parts)
    assert "BEGIN SOLUTION" not in every_file and "YOUR CODE HERE" in every_file


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers(built_sites):
    """Both sites over http://127.0.0.1, one server each."""
    urls, stops = {}, []
    for edition, root in built_sites.items():
        handler = functools.partial(_QuietHandler, directory=str(root))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        urls[edition] = f"http://127.0.0.1:{httpd.server_address[1]}/"
        stops.append(httpd)
    yield urls
    for httpd in stops:
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
                 "--disable-dev-shm-usage", "--window-size=1400,1100",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _pages() -> list[str]:
    return ["index.html"] + [p.with_suffix(".html").name for p in CHAPTERS]


def _wait(driver, script: str, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, "return document.readyState === 'complete'")
    _wait(driver, "return !window.MathJax || !MathJax.Hub || (MathJax.isReady && MathJax.Hub.queue.pending === 0)")


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


@pytest.mark.parametrize("edition", site.EDITIONS)
def test_every_page_loads_offline_with_images_math_sidebar_and_contents(edition, servers, browser):
    server = servers[edition]
    for page in _pages():
        _open(browser, server + page)
        assert "404" not in browser.title and edition in browser.title
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        foreign = [r for r in resources if not (r.startswith(server) or r.startswith("data:") or r.startswith("about:"))]
        assert foreign == [], f"{page} loads from outside the site: {foreign}"
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src.slice(0, 80))")
        assert broken == [], f"{page}: images that did not load: {broken}"
        sidebar = browser.execute_script(
            "return Array.from(document.querySelectorAll('.bd-sidebar-primary a.reference.internal'))"
            ".map(a => a.href.split('#')[0].split('/').pop())")  # the current page's own link is "#"
        assert [h for h in sidebar if h.startswith("0")] == _pages()[1:], f"{page}: the sidebar lists the chapters in order"
        assert _failures(browser) == [], f"{page}: resources that failed to load, or script errors"
        if page == "index.html":
            continue
        assert browser.execute_script("return document.images.length") > 0, f"{page} shows no figure"
        assert browser.execute_script("return document.querySelectorAll('.bd-sidebar-secondary .toc-entry a').length") >= 3, \
            f"{page}: no in-page contents"
        assert browser.execute_script(
            "return !!document.querySelector('.dropdown-download-buttons a[href$=\".ipynb\"]')"), f"{page}: no notebook download"
        notebook = nbformat.read(next(c for c in CHAPTERS if c.stem == page[:-5]), as_version=4)
        if any("$" in c.source for c in notebook.cells if c.cell_type == "markdown"):
            assert browser.execute_script("return document.querySelectorAll('.MathJax, .MathJax_Display').length") > 0, \
                f"{page}: MathJax rendered no formula"
        assert not browser.execute_script("return document.querySelectorAll('.MathJax_Error, merror').length")
        collapsed = browser.execute_script("return document.querySelectorAll('details.hide.above-input, .tag_hide-cell').length")
        assert collapsed >= 1, f"{page}: the set-up cells are not collapsed"
        characters = browser.execute_script("""
            const ps = Array.from(document.querySelectorAll('article.bd-article p')).filter(p => p.textContent.length > 300);
            return ps.map(p => p.textContent.length / Math.round(p.getBoundingClientRect().height
                                                                 / parseFloat(getComputedStyle(p).lineHeight)));""")
        # characters per line is estimated per paragraph (length / rendered lines, the line count rounded),
        # which overshoots for a paragraph whose last line is short: judge the typical line, with a cap
        assert characters and statistics.median(characters) < 100 and max(characters) < 125, \
            f"{page}: prose lines of {statistics.median(characters or [0]):.0f} characters (median), {max(characters or [0]):.0f} (max)"


@pytest.mark.parametrize("edition", site.EDITIONS)
def test_no_internal_link_is_broken(edition, servers, browser):
    server = servers[edition]
    checked: dict[str, tuple[int, str]] = {}
    broken = []
    for page in _pages():
        _open(browser, server + page)
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
    assert len(checked) >= len(_pages()), "the pages link to each other"
    assert any(t.endswith(".ipynb") for t in checked), "the notebooks can be downloaded"
    assert broken == []


@pytest.mark.parametrize("edition", site.EDITIONS)
def test_search_answers_offline(edition, servers, browser):
    _open(browser, servers[edition] + "search.html?q=temperature")
    _wait(browser, "return document.querySelectorAll('#search-results ul.search li').length > 0", timeout=60)
    found = browser.execute_script("return Array.from(document.querySelectorAll('#search-results ul.search li a'))"
                                   ".map(a => a.getAttribute('href'))")
    assert any(h.startswith("02_") for h in found), found
    assert _failures(browser) == []


def _screenshot(browser, name: str, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / name
    assert browser.save_screenshot(str(shot))
    image = Image.open(shot)
    assert image.width >= 800 and image.height >= 800
    colours = image.convert("L").getextrema()
    assert colours[0] < 100 < colours[1], "the screenshot shows text on a light page, not a blank page"
    small = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS).quantize(64)
    target_dir = os.environ.get("CALIBKD_ARTIFACTS")
    if target_dir:
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        small.save(Path(target_dir) / name, optimize=True)


def _show_exercise(browser, server: str) -> str:
    """Open chapter 01 at its exercise; returns the exercise cell's code."""
    _open(browser, server + CHAPTERS[0].with_suffix(".html").name)
    code = browser.execute_script("""
        const cells = Array.from(document.querySelectorAll('div.cell')).filter(c => c.textContent.includes('ece_by_hand'));
        const cell = cells[0];
        window.scrollTo(0, cell.getBoundingClientRect().top + window.scrollY - 220);
        return cell.querySelector('.cell_input').textContent;""")
    _wait(browser, "return true")
    return code


def test_screenshots_of_the_exercise_on_both_sites(servers, browser, tmp_path):
    student = _show_exercise(browser, servers["student"])
    assert "YOUR CODE HERE" in student and "raise NotImplementedError()" in student
    assert "ece_by_hand = 3 / 6" not in student and "BEGIN SOLUTION" not in student
    _screenshot(browser, "site_student_exercise.png", tmp_path)
    instructor = _show_exercise(browser, servers["instructor"])
    assert "ece_by_hand = 3 / 6" in instructor
    _screenshot(browser, "site_instructor_solution.png", tmp_path)
