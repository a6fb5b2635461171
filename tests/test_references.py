"""The project stands alone: nothing a reader clones points at a document that is not in the repository.

Scanned: the chapters (nbs/), the tutorials with their assignments, solutions and graders (tutorials/), the
scripts, README.md, the package source (farmer_nb/), pyproject.toml and these tests. Two checks:

1. no file names an outside document: the design notes the project started from (SPEC.md, ANCHORS.md,
   EVALUATION.md, NOTEBOOKS.md, ARCHITECTURE.md), a "reading A<n>", an issue ("issue #<n>", "the issue"), a
   "design card" or a path into ../shared;
2. every relative markdown link `[text](path)` and every `something.md` / `something.ipynb` mention resolves to a
   file (or folder) of the repository, and a `#anchor` on a link to a notebook or markdown file names one of its
   headings.

Failures are listed as file:line: text. Notebooks are read cell by cell (sources and text outputs, never images).
"""
import json, re, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve()

OUTSIDE = [
    (re.compile(r'\b(?:SPEC|ANCHORS|EVALUATION|NOTEBOOKS|ARCHITECTURE)(?:\.md)?\b'), 'a design document'),
    (re.compile(r'\breadings?\s+A\d+', re.I), 'a reading'),
    (re.compile(r'\(A\d{1,2}(?:\s*(?:,|and)\s*A\d{1,2})*\)'), 'a reading'),
    (re.compile(r'\bissues?\s*#\s*\d+', re.I), 'an issue'),
    (re.compile(r'\bthe issue\b', re.I), 'an issue'),
    (re.compile(r'\bdesign cards?\b', re.I), 'a design card'),
    (re.compile(r'(?:\.\./)+shared\b|\bshared/design\b'), 'the shared folder'),
]
URL = re.compile(r'\b[a-z][a-z0-9+.-]*://\S+', re.I)
LINK = re.compile(r'\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
MENTION = re.compile(r'(?<![\w/.-])((?:\.{1,2}/)*[\w.-]+(?:/[\w.-]+)*\.(?:md|ipynb))(?![\w-])')
CODE_SPAN = re.compile(r'(`+)(?:(?!\1).)+?\1')
PLACEHOLDER = re.compile(r'(?:^|/)(?:NN|XX)_|path/to/|(?:^|/)(?:my|your)[_.]')   # `nbs/NN_name.ipynb`, `my_gmm.ipynb`
GENERATED = {'api.md'}                                   # written into the docs build by scripts/docs.py
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$')


def scanned_files():
    "The files a reader gets and reads: chapters, tutorials, assignments and graders, scripts, README, package, tests."
    pats = ['nbs/*.ipynb', 'tutorials/**/*.ipynb', 'tutorials/**/*.py', 'tutorials/**/*.md', 'scripts/*.py',
            'scripts/*.sh', 'farmer_nb/*.py', 'tests/*.py', 'README.md', 'pyproject.toml']
    files = {p for pat in pats for p in ROOT.glob(pat) if '.ipynb_checkpoints' not in p.parts}
    return sorted(p for p in files if p.resolve() != SELF)


def repo_paths():
    "Files of the repository (tracked or not ignored) and the folders that hold them, relative to the root."
    try:
        out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()
        files = {f for f in out if (ROOT/f).is_file()}
    except (OSError, subprocess.SubprocessError):                   # not a git checkout: what is on disk
        files = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob('*') if p.is_file() and '.git' not in p.parts}
    dirs = {'.'} | {Path(f).parents[i].as_posix() for f in files for i in range(len(Path(f).parts) - 1)}
    return files, dirs, {f.rsplit('/', 1)[-1] for f in files}


def units(path):
    "(line number or None, kind, text, cell) for every line a reader sees: kind is 'markdown', 'code' or 'text'."
    raw = path.read_text(encoding='utf-8')
    if path.suffix != '.ipynb':
        kind = 'markdown' if path.suffix == '.md' else 'text'
        return [(i, kind, line, 0) for i, line in enumerate(raw.splitlines(), 1)]
    lines, cursor, out = raw.splitlines(), 0, []
    def locate(text):
        nonlocal cursor
        needle = json.dumps(text, ensure_ascii=False)[1:-1]
        for j in range(cursor, len(lines)):
            if needle in lines[j]: cursor = j; return j + 1
        return None
    def as_lines(src): return (src if isinstance(src, str) else ''.join(src)).splitlines(keepends=True)
    for n, cell in enumerate(json.loads(raw)['cells']):
        kind = 'markdown' if cell['cell_type'] == 'markdown' else 'code'
        for line in as_lines(cell.get('source', '')):
            out.append((locate(line), kind, line.rstrip('\n'), n))
        for o in cell.get('outputs', []):
            texts = [o.get('text', '')] + [o.get('data', {}).get(k, '') for k in ('text/plain', 'text/markdown')]
            for t in texts:
                for line in as_lines(t): out.append((locate(line), 'text', line.rstrip('\n'), n))
    return out


def slug(title):
    "The anchor a heading gets (GitHub and MyST style): lower case, punctuation dropped, spaces → hyphens."
    title = re.sub(r'[`*$\\]', '', title.strip().lower()).replace(' ', '-')
    return re.sub(r'[^\w\-]', '', title)


_anchors = {}
def anchors(path):
    "Heading anchors of a notebook's markdown cells or a markdown file."
    if path not in _anchors:
        fence, found = False, set()
        for _, kind, line, _ in units(path):
            if kind != 'markdown': continue
            if line.lstrip().startswith('```'): fence = not fence
            m = None if fence else HEADING.match(line)
            if m: found.add(slug(m.group(2)))
        _anchors[path] = found
    return _anchors[path]


def resolve(target, here, files, dirs):
    "The repository path `target` names, from the folder of `here` or from the root, or None."
    for base in (here.parent, ROOT):
        p = (base/target).resolve()
        try: rel = p.relative_to(ROOT).as_posix()
        except ValueError: continue
        if rel in files or rel.rstrip('/') in dirs: return p
    return None


def problems():
    "Every reference to something outside the repository, as 'file:line: what'."
    files, dirs, names = repo_paths()
    found = []
    for path in scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        fence, cell = False, None
        for lineno, kind, text, n in units(path):
            where = f"{rel}:{lineno if lineno else '?'}"
            if n != cell: fence, cell = False, n
            if kind == 'markdown' and text.lstrip().startswith(('```', '~~~')): fence = not fence
            for pat, what in OUTSIDE:
                for m in pat.finditer(text): found.append(f"{where}: names {what}: {m.group(0)!r} in {text.strip()[:160]!r}")
            if path.suffix == '.toml': continue
            bare = URL.sub('', text)
            if kind == 'markdown' and not fence:
                for m in LINK.finditer(CODE_SPAN.sub('', bare)):
                    target = m.group(1)
                    if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I): continue        # mailto:, data: ...
                    file, _, anchor = target.partition('#')
                    if not file:                                                     # a section of this page
                        if path.suffix in ('.ipynb', '.md') and anchor and anchor not in anchors(path):
                            found.append(f"{where}: link to a missing section #{anchor}")
                        continue
                    dest = resolve(file.split('?')[0], path, files, dirs)
                    if dest is None: found.append(f"{where}: link to a missing file: {target!r}")
                    elif anchor and dest.suffix in ('.ipynb', '.md') and anchor not in anchors(dest):
                        found.append(f"{where}: link to a missing section: {target!r}")
                bare = LINK.sub('', bare)
            for m in MENTION.finditer(bare):
                name = m.group(1)
                if PLACEHOLDER.search(name) or name in GENERATED or any(p.search(name) for p, _ in OUTSIDE): continue
                if name not in names and resolve(name, path, files, dirs) is None:      # a bare name: anywhere
                    found.append(f"{where}: names a file that is not in the repository: {name!r} in {text.strip()[:160]!r}")
    return found


def test_no_outside_documents_and_every_link_resolves():
    "Every scanned file cites only the paper and the project's own files; the list says file:line: what."
    found = problems()
    assert not found, f"{len(found)} reference(s) to documents outside the repository:\n" + '\n'.join(found)


def test_the_checks_catch_what_they_should():
    "The patterns flag each kind of outside reference and leave ordinary prose alone."
    bad = ['see SPEC.md §4', '(ANCHORS §5.2)', 'reading A5', '(A11)', 'issue #2', 'the issue asks for',
           'the design card', '../shared/design/x.md', 'readings A4 and A5', 'EVALUATION.md §1.1']
    good = ['Algorithm 1', 'App. A.2', 'Eq. 14', 'paper §3.3', 'an A100 GPU', 'one issue remains', 'shared mixture',
            'Table 6', 'FARMER Fig. 7']
    hit = lambda s: any(p.search(s) for p, _ in OUTSIDE)
    assert all(hit(s) for s in bad), [s for s in bad if not hit(s)]
    assert not any(hit(s) for s in good), [s for s in good if hit(s)]
    assert slug("The normalisation of the loss") == 'the-normalisation-of-the-loss'
    assert slug("Eq. 14's `nll`") == 'eq-14s-nll'
    assert [m.group(1) for m in LINK.finditer('a [b](c.ipynb#d) and ![e](../f.png)')] == ['c.ipynb#d', '../f.png']
    assert [m.group(1) for m in MENTION.finditer('`nbs/06_model.ipynb`, data/README.md and x.mdx')] == \
        ['nbs/06_model.ipynb', 'data/README.md']
