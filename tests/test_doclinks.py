"""Links into the docs name pages the site has: nbdev's `_modidx.py`, the module docstrings and the site's page list
(scripts/docs.py's `pages()`) agree, without building the site (tests/test_docs.py builds it and follows every link)."""
import ast, re
from pathlib import Path

import pytest
from scriptload import load_script

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip('nbdev')


docs = load_script('docs', 'farmer_docs_script')
PAGES = [page for _, _, page in docs.pages()]


def modidx():
    "nbdev's index of the package, read from this checkout's file (not an installed copy)."
    text = (ROOT/'farmer_nb'/'_modidx.py').read_text(encoding='utf-8')
    return ast.literal_eval(text.split('d = ', 1)[1])


def test_pages_are_unique_and_chapters_named_as_nbdev_links_them():
    "One page per source; a chapter's page is nbdev's name for it (nbs/02_flow.ipynb → flow.html)."
    from nbdev.config import nbpath2html
    assert len(PAGES) == len(set(PAGES))
    chapters = [(p, page) for s, p, page in docs.pages() if s in ('home', 'chapters')]
    assert len(chapters) == len(list((ROOT/'nbs').glob('[!_.]*.ipynb')))
    for nb, page in chapters:
        assert page == nbpath2html(nb.relative_to(ROOT/'nbs')).as_posix(), (nb.name, page)
    assert {'index.html', 'flow.html', 'model.html', 'silent.html', 'api.html'} <= set(PAGES)


def test_modidx_links_name_built_pages():
    "Every symbol link of `_modidx.py` is `page#anchor` with a page the site builds, on no outside host."
    d = modidx()
    assert not d['settings'].get('doc_host'), "the docs are published nowhere: no doc_host (pyproject's [project.urls])"
    links = [url for syms in d['syms'].values() for url, _ in syms.values()]
    assert len(links) > 300
    bad = [url for url in links if url.partition('#')[0] not in PAGES or not url.partition('#')[2]]
    assert not bad, bad[:20]
    # each module's symbols link to the chapter that exports the module, or to a later one that patches it
    chapters = docs.chapter_modules()
    for mod, syms in d['syms'].items():
        assert any(url.startswith(chapters[mod] + '#') for url, _ in syms.values()), mod


def test_module_docstrings_claim_no_unbuilt_url():
    "A module docstring's `Docs:` line, if nbdev writes one, names a page of the site; none points at a host."
    found = []
    for py in sorted((ROOT/'farmer_nb').glob('*.py')):
        doc = ast.get_docstring(ast.parse(py.read_text(encoding='utf-8'))) or ''
        for url in re.findall(r'^Docs:\s*(\S+)', doc, re.M):
            found.append(url)
            assert not re.match(r'[a-z]+://', url), f"{py.name}: Docs: {url} is on a site that is not published"
            assert url.removesuffix('.md') in PAGES, f"{py.name}: Docs: {url} is not a page of the site"
        assert 'github.io' not in py.read_text(encoding='utf-8'), py.name
    from nbdev.config import get_config
    assert get_config(ROOT).doc_host == '', "nbdev would write Docs: URLs on a host the site is not published on"


def test_tutorials_and_results_in_readme_order():
    "The site's tutorials and results notebooks come in the order of README's tables, the Quickstart first."
    for section, folder, heading in [('tutorials', 'tutorials', 'Tutorials'),
                                     ('results', 'tutorials/results', 'Results notebooks')]:
        order = docs.readme_order(heading, folder)
        assert order, heading
        got = [p.stem for s, p, _ in docs.pages() if s == section]
        assert got[:len(order)] == order
        assert set(got) == {p.stem for p in (ROOT/folder).glob('[!_.]*.ipynb')}
    assert docs.readme_order('Tutorials', 'tutorials')[0] == 'quickstart'


def test_assignments_are_pages_without_solutions():
    "The assignments' README and starter notebooks are pages; the solutions are not."
    starters = sorted(p.stem for p in (ROOT/'tutorials'/'assignments').glob('[0-9]*.ipynb'))
    assert len(starters) == 5
    assert 'tutorials/assignments/index.html' in PAGES
    assert {f'tutorials/assignments/{s}.html' for s in starters} <= set(PAGES)
    assert not [p for p in PAGES if 'solutions' in p]


def test_repository_links_become_site_links(tmp_path):
    "A link between repository files is rewritten to the pages' places; code spans and outside URLs are kept."
    sources = {p.resolve(): tmp_path/'src'/(page[:-5] + p.suffix) for _, p, page in docs.pages() if p is not None}
    link = docs.Linker(tmp_path, sources)
    tut = ROOT/'tutorials'/'guidance_explorer.ipynb'
    nb, starter, ext, md = '07_guidance', '03_resampling_cfg', '.ipynb', '.md'            # names built, not written out
    text = (f'[a](../nbs/{nb}{ext}#resampling) [b](assignments/{starter}{ext}) [c](https://arxiv.org/abs/2510.23588) '
            f'`[d](../nbs/{nb}{ext})` [e](#here) [f](assignments/)')
    assert link(text, tut, sources[tut.resolve()]) == (
        f'[a](../guidance{ext}#resampling) [b](assignments/{starter}{ext}) [c](https://arxiv.org/abs/2510.23588) '
        f'`[d](../nbs/{nb}{ext})` [e](#here) [f](assignments/index{md})')
