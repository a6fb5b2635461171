"The docs site: built offline from the notebooks, then checked in headless Chromium (no console errors, math, images, search)."
import functools, http.server, shutil, socketserver, subprocess, sys, threading
from pathlib import Path

import pytest

pytest.importorskip('sphinx'); pytest.importorskip('myst_nb'); pytest.importorskip('playwright')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
if CHROMIUM is None: pytest.skip('Debian chromium is not installed', allow_module_level=True)
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Build the site once and serve it on localhost."
    tmp = tmp_path_factory.mktemp('docs')
    subprocess.run([sys.executable, str(ROOT/'scripts'/'docs.py'), '--out', str(tmp/'site'), '--build', str(tmp/'build')],
                   check=True, cwd=ROOT)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    server = socketserver.TCPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(tmp/'site')))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tmp/'site', f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


@pytest.fixture(scope='module')
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, url):
    "Load a page; returns (page, console errors, page errors, failed requests)."
    page = browser.new_page()
    console, errors, failed = [], [], []
    page.on('console', lambda m: console.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: failed.append(r.url))
    page.goto(url, wait_until='networkidle')
    return page, console, errors, failed


def test_every_page_loads_cleanly(site, browser):
    "Every chapter, tutorial and the API page: no console errors, no failed requests, every image decoded, nothing from the network."
    root, base = site
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob('*.html') if not p.name.startswith(('genindex', 'search', 'py-modindex')))
    assert {'index.html', '02_flow.html', '06_model.html', 'api.html', 'tutorials/bits_per_dim_baselines.html',
            'tutorials/results/results_model.html'} <= set(pages)
    for rel in pages:
        page, console, errors, failed = _open(browser, f'{base}/{rel}')
        assert not console and not errors and not failed, (rel, console, errors, failed)
        broken = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        assert not broken, (rel, broken)
        external = page.evaluate("[...document.querySelectorAll('script[src],link[href],img[src]')].map(e => e.src || e.href)"
                                 ".filter(u => u.startsWith('http') && !u.startsWith(location.origin))")
        assert not external, (rel, external)
        page.close()


def test_math_is_typeset(site, browser):
    "MathJax, served by the site itself, typesets the flow chapter's equations."
    _, base = site
    page, console, errors, _ = _open(browser, f'{base}/02_flow.html')
    page.wait_for_selector('mjx-container', timeout=20_000)
    assert page.locator('mjx-container').count() > 10
    assert not console and not errors


def test_figures_and_outputs_are_there(site, browser):
    "Executed chapters show their figures and printed checks; the tutorial keeps its committed outputs."
    _, base = site
    page, *_ = _open(browser, f'{base}/02_flow.html')
    assert page.locator('img').count() >= 1 and 'max relative round-trip error' in page.content()
    page, *_ = _open(browser, f'{base}/tutorials/bits_per_dim_baselines.html')
    assert 'per-pixel histogram: 4.587 bits/dim' in page.content()


def test_search_finds_pages(site, browser):
    "Sphinx's offline search finds the guidance chapter."
    _, base = site
    page, console, errors, _ = _open(browser, f'{base}/search.html?q=resampling')
    page.wait_for_selector('ul.search li', timeout=20_000)
    assert any('07_guidance' in (a.get_attribute('href') or '') for a in page.locator('ul.search li a').all())
    assert not errors
