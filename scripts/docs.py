"""Build the documentation site offline: python scripts/docs.py [--out _site] [--no-execute]

1. Copies every notebook of nbs/, tutorials/ and tutorials/results/ into a build folder. Library notebooks are
   committed without outputs, so they are executed there with nbdev's runner (cells flagged slow / cuda / notest are
   skipped); tutorials and the results notebooks keep the outputs they were committed with.
2. Turns them into plain notebooks for Sphinx: hidden cells, nbdev directives and export cells removed.
3. Renders them with Sphinx + MyST-NB (no execution at render time) and the Furo theme, MathJax served from
   the site itself (sphinx-mathjax-offline), plus API pages from the library's docstrings, and Sphinx's search.
Needs the `docs` extra: pip install -e ".[docs]". Nothing is downloaded.
"""
import argparse, os, re, shutil, subprocess, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SKIP = ('notest', 'slow', 'cuda')

def execute(nb_path):
    "Run a notebook in place with nbdev's runner, saving its outputs; returns True on success."
    import nbdev.test as t
    t.in_notebook = lambda: True                       # keep the runner from setting IN_TEST: full outputs
    ok, _ = t.test_nb(str(nb_path), skip_flags=list(SKIP), basepath=str(ROOT), save=True)
    return ok

LINKS = {'chapter': [('](../tutorials/', '](tutorials/')], 'tutorial': [('](../nbs/', '](../')],    # repository paths → site paths
         'result': [('](../../results/', '](../../../results/'), ('](../../nbs/', '](../../')]}      # tutorials/results/*.ipynb

def clean(src, dst, title_from_h1=True, kind=None):
    "Drop hidden/export cells and directive lines so a generic renderer shows what a reader should see."
    nb = nbformat.read(src, as_version=4)
    keep = []
    for c in nb.cells:
        text = c.source
        if c.cell_type == 'markdown' and kind in LINKS:
            for old, new in LINKS[kind]: c.source = text = text.replace(old, new)
        if c.cell_type == 'code':
            flags = re.findall(r'^#\|\s*(.+)$', text, re.M)
            if any(f.strip().startswith(('hide', 'default_exp')) or 'nbdev_export' in text for f in flags) or 'nbdev.nbdev_export()' in text:
                continue
            c.source = '\n'.join(l for l in text.splitlines() if not l.startswith('#|')).strip('\n')
            if not c.source: continue
        for k in [k for k in c if k not in ('cell_type', 'execution_count', 'id', 'metadata', 'outputs', 'source', 'attachments')]:
            del c[k]
        c.metadata = {}
        keep.append(c)
    nb.cells = keep
    nb.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
    nbformat.write(nb, dst)

CONF = '''
project = "farmer_nb"
author = "farmer_nb contributors"
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]
nb_execution_mode = "off"                    # notebooks arrive executed; Sphinx only renders
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3                     # [text](13_silent.ipynb#a-section) links resolve to the heading
html_theme = "furo"
html_title = "farmer_nb"
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "misc.highlighting_failure"]
autodoc_member_order = "bysource"
html_favicon = "favicon.svg"
'''
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2b6cb0"/>'
           '<text x="8" y="12" font-size="11" text-anchor="middle" fill="white" font-family="sans-serif">F</text></svg>')

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'_site'), help='where the HTML site goes')
    ap.add_argument('--build', default=str(ROOT/'_docs'), help='working folder (sources for Sphinx)')
    ap.add_argument('--no-execute', action='store_true', help='render library notebooks without running them (no outputs)')
    args = ap.parse_args()
    build, out = Path(args.build), Path(args.out)
    shutil.rmtree(build, ignore_errors=True); (build/'src'/'tutorials'/'results').mkdir(parents=True)
    raw = build/'raw'; raw.mkdir()
    chapters = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))
    tutorials = sorted(p for p in (ROOT/'tutorials').glob('*.ipynb') if not p.name.startswith('_'))
    results = sorted(p for p in (ROOT/'tutorials'/'results').glob('*.ipynb') if not p.name.startswith('_'))   # measurements
    if (ROOT/'results').exists(): shutil.copytree(ROOT/'results', build/'results')     # figures and numbers linked as ../results/...
    for p in chapters:
        shutil.copy(p, raw/p.name)
        if not args.no_execute:
            print(f"executing {p.name}", flush=True)
            if not execute(raw/p.name): sys.exit(f"docs: {p.name} failed to execute")
        clean(raw/p.name, build/'src'/p.name, kind='chapter')
    for p in tutorials: clean(p, build/'src'/'tutorials'/p.name, kind='tutorial')
    for p in results: clean(p, build/'src'/'tutorials'/'results'/p.name, kind='result')
    home = build/'src'/'index.ipynb'
    names = [p.stem for p in chapters if p.stem != 'index']
    (build/'src'/'conf.py').write_text(CONF); (build/'src'/'favicon.svg').write_text(FAVICON)
    mods = sorted(p.stem for p in (ROOT/'farmer_nb').glob('*.py') if not p.stem.startswith('_'))
    (build/'src'/'api.md').write_text('# API reference\n\nEvery exported name, with its docstring. The chapters explain them.\n\n' +
        '\n'.join(f"## `farmer_nb.{m}`\n\n```{{eval-rst}}\n.. automodule:: farmer_nb.{m}\n   :members:\n```\n" for m in mods))
    toc = lambda caption, entries: f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n\n" + '\n'.join(entries) + "\n```\n"
    nb = nbformat.read(home, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(toc('Chapters', names) + '\n' + toc('Tutorials', [f'tutorials/{p.stem}' for p in tutorials])
                                                  + '\n' + toc('Results', [f'tutorials/results/{p.stem}' for p in results])
                                                  + '\n' + toc('Reference', ['api'])))
    nbformat.write(nb, home)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    subprocess.run([sys.executable, '-m', 'sphinx', '-q', '-b', 'html', str(build/'src'), str(out)], check=True, env=env)
    print(f"site: {out/'index.html'}")

if __name__ == '__main__':
    main()
