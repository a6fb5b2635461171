"""The docs site: built offline from the notebooks with no Sphinx warning, then checked in headless Chromium (no
console errors, math, images, search, every internal link and anchor, the API of every chapter, navigation, footer,
code that fits the column)."""
import ast, functools, html.parser, http.server, importlib, importlib.util, inspect, os, re, shutil, socketserver
import subprocess, sys, threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import DOCS_EXECUTED
from scriptload import load_script

pytest.importorskip('sphinx'); pytest.importorskip('myst_nb'); pytest.importorskip('playwright')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
if CHROMIUM is None: pytest.skip('Debian chromium is not installed', allow_module_level=True)
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
WIDTHS = (1280, 390)                                   # a laptop and a phone


docs = load_script('docs', 'farmer_docs_script')


@pytest.fixture(scope='module')
def site(tmp_path_factory, request):
    """Build the site once (the build fails on any Sphinx warning) and serve it on localhost; records the chapters
    it executed for tests/test_notebooks.py. FARMER_DOCS_SITE=_site checks a site built before instead."""
    tmp = tmp_path_factory.mktemp('docs')
    if os.environ.get('FARMER_DOCS_SITE'): shutil.copytree(os.environ['FARMER_DOCS_SITE'], tmp/'site')
    else:
        done = subprocess.run([sys.executable, str(ROOT/'scripts'/'docs.py'), '--out', str(tmp/'site'), '--build',
                               str(tmp/'build')], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
        assert 'docs: 0 warning(s)' in done.stdout
        executed = {ROOT/'nbs'/name for name in re.findall(r'^executed (\S+)$', done.stdout, re.M)}
        request.config.stash[DOCS_EXECUTED] = {p for p in executed if p.exists()}
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


def _open(browser, url, width=1280):
    "Load a page; returns (page, console errors, page errors, failed requests)."
    page = browser.new_page(viewport={'width': width, 'height': 900})
    console, errors, failed = [], [], []
    page.on('console', lambda m: console.append(m.text) if m.type == 'error' else None)
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: failed.append(r.url))
    page.goto(url, wait_until='networkidle')
    page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise ? MathJax.startup.promise : null")
    return page, console, errors, failed


# What each page shows at a width: whether the page scrolls sideways, and the code blocks and the prose (paragraphs,
# list items, table cells, signatures) whose content is wider than their box.
FIT = """() => {
  const wide = e => e.scrollWidth > e.clientWidth + 8;       // Furo lets a nested signature stick out 4 px
  document.querySelectorAll('mjx-assistive-mml').forEach(e => e.remove());     // MathJax's copy for
                                                                     // screen readers: clipped, but it counts
  return {page: document.documentElement.scrollWidth - window.innerWidth,
          code: [...document.querySelectorAll('article pre')].filter(wide)
                  .map(e => e.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, '').slice(0, 80)),
          prose: [...document.querySelectorAll('article p, article li, article td, article dt, article dd')]
                  .filter(wide).map(e => e.tagName + ': ' + e.textContent.slice(0, 60))};
}"""


@pytest.fixture(scope='module')
def visited(site, browser):
    "Every HTML page of the site, loaded once: its errors, images, links, anchors and fit at each width."
    root, base = site
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob('*.html') if not p.name.startswith(('genindex', 'search')))
    found = {}
    for rel in rels:
        page, console, errors, failed = _open(browser, f'{base}/{rel}')
        info = dict(console=console, errors=errors, failed=failed)
        info['broken'] = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        info['external'] = page.evaluate("[...document.querySelectorAll('script[src],link[href],img[src]')].map(e => e.src || e.href)"
                                         ".filter(u => u.startsWith('http') && !u.startsWith(location.origin))")
        info['links'] = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
        info['ids'] = set(page.evaluate("[...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name'))"))
        info['fit'] = {}
        for w in WIDTHS:
            page.set_viewport_size({'width': w, 'height': 900})
            info['fit'][w] = page.evaluate(FIT)
        found[rel] = info
        page.close()
    return found


def test_every_page_loads_cleanly(visited):
    """Every chapter, tutorial, assignment, results notebook and the API page: no console errors, no failed requests,
    every image decoded, nothing from the network."""
    assert {'index.html', 'flow.html', 'model.html', 'api.html', 'tutorials/bits_per_dim_baselines.html',
            'tutorials/results/results_model.html', 'tutorials/assignments/index.html'} <= set(visited)
    for rel, v in visited.items():
        assert not v['console'] and not v['errors'] and not v['failed'], (rel, v['console'], v['errors'], v['failed'])
        assert not v['broken'], (rel, v['broken'])
        assert not v['external'], (rel, v['external'])


def test_every_internal_link_resolves(site, browser, visited):
    "Every `a[href]` into the site, followed: the page (or file) exists and so does the `#anchor` on it."
    root, base = site
    files, bad, request = {}, [], browser.new_context().request
    for rel, v in visited.items():
        for href in v['links']:
            if not href.startswith(base): continue
            parts = urlsplit(href)
            target = unquote(parts.path).lstrip('/') or 'index.html'
            if target.endswith('/'): target += 'index.html'
            if target in visited:
                if parts.fragment and unquote(parts.fragment) not in visited[target]['ids']:
                    bad.append(f"{rel}: {href} (no such anchor)")
            elif target.startswith(('search.html', 'genindex.html')):
                continue                                      # loaded in test_search_finds_pages
            else:
                if target not in files: files[target] = request.get(f'{base}/{target}').status
                if files[target] != 200: bad.append(f"{rel}: {href} ({files[target]})")
    assert sum(len(v['links']) for v in visited.values()) > 1000
    assert not bad, f"{len(bad)} dead link(s):\n" + '\n'.join(bad[:50])


def test_modidx_links_land_on_their_anchors(visited):
    "Each link of nbdev's `_modidx.py` (page#anchor, e.g. flow.html#afblock) names a page and an anchor on it."
    d = ast.literal_eval((ROOT/'farmer_nb'/'_modidx.py').read_text(encoding='utf-8').split('d = ', 1)[1])
    links = [url for syms in d['syms'].values() for url, _ in syms.values()]
    bad = [u for u in links if u.partition('#')[0] not in visited or u.partition('#')[2] not in visited[u.partition('#')[0]]['ids']]
    assert not bad, bad[:20]


class _Signatures(html.parser.HTMLParser):
    "The text of every `dt` with an id: Sphinx's rendering of a documented object's signature."
    def __init__(self):
        super().__init__()
        self.found, self._id, self._depth = {}, None, 0
    def handle_starttag(self, tag, attrs):
        if tag == 'dt' and dict(attrs).get('id'): self._id, self._depth = dict(attrs)['id'], 0
        if self._id and tag == 'dt': self._depth += 1
    def handle_endtag(self, tag):
        if self._id and tag == 'dt':
            self._depth -= 1
            if self._depth == 0: self._id = None
    def handle_data(self, data):
        if self._id: self.found[self._id] = self.found.get(self._id, '') + data


def _public_api():
    """(module, qualified name, object, parameter names) for every name in a module's `__all__` and every own public
    method of its public classes (in the class body or added with `patch`)."""
    sys.path.insert(0, str(ROOT))
    for mod in docs.chapter_modules():
        m = importlib.import_module(mod)
        for name in m.__all__:
            obj = getattr(m, name)
            yield mod, name, obj, _params(obj)
            if not inspect.isclass(obj) or not obj.__module__.startswith('farmer_nb'): continue
            for meth, o in vars(obj).items():
                f = o.__func__ if isinstance(o, (classmethod, staticmethod)) else o.fget if isinstance(o, property) else o
                if meth.startswith('_') or not inspect.isfunction(f) or not f.__module__.startswith('farmer_nb'): continue
                yield obj.__module__, f'{name}.{meth}', o, [] if isinstance(o, property) else _params(f)[0 if isinstance(o, staticmethod) else 1:]


def _params(obj):
    if not callable(obj): return []
    try: return [p.name for p in inspect.signature(obj).parameters.values()]
    except (TypeError, ValueError): return []


def test_every_public_name_is_documented_in_its_chapter(site):
    """Every name of each module's `__all__` and every public method (patched ones too) has its signature, with each
    parameter, in the chapter that defines it (`_modidx.py`'s page; a constant: its module's chapter)."""
    root, _ = site
    d = ast.literal_eval((ROOT/'farmer_nb'/'_modidx.py').read_text(encoding='utf-8').split('d = ', 1)[1])
    where = {}
    for syms in d['syms'].values():
        for key, (url, _) in syms.items(): where.setdefault(key.split('.', 2)[2], set()).add(url.partition('#')[0])
    chapters, sigs, missing, n = docs.chapter_modules(), {}, [], 0
    for mod, name, obj, params in _public_api():
        n += 1
        pages = where.get(name, {chapters[mod]})
        for page in pages:
            if page not in sigs:
                parser = _Signatures()
                parser.feed((root/page).read_text(encoding='utf-8'))
                sigs[page] = parser.found
        text = next((sigs[p][f'{mod}.{name}'] for p in pages if f'{mod}.{name}' in sigs[p]), None)
        if text is None: missing.append(f"{mod}.{name}: not on {sorted(pages)}")
        elif not all(re.search(rf'\b{re.escape(p)}\b', text) for p in params):
            missing.append(f"{mod}.{name}: signature {text.strip()!r} lacks one of {params}")
    assert n > 200
    assert not missing, f"{len(missing)} name(s) without their documentation:\n" + '\n'.join(missing[:40])


def test_navigation_footer_and_assignments(site, browser):
    """The footer names the copyright holder; the navigation lists the tutorials in README's order, the Quickstart
    first, then the assignments, whose pages are there (README and starters)."""
    root, base = site
    page, *_ = _open(browser, f'{base}/index.html')
    holder = docs._holder()
    assert 'Copyright' in page.locator('footer').inner_text() and holder in page.locator('footer').inner_text()
    captions = page.locator('.sidebar-tree p.caption').all_inner_texts()
    assert [c.strip().lower() for c in captions] == ['chapters', 'tutorials', 'results', 'reference']
    tutorials = page.locator('.sidebar-tree ul').nth(1).locator(':scope > li > a').evaluate_all('as => as.map(a => a.getAttribute("href"))')
    order = docs.readme_order('Tutorials', 'tutorials')
    assert order[0] == 'quickstart'
    assert tutorials == [f'tutorials/{t}.html' for t in order] + ['tutorials/assignments/index.html']
    chapters = page.locator('.sidebar-tree ul').nth(0).locator(':scope > li > a').evaluate_all('as => as.map(a => a.getAttribute("href"))')
    assert chapters[:2] == ['data.html', 'utils.html'] and chapters[-1] == 'silent.html'
    for starter in sorted((ROOT/'tutorials'/'assignments').glob('[0-9]*.ipynb')):
        assert (root/'tutorials'/'assignments'/f'{starter.stem}.html').exists(), starter.name
    page, console, errors, _ = _open(browser, f'{base}/tutorials/assignments/index.html')
    links = page.locator('article a').evaluate_all('as => as.map(a => a.getAttribute("href"))')
    assert '02_gmm_logprob.html' in links and not console and not errors
    page, *_ = _open(browser, f'{base}/tutorials/assignments/02_gmm_logprob.html')
    assert 'NotImplementedError' in page.content()                # the gap, shown, never run


def test_code_and_prose_fit_the_column(visited):
    """At a laptop's and a phone's width no page scrolls sideways, code lines wrap (the longest are ~170 characters
    of source and ~280 of printed output) and no paragraph, list item or signature runs past the column."""
    bad = [(rel, w, fit) for rel, v in visited.items() for w, fit in v['fit'].items()
           if fit['page'] > 0 or fit['code'] or fit['prose']]
    assert not bad, bad[:10]


def test_math_is_typeset(site, browser):
    "MathJax, served by the site itself, typesets the flow chapter's equations."
    _, base = site
    page, console, errors, _ = _open(browser, f'{base}/flow.html')
    page.wait_for_selector('mjx-container', timeout=20_000)
    assert page.locator('mjx-container').count() > 10
    assert not console and not errors


def test_figures_and_outputs_are_there(site, browser):
    "Executed chapters show their figures and printed checks; the tutorial keeps its committed outputs."
    _, base = site
    page, *_ = _open(browser, f'{base}/flow.html')
    assert page.locator('img').count() >= 1 and 'max relative round-trip error' in page.content()
    page, *_ = _open(browser, f'{base}/tutorials/bits_per_dim_baselines.html')
    assert 'per-pixel histogram: 4.587 bits/dim' in page.content()


def test_search_finds_pages(site, browser):
    "Sphinx's offline search finds the guidance chapter."
    _, base = site
    page, console, errors, _ = _open(browser, f'{base}/search.html?q=resampling')
    page.wait_for_selector('ul.search li', timeout=20_000)
    assert any('guidance.html' in (a.get_attribute('href') or '') for a in page.locator('ul.search li a').all())
    assert not errors
