"""The book builds without warnings, and the built site works in a real headless browser.

The build runs once per test session into a temporary folder (`--path-output`), so it never
touches the developer's `_build/`; `HASHREPRO_SITE=_build/html` tests a site already built with
`jupyter-book build book/ -W` instead. The browser tests use Debian's Chromium and ChromeDriver
(`make browser` installs them); they skip when those are missing, except under CI where a missing
browser is a failure. The browser has no network (every host but 127.0.0.1 fails to resolve), as
on a cluster node or a plane: the site must work from its own files.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
_RUNS_AT_BUILD: list[Path] = []


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("HASHREPRO_SITE")
    if prebuilt:  # a site built beforehand with `jupyter-book build book/ -W`
        html = Path(prebuilt).resolve()
        assert (html / "index.html").is_file(), f"HASHREPRO_SITE={prebuilt} holds no built site"
        _RUNS_AT_BUILD[:] = [nb for nb in sorted((ROOT / "book" / "runs").glob("*/*.ipynb"))
                             if nb.stat().st_mtime < (html / "index.html").stat().st_mtime]
        return html
    out = tmp_path_factory.mktemp("site")
    # The run notebooks present when the build starts (a sweep may add more meanwhile).
    _RUNS_AT_BUILD[:] = sorted((ROOT / "book" / "runs").glob("*/*.ipynb"))
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(ROOT / "book"), "-W", "-n", "--keep-going",
                           "--path-output", str(out)], capture_output=True, text=True, cwd=ROOT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, "jupyter-book build -W failed:\n" + log[-6000:]
    # Sphinx warnings look like "path:line: WARNING: ..." (kernels' own "[IPKernelApp] WARNING |"
    # lines on stderr are not book warnings).
    sphinx_warnings = [line for line in log.splitlines() if ": WARNING:" in line or line.startswith("WARNING:")]
    assert not sphinx_warnings, "build emitted warnings:\n" + "\n".join(sphinx_warnings)
    return out / "_build" / "html"


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        for ch in part["chapters"]:
            pages.append(ch["file"])
    return pages


def test_every_toc_page_is_built(site):
    for page in _toc_pages():
        assert (site / f"{page}.html").is_file(), f"{page}.html missing from the built site"
    assert (site / "index.html").is_file()


def test_run_notebooks_are_rendered_not_executed(site):
    for nb in _RUNS_AT_BUILD:
        rel = nb.relative_to(ROOT / "book").with_suffix(".html")
        assert (site / rel).is_file(), f"{rel} not rendered"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"])


def test_internal_links_and_images_resolve_on_disk(site):
    broken = []
    for html in site.rglob("*.html"):
        if "_static" in html.parts or "_sources" in html.parts:
            continue
        parser = _Links()
        parser.feed(html.read_text(errors="replace"))
        for ref in parser.hrefs + parser.imgs:
            u = urlparse(ref)
            if u.scheme or ref.startswith(("#", "mailto:", "javascript:")):
                continue
            target = (html.parent / unquote(u.path)).resolve()
            if u.path and not target.exists():
                broken.append(f"{html.relative_to(site)} -> {ref}")
    assert not broken, "broken internal links:\n" + "\n".join(broken[:50])


def _browser_paths():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return chromium, driver


@pytest.fixture(scope="session")
def browser():
    chromium, driver = _browser_paths()
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("Chromium/ChromeDriver missing under CI: `make browser` should have installed them")
        pytest.skip("Chromium/ChromeDriver not installed (run `make browser`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage",
                 # Network off: no host resolves except the local test server.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


#: Paths the test server answered with an error (a file the pages asked for that the site lacks).
_MISSING: list[str] = []


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet, but remember what was missing
        if len(args) >= 2 and str(args[1]).startswith(("4", "5")) and self.command == "GET":
            _MISSING.append(self.path)


@pytest.fixture(scope="session")
def served(site):
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_pages_render_in_headless_chromium(site, served, browser):
    # Every page but the run notebooks, and the first run page of each chapter: the run pages share one
    # template, and there are hundreds (following every link of each took 8 minutes). Every run page is
    # still loaded in the browser (its title heading, its images) by the run-titles test below, and the links and
    # images of every page are checked on disk by test_internal_links_and_images_resolve_on_disk.
    runs = set(_run_pages(site))
    first_runs = {min(p for p in runs if p.parent == d) for d in {p.parent for p in runs}}
    pages = [p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if not {"_static", "_sources", "_images"} & set(p.relative_to(site).parts)
             and (p not in runs or p in first_runs)]
    problems = []
    for rel in sorted(pages):
        browser.get(urljoin(served, rel))
        title = browser.title
        body = browser.find_element("tag name", "body").text
        if not title or not body.strip():
            problems.append(f"{rel}: empty page")
            continue
        if "404" in title:
            problems.append(f"{rel}: 404")
        broken_imgs = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.src)")
        if broken_imgs:
            problems.append(f"{rel}: images not loaded {broken_imgs}")
        # Follow every same-site link once (by HTTP status through the browser's fetch).
        bad_links = browser.execute_script("""
            const here = window.location.origin;
            const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href)
                .filter(h => h.startsWith(here)).map(h => h.split('#')[0]);
            const uniq = Array.from(new Set(links));
            const bad = [];
            for (const u of uniq) {
                const x = new XMLHttpRequest(); x.open('HEAD', u, false); x.send();
                if (x.status >= 400) bad.push(u + ' ' + x.status);
            }
            return bad;""")
        if bad_links:
            problems.append(f"{rel}: broken links {bad_links}")
    assert pages, "no pages built"
    assert not problems, "\n".join(problems)
    # The intro page shows the chapter navigation.
    browser.get(served + "intro.html")
    nav = browser.find_element("tag name", "nav").text.lower()
    for chapter in ("dnnh", "drsch", "ddh", "mch"):
        assert chapter in nav or chapter in browser.page_source.lower()



def _wait(browser, script: str, timeout: float = 30.0):
    """Poll a JavaScript expression until it is truthy; returns its last value."""
    end = time.monotonic() + timeout
    value = None
    while time.monotonic() < end:
        value = browser.execute_script(f"return ({script});")
        if value:
            return value
        time.sleep(0.25)
    return value


def test_math_renders_with_the_network_off(site, served, browser):
    # The browser really is offline: a CDN cannot be reached.
    browser.get(served + "intro.html")
    cdn = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js', {mode: 'no-cors'})
            .then(() => done('reachable'), () => done('offline'));""")
    assert cdn == "offline", "the test browser can reach the internet; the offline check means nothing"
    pages = sorted(p.relative_to(site).as_posix() for p in site.glob("*.html")
                   if 'class="math' in p.read_text(errors="replace"))
    assert "metrics.html" in pages, f"no math found on the metrics page; pages with math: {pages}"
    _MISSING.clear()
    for rel in pages:
        browser.get(urljoin(served, rel))
        scripts = browser.execute_script(
            "return Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s));")
        assert scripts and all(s.startswith(served) for s in scripts), f"{rel}: MathJax not served by the site: {scripts}"
        n_math = browser.execute_script("return document.querySelectorAll('.math').length;")
        rendered = _wait(browser, "window.MathJax && MathJax.startup && document.querySelectorAll("
                                  "'.math mjx-container, mjx-container').length >= " + str(n_math))
        raw = browser.execute_script(
            "return Array.from(document.querySelectorAll('.math')).filter(e => !e.querySelector('mjx-container'))"
            ".map(e => e.textContent.slice(0, 60));")
        assert rendered and not raw, f"{rel}: {len(raw)} of {n_math} formulas not rendered offline, e.g. {raw[:3]}"
    missing = sorted({m for m in _MISSING if "mathjax" in m.lower()})
    assert not missing, f"MathJax asked for files the site lacks: {missing}"


def _run_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.glob("runs/*/*.html") if p.name != "index.html" and p.parent.name != "local")


def test_run_titles_are_unique_and_runs_are_indexed_not_in_the_sidebar(site, served, browser):
    runs = _run_pages(site)
    if not runs:
        pytest.skip("no executed run notebooks in book/runs")
    titles: dict[str, str] = {}
    for page in runs:
        rel = page.relative_to(site).as_posix()
        browser.get(urljoin(served, rel))
        h1 = browser.execute_script("const h = document.querySelector('article h1, main h1');"
                                    "return h ? h.textContent : '';").strip().rstrip("#").strip()
        paper = page.parent.name.upper()
        assert h1.startswith(f"{paper} run · "), f"{rel}: title {h1!r} does not say which run it is"
        broken_imgs = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken_imgs, f"{rel}: images not loaded {broken_imgs}"
        assert browser.title.startswith(h1), (rel, browser.title, h1)
        assert h1 not in titles, f"{rel} and {titles[h1]} share the title {h1!r}"
        titles[h1] = rel
    # The sidebar lists one runs index per chapter, not the runs.
    browser.get(served + "intro.html")
    nav = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav a[href]')).map(a => a.getAttribute('href'));")
    in_nav = [h for h in nav if re.search(r"runs/[^/]+/(?!index)[^/]+\.html", h)]
    assert not in_nav, f"{len(in_nav)} run notebooks in the sidebar, e.g. {in_nav[:3]}"
    for paper in {p.parent.name for p in runs}:
        assert any(h.endswith(f"runs/{paper}/index.html") for h in nav), f"no runs index for {paper} in the sidebar"
        # Each chapter's index links every run page of that chapter.
        browser.get(urljoin(served, f"runs/{paper}/index.html"))
        linked = set(browser.execute_script(
            "return Array.from(document.querySelectorAll('article a[href], main a[href]'))"
            ".map(a => a.href.split('#')[0]);"))
        want = {urljoin(served, p.relative_to(site).as_posix()) for p in runs if p.parent.name == paper}
        assert want <= linked, f"runs/{paper}/index.html misses {sorted(want - linked)[:3]}"


def test_site_stays_lean(site):
    """Figures in run notebooks made the site 108 MB; they are slimmed when a sweep writes them."""
    files = [f for f in site.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    runs = _run_pages(site)
    n_runs = max(1, len(runs))
    big = []
    for page in runs:
        parser = _Links()
        parser.feed(page.read_text(errors="replace"))
        for src in parser.imgs:
            img = (page.parent / unquote(urlparse(src).path)).resolve()
            if img.is_file() and img.stat().st_size > 400_000:
                big.append(f"{page.relative_to(site)}: {src} ({img.stat().st_size / 1e3:.0f} kB)")
    assert not big, "run notebook figures over 400 kB (not slimmed):\n" + "\n".join(big[:10])
    # Chapters, static files and MathJax (~30 MB) plus about 0.25 MB per run (page, figures, .ipynb).
    assert total < 30e6 + 0.3e6 * n_runs, f"site is {total / 1e6:.0f} MB for {n_runs} runs"
    mathjax = sum(f.stat().st_size for f in (site / "_static" / "mathjax").rglob("*") if f.is_file())
    assert mathjax < 6e6, f"_static/mathjax is {mathjax / 1e6:.1f} MB"
