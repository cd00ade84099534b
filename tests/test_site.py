"""The book builds without warnings, and the built site works in a real headless browser.

The build runs once per test session into a temporary folder (`--path-output`), so it never
touches the developer's `_build/`. The browser test uses Debian's Chromium and ChromeDriver
(`make browser` installs them); it skips when they are missing, except under CI where a missing
browser is a failure.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
_RUNS_AT_BUILD: list[Path] = []


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
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
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="session")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_pages_render_in_headless_chromium(site, served, browser):
    pages = [p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if not {"_static", "_sources", "_images"} & set(p.relative_to(site).parts)]
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
