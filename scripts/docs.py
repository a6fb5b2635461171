"""Build the documentation site offline: python scripts/docs.py [--out _site] [--no-execute]

1. Copies every page's notebook into a build folder: the chapters (nbs/), the tutorials in the order of README's
   table, the assignments (their README and the starter notebooks, never executed: they raise by design) and the
   results notebooks. Library notebooks are committed without outputs, so they are executed there with nbdev's
   runner (cells flagged with `tst_flags`, slow / cuda / notest, are skipped); the other notebooks keep the
   outputs they were committed with.
2. Turns them into plain notebooks for Sphinx: hidden cells, nbdev directives and `default_exp` cells removed,
   relative links pointed at the pages (and files) of the site. A chapter's page is named the way nbdev's
   `_modidx.py` links to it (nbs/02_flow.ipynb → flow.html: the number dropped). After each exported cell, the
   signature and docstring of every public name it defines (functions, classes with their methods, methods added
   with `patch`, constants), the parameters with their comments; anchors named as `_modidx.py` names them.
3. Renders them with Sphinx + MyST-NB (no execution at render time) and the Furo theme, MathJax served from the
   site itself (sphinx-mathjax-offline), an API index (api.html) and Sphinx's search. Any Sphinx warning fails
   the build (-W, with --keep-going so that all of them are listed).
Needs the `docs` extra: pip install -e ".[docs]". Nothing is downloaded.
"""
import argparse, ast, importlib, inspect, io, json, os, re, shutil, subprocess, sys, tokenize
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                 # document this checkout's package, not one installed from elsewhere


# ---------------------------------------------------------------------------------------------------------------
# The pages of the site

def chapter_page(nb):
    "The page of a chapter, named as nbdev's `_modidx.py` links to it: nbs/02_flow.ipynb → flow.html."
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb).relative_to(ROOT/'nbs')).as_posix()


def readme_order(section, folder):
    "Notebook names in the order the table under README's `## section` heading links them from `folder`."
    text = (ROOT/'README.md').read_text(encoding='utf-8')
    m = re.search(rf'^## {re.escape(section)}\s*$(.*?)(?=^## |\Z)', text, re.M | re.S)
    return re.findall(rf'\]\({re.escape(folder)}/([\w.-]+)\.ipynb\)', m.group(1)) if m else []


def _notebooks(folder):
    return sorted(p for p in folder.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def _ordered(paths, order):
    "`paths` in the order of the names in `order`; the others after them, by name."
    rank = {name: i for i, name in enumerate(order)}
    return sorted(paths, key=lambda p: (rank.get(p.stem, len(rank)), p.name))


def pages():
    """The site in reading order: (section, source, page) with `source` a file of the repository (None for
    the generated API index) and `page` its HTML page relative to the site's root. Sections: home, chapters,
    tutorials, assignments, results, reference."""
    tut, res, asg = ROOT/'tutorials', ROOT/'tutorials'/'results', ROOT/'tutorials'/'assignments'
    chapters = _notebooks(ROOT/'nbs')
    out = [('home' if p.stem == 'index' else 'chapters', p, chapter_page(p)) for p in chapters]
    out.sort(key=lambda t: t[0] != 'home')
    out += [('tutorials', p, f'tutorials/{p.stem}.html')
            for p in _ordered(_notebooks(tut), readme_order('Tutorials', 'tutorials'))]
    if (asg/'README.md').exists(): out.append(('assignments', asg/'README.md', 'tutorials/assignments/index.html'))
    out += [('assignments', p, f'tutorials/assignments/{p.stem}.html') for p in _notebooks(asg)]
    out += [('results', p, f'tutorials/results/{p.stem}.html')
            for p in _ordered(_notebooks(res), readme_order('Results notebooks', 'tutorials/results'))]
    out.append(('reference', None, 'api.html'))
    return out


def chapter_modules():
    "{module: page} for the chapters that export one (`#| default_exp flow` in nbs/02_flow.ipynb → flow.html)."
    out = {}
    for _, p, page in pages():
        if p is None or p.parent != ROOT/'nbs': continue
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text(encoding='utf-8'))
        if m: out[f'farmer_nb.{m.group(1)}'] = page
    return out


def _doc(page): return page[:-len('.html')]                       # Sphinx's document name


# ---------------------------------------------------------------------------------------------------------------
# Links: repository paths → site paths

LINK = re.compile(r'(?P<code>```.*?```|~~~.*?~~~|(?P<ticks>`+).+?(?P=ticks))'     # code is left alone
                  r'|(?P<pre>\]\(\s*<?)(?P<target>[^)\s>]+)', re.S)


class Linker:
    "Rewrites relative markdown links of a repository file for its place in the build."
    def __init__(self, build, sources):
        self.build, self.src = build, build/'src'
        self.sources = sources                         # repository file (resolved) → its source in the build

    def __call__(self, text, repo_file, build_file):
        def one(m):
            if m.group('code'): return m.group(0)
            target = m.group('target')
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith(('#', '/')): return m.group(0)
            path, hash_, anchor = target.partition('#')
            repo = Path(os.path.normpath(repo_file.parent/path))
            if repo in self.sources: new = self.sources[repo]
            elif repo/'README.md' in self.sources: new = self.sources[repo/'README.md']     # a folder's page
            elif repo.is_file() and ROOT in repo.parents:                                 # a figure, a file
                new = self.build/'repo'/repo.relative_to(ROOT)
                new.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(repo, new)
            else: return m.group(0)                                                       # Sphinx reports it
            return m.group('pre') + os.path.relpath(new, build_file.parent).replace(os.sep, '/') + hash_ + anchor
        return LINK.sub(one, text)


# ---------------------------------------------------------------------------------------------------------------
# API documentation inside the chapters

def _flags(source): return [f.strip() for f in re.findall(r'^#\|\s*(.+)$', source, re.M)]


def _code(source):
    "A cell's Python without directive lines and IPython magics."
    return '\n'.join('' if l.lstrip().startswith(('#|', '%', '!')) else l for l in source.splitlines())


def _patched(fn):
    "The class name `fn` is added to with the library's `@patch` (its first parameter's annotation), or None."
    for d in fn.decorator_list:
        f = d.func if isinstance(d, ast.Call) else d
        if isinstance(f, ast.Name) and f.id == 'patch':
            args = fn.args.posonlyargs + fn.args.args
            if args and isinstance(args[0].annotation, ast.Name): return args[0].annotation.id
    return None


def _comment(source, node):
    "A constant's description: the comment at the end of its first line, else the comments just above it."
    lines = source.splitlines()
    try: tokens = list(tokenize.generate_tokens(io.StringIO(source + '\n').readline))
    except (tokenize.TokenError, SyntaxError): tokens = []
    ends = [t.string for t in tokens if t.type == tokenize.COMMENT and t.start[0] == node.lineno and t.start[1] > 0]
    if ends: return ends[0].lstrip('#').strip()
    above, i = [], node.lineno - 2
    while i >= 0 and lines[i].lstrip().startswith('#') and not lines[i].lstrip().startswith('#|'):
        above.insert(0, lines[i].lstrip().lstrip('#').strip())
        i -= 1
    return ' '.join(above)


def definitions(source):
    """What an exported cell defines, in order: (name, kind, extra) with name `f`, `Cls`, `Cls.method` (in the
    class body or added with `patch`) or a constant; kind 'def', 'class', 'method', 'patch' or 'data'."""
    try: tree = ast.parse(_code(source))
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            cls = _patched(node)
            out.append((f'{cls}.{node.name}', 'patch', None) if cls else (node.name, 'def', None))
        elif isinstance(node, ast.ClassDef):
            out.append((node.name, 'class', None))
            out += [(f'{node.name}.{b.name}', 'method', None) for b in node.body
                    if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef))]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            out += [(n, 'data', _comment(_code(source), node)) for n in names]
    return out


class _Text:
    "Shows as its text in `inspect.Signature`'s rendering (annotations, defaults)."
    def __init__(self, text): self.text = text
    def __repr__(self): return self.text


def _default(v):
    r = repr(v)
    try: ast.parse(r, mode='eval')
    except SyntaxError: return _Text('...')
    return _Text(r if len(r) <= 60 else '...')


def _annotation(a):
    return _Text(a if isinstance(a, str) else inspect.formatannotation(a))


def signature(obj, drop_first=False):
    "`(x, c=None, *, guidance=None)`: the parameters with annotations and (short) defaults, as Sphinx reads them."
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return '(...)'
    params = list(sig.parameters.values())[1 if drop_first else 0:]
    params = [p.replace(annotation=p.empty if p.annotation is p.empty else _annotation(p.annotation),
                        default=p.empty if p.default is p.empty else _default(p.default)) for p in params]
    ret = sig.return_annotation
    ret = sig.empty if ret is sig.empty or inspect.isclass(obj) else _annotation(ret)
    return str(sig.replace(parameters=params, return_annotation=ret))


def _docstring(obj):
    "The object's own docstring (a class never inherits one, e.g. nn.Module's); '' if it has none."
    doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) else getattr(obj, '__doc__', None)
    doc = inspect.cleandoc(doc) if isinstance(doc, str) else ''
    if inspect.isclass(obj) and doc.startswith(f'{obj.__name__}('): return ''    # a dataclass's generated one
    return doc


def _params(obj):
    "`:param name: comment` lines from the parameters' comments (nbdev's docments)."
    from fastcore.docments import docments
    try: found = docments(obj)
    except Exception: return []                                   # no source to read: no comments to show
    return [f':param {k}: {v}' for k, v in found.items() if v and k != 'return' and not k.startswith('*')]


def _fenced(directive, arg, options, body):
    "A MyST directive block whose fence is longer than any backtick run inside it."
    opts = '---\n' + ''.join(f'{k}: {json.dumps(v, ensure_ascii=False)}\n' for k, v in options.items()) + '---\n'
    inner = opts + body.strip('\n')
    ticks = '`' * max(3, max((len(r) for r in re.findall(r'`+', inner)), default=0) + 1)
    return f'{ticks}{{{directive}}} {arg}\n{inner}\n{ticks}\n'


def _anchor(name): return f'<div id="{name.lower()}" class="nbdev-anchor"></div>\n\n'


def describe(obj, name, module, kind, comment='', members=()):
    """The MyST block for one public object: its anchor, signature, docstring and parameters (and a class's
    methods, nested). `kind`: 'def', 'class', 'data', 'patch' (a method added with `patch`) or 'member'."""
    label, opts = (name.rpartition('.')[2] if kind == 'member' else name), {'module': module}
    if kind == 'data' and (inspect.isfunction(obj) or inspect.isclass(obj)):     # an alias: f = Cls.method
        return _anchor(name) + _fenced('py:function', label + signature(obj), opts,
                                       '\n\n'.join(filter(None, [comment, _docstring(obj), '\n'.join(_params(obj))])))
    if kind == 'data':
        opts['type'] = type(obj).__name__
        if _default(obj).text != '...': opts['value'] = _default(obj).text           # short and Python
        return _anchor(name) + _fenced('py:data', label, opts, comment)
    if isinstance(obj, property): directive, fn, sig = 'py:property', obj.fget, ''
    elif isinstance(obj, (classmethod, staticmethod)):
        directive, fn = 'py:method', obj.__func__
        opts[type(obj).__name__] = ''                               # classmethod: / staticmethod:
        sig = signature(fn, drop_first=isinstance(obj, classmethod))
    elif kind == 'class': directive, fn, sig = 'py:class', obj, signature(obj)
    elif kind == 'def': directive, fn, sig = 'py:function', obj, signature(obj)
    else: directive, fn, sig = 'py:method', obj, signature(obj, drop_first=True)
    body = [_docstring(fn), '\n'.join(_params(fn if inspect.isclass(fn) else inspect.unwrap(fn)))]
    body += [describe(m, f'{name}.{n}', module, 'member') for n, m in members]
    return _anchor(name) + _fenced(directive, label + sig, opts, '\n\n'.join(filter(None, body)))


def _summary(obj, comment=''):
    "The first paragraph of an object's docstring (or a constant's comment), on one line."
    if isinstance(obj, (classmethod, staticmethod)): obj = obj.__func__
    if isinstance(obj, property): obj = obj.fget
    doc = comment if comment or not callable(obj) else _docstring(obj)
    return doc.strip().split('\n\n')[0].replace('\n', ' ')


class API:
    "Where each public object of the package is defined in the chapters, and its documentation blocks."
    def __init__(self, chapters):
        self.where, self.cells, self.index, self.ids, self.modules = {}, {}, [], set(), {}
        for nb_path in chapters:
            nb = nbformat.read(nb_path, as_version=4)
            mod = next((f.split()[1] for c in nb.cells if c.cell_type == 'code' for f in _flags(c.source)
                        if f.startswith('default_exp')), None)
            if mod is None: continue
            module = importlib.import_module(f'farmer_nb.{mod}')
            for c in nb.cells:
                if c.cell_type != 'code' or 'export' not in _flags(c.source): continue
                defs = definitions(c.source)
                self.cells[(nb_path, c.id)] = (module, defs)
                for name, _, _ in defs: self.where[(module.__name__, name)] = (nb_path, c.id)   # the last one wins

    @staticmethod
    def _resolve(module, name):
        "The object `name` (`f`, `Cls` or `Cls.method`) of `module`, and the module it belongs to."
        head, _, rest = name.partition('.')
        obj = getattr(module, head, None)
        if obj is None or not rest: return obj, module.__name__
        if not inspect.isclass(obj): return None, None
        return inspect.getattr_static(obj, rest, None), obj.__module__

    def blocks(self, nb_path, cell_id, page):
        """(before, after) for an exported cell of a chapter: anchors of its private names (where `_modidx.py`
        links them), and the documentation of its public ones."""
        if (nb_path, cell_id) not in self.cells: return '', ''
        module, defs = self.cells[(nb_path, cell_id)]
        self.modules[page] = module.__name__
        public = set(getattr(module, '__all__', []))
        here = lambda name: self.where.get((module.__name__, name)) == (nb_path, cell_id)
        before, after = '', []
        for name, kind, comment in defs:
            if not here(name): continue
            head, _, rest = name.partition('.')
            if kind == 'method':                                    # documented inside its class's block
                if head not in public or rest.startswith('_'): before += _anchor(name)
                continue
            shown = head in public if kind != 'patch' else not (head.startswith('_') or rest.startswith('_'))
            obj, objmod = self._resolve(module, name) if shown else (None, None)
            if obj is None:
                if kind != 'data': before += _anchor(name)
                continue
            members = []
            if kind == 'class':
                members = [(n.partition('.')[2], inspect.getattr_static(obj, n.partition('.')[2]))
                           for n, k, _ in defs if k == 'method' and n.startswith(name + '.') and here(n)
                           and not n.partition('.')[2].startswith('_')]
            after.append(describe(obj, name, objmod, kind, comment, members))
            self.index.append((page, f'{objmod}.{name}', kind, _summary(obj, comment)))
            self.index += [(page, f'{objmod}.{name}.{n}', 'member', _summary(m)) for n, m in members]
        return self._once(before, page), self._once('\n'.join(after), page)

    def _once(self, text, page):
        "`text` without the anchors its page already has (nbdev's anchor names are lower case: `_Sizes.d` twice)."
        def keep(m):
            if (page, m.group(1)) in self.ids: return ''
            self.ids.add((page, m.group(1)))
            return m.group(0)
        return re.sub(r'<div id="([^"]+)" class="nbdev-anchor"></div>\n\n', keep, text)

    def page(self, titles):
        "The API index: every documented name with the first line of its docstring, grouped by chapter."
        lines = ['# API reference', '',
                 'Every public name of the package with the first line of its docstring, by the chapter that '
                 'defines it. Each links to its place in the chapter: signature, docstring and parameters.', '']
        role = 'py:obj'                                             # whatever the object is
        for pg in dict.fromkeys(p for p, *_ in self.index):
            mod = self.modules[pg]
            lines += ['', f'## {titles[pg]}', '', f'Defined in the chapter [{titles[pg]}]({_doc(pg)}.ipynb) '
                      f'(module `{mod}`):', '']
            for p, key, kind, summary in self.index:
                if p != pg: continue
                short = key.split('.', 2)[2]
                indent = '  ' if kind == 'member' else ''
                lines.append(f'{indent}- {{{role}}}`{short} <{key}>`' + (f': {summary}' if summary else ''))
        return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------------------------
# Notebooks → plain notebooks for Sphinx

def execute(nb_path):
    "Run a notebook in place with nbdev's runner, saving its outputs; returns True on success."
    import nbdev.test as t
    t.in_notebook = lambda: True                       # keep the runner from setting IN_TEST: full outputs
    from nbdev.config import get_config
    skip = str(get_config(ROOT).tst_flags).split()      # the test runner's flags: tests/test_notebooks.py relies on it
    ok, _ = t.test_nb(str(nb_path), skip_flags=skip, basepath=str(ROOT), save=True)
    return ok


def clean(src, dst, repo_file, link, api=None, page=None):
    "Drop hidden cells and directive lines so a generic renderer shows what a reader should see; add API blocks."
    nb = nbformat.read(src, as_version=4)
    keep = []
    for c in nb.cells:
        text = c.source
        before = after = ''
        if c.cell_type == 'markdown': c.source = link(text, repo_file, dst)
        if c.cell_type == 'code':
            flags = _flags(text)
            if any(f.startswith(('hide', 'default_exp')) for f in flags) or 'nbdev_export' in text: continue
            if api is not None and 'export' in flags: before, after = api.blocks(repo_file, c.id, page)
            c.source = '\n'.join(l for l in text.splitlines() if not l.startswith('#|')).strip('\n')
            if not c.source: continue
        for k in [k for k in c if k not in ('cell_type', 'execution_count', 'id', 'metadata', 'outputs', 'source',
                                             'attachments')]:
            del c[k]
        c.metadata = {}
        if before: keep.append(nbformat.v4.new_markdown_cell(before))
        keep.append(c)
        if after: keep.append(nbformat.v4.new_markdown_cell(after))
    nb.cells = keep
    nb.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}
    for i, c in enumerate(nb.cells): c.id = f'cell-{i}'                    # new cells: unique ids
    nbformat.write(nb, dst)


def _title(path):
    "A notebook's or markdown file's first `# ` heading."
    if path.suffix == '.md': text = path.read_text(encoding='utf-8')
    else: text = '\n'.join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == 'markdown')
    m = re.search(r'^# (.+)$', text, re.M)
    return m.group(1).strip() if m else path.stem


def _holder():
    "The copyright holder: the project's author in pyproject.toml."
    m = re.search(r'^authors\s*=\s*\[\{name\s*=\s*"([^"]+)"', (ROOT/'pyproject.toml').read_text(encoding='utf-8'), re.M)
    return m.group(1) if m else 'farmer_nb contributors'


CONF = '''
project = "farmer_nb"
author = {holder!r}
copyright = {holder!r}                       # the footer: Copyright © {holder}
extensions = ["myst_nb", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]
nb_execution_mode = "off"                    # notebooks arrive executed; Sphinx only renders
myst_enable_extensions = ["dollarmath", "amsmath", "fieldlist"]
myst_dmath_double_inline = True              # $$...$$ inside a paragraph or list item: display math, as in Jupyter
myst_heading_anchors = 3                     # a link to a page's #a-section resolves to the heading
html_theme = "furo"
html_title = "farmer_nb"
html_static_path = ["_static"]
html_css_files = ["farmer.css"]              # code lines wrap, long words in prose break
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
html_favicon = "favicon.svg"
add_module_names = False                     # block_forward(x, c=None), not farmer_nb.flow.block_forward(...)
toc_object_entries = False                   # a chapter's table of contents lists its sections, not every name
python_maximum_signature_line_length = 88    # longer signatures: one parameter a line
nitpicky = True                              # a reference to a farmer_nb name that is not documented warns
nitpick_ignore_regex = [(r"py:.*", r"(?!farmer_nb\\.).*")]   # torch.Tensor, int, ...: not ours
'''
CSS = '''/* Code lines wrap at the column instead of running past it (source lines reach ~170 characters, printed
   dictionaries ~280); the wrapped part goes on at the left edge. Long inline code and URLs in prose break. */
.highlight pre, div.cell_output pre, .output pre { white-space: pre-wrap; overflow-wrap: break-word; }
article p, article li, article td, article th, article dd { overflow-wrap: break-word; }   /* not `anywhere`: table
   columns keep the width of their longest word */
/* wide tables and figures scroll inside the column, never widen the page */
article .table-wrapper { max-width: 100%; overflow-x: auto; }
article img { max-width: 100%; height: auto; }
/* formulas wider than the column scroll inside it (MathJax 3 breaks no lines); inline ones only on a phone,
   where they are set as boxes (a box that scrolls sits on the line's middle, not its baseline) */
mjx-container[display="true"] { max-width: 100%; overflow-x: auto; overflow-y: hidden; }
@media (max-width: 40em) {
  mjx-container:not([display="true"]) { display: inline-block; max-width: 100%; overflow-x: auto; overflow-y: hidden;
                                        vertical-align: middle; }
}
/* API blocks: a rule above each documented name */
dl.py { border-top: 1px solid var(--color-background-border); padding-top: 0.5em; }
'''
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#2b6cb0"/><text x="8" y="12" font-size="11" text-anchor="middle" fill="white" '
           'font-family="sans-serif">F</text></svg>')


def toctree(caption, entries, hidden=False):
    return (f"```{{toctree}}\n" + (f":caption: {caption}\n" if caption else '') + ":maxdepth: 1\n"
            + (":hidden:\n" if hidden else '') + '\n' + '\n'.join(entries) + "\n```\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'_site'), help='where the HTML site goes')
    ap.add_argument('--build', default=str(ROOT/'_docs'), help='working folder (sources for Sphinx)')
    ap.add_argument('--no-execute', action='store_true', help='render library notebooks without running them (no outputs)')
    ap.add_argument('--execute-one', default=None, help=argparse.SUPPRESS)   # a worker: run one notebook in place
    args = ap.parse_args()
    if args.execute_one: sys.exit(0 if execute(Path(args.execute_one)) else 1)
    build, out = Path(args.build), Path(args.out)
    shutil.rmtree(build, ignore_errors=True)
    src, raw = build/'src', build/'raw'
    for d in (src/'tutorials'/'results', src/'tutorials'/'assignments', src/'_static', raw): d.mkdir(parents=True)
    if (ROOT/'results').exists(): shutil.copytree(ROOT/'results', build/'results')   # chapters run in raw/ read ../results
    site = pages()
    sources = {p.resolve(): src/(_doc(page) + p.suffix) for _, p, page in site if p is not None}
    link = Linker(build, sources)
    chapters = [p for s, p, _ in site if s in ('home', 'chapters')]
    api = API(chapters)
    for section, p, page in site:
        if p is None: continue
        dst = sources[p.resolve()]
        if p.suffix == '.md':
            text = link(p.read_text(encoding='utf-8'), p, dst)
            children = [os.path.relpath(src/_doc(pg), dst.parent) for s, q, pg in site          # its notebooks
                        if s == section and q is not None and q.suffix == '.ipynb']
            dst.write_text(text + '\n' + toctree(None, children, hidden=True), encoding='utf-8')
            continue
        if section in ('home', 'chapters'): shutil.copy(p, raw/p.name)
    run = [p for s, p, _ in site if s in ('home', 'chapters') and not args.no_execute]
    env1 = {**os.environ, 'OMP_NUM_THREADS': '1'}                   # one thread each: two notebooks share two cores
    one = lambda nb: subprocess.run([sys.executable, __file__, '--execute-one', str(nb)], env=env1).returncode == 0
    with ThreadPoolExecutor(min(2, os.cpu_count() or 1)) as pool:    # two at a time: the build's longest step
        for p, ok in zip(run, pool.map(one, [raw/p.name for p in run])):
            print(f"executed {p.name}", flush=True)
            if not ok: sys.exit(f"docs: {p.name} failed to execute")
    for section, p, page in site:
        if p is None or p.suffix == '.md': continue
        dst = sources[p.resolve()]
        if section in ('home', 'chapters'): clean(raw/p.name, dst, p, link, api, page)
        else: clean(p, dst, p, link)
    (src/'conf.py').write_text(CONF.format(holder=_holder()))
    (src/'favicon.svg').write_text(FAVICON)
    (src/'_static'/'farmer.css').write_text(CSS)
    (src/'api.md').write_text(api.page({pg: _title(p) for s, p, pg in site if s == 'chapters'}), encoding='utf-8')
    home = src/'index.ipynb'
    entries = lambda section: [_doc(pg) for s, _, pg in site if s == section]
    asg = [d for d in entries('assignments') if d.endswith('/index')]          # the assignments' own page
    nb = nbformat.read(home, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell('\n'.join([
        toctree('Chapters', entries('chapters')), toctree('Tutorials', entries('tutorials') + asg),
        toctree('Results', entries('results')), toctree('Reference', entries('reference'))])))
    nbformat.write(nb, home)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    log = build/'warnings.log'
    done = subprocess.run([sys.executable, '-m', 'sphinx', '-q', '-W', '--keep-going', '-w', str(log), '-b', 'html',
                           str(src), str(out)], env=env)
    warnings = [l for l in log.read_text(encoding='utf-8').splitlines() if 'WARNING' in l or 'ERROR' in l]
    print(f"docs: {len(warnings)} warning(s)")
    if done.returncode or warnings: sys.exit(f"docs: the build failed with {len(warnings)} warning(s), listed above")
    print(f"site: {out/'index.html'}")


if __name__ == '__main__':
    main()
