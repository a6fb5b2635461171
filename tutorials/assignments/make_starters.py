"""Make the starter notebooks from the reference solutions: python tutorials/assignments/make_starters.py [--check]

Every block between '# BEGIN SOLUTION' and '# END SOLUTION' in solutions/*.ipynb becomes a
`raise NotImplementedError(...)` at the same indentation, and outputs are cleared. --check fails if the
committed starters differ from what this would write (CI runs it).
"""
import re, sys
from pathlib import Path
import nbformat

HERE = Path(__file__).resolve().parent
BLOCK = re.compile(r'^([ \t]*)# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?', re.S | re.M)

def starter(src):
    nb = nbformat.read(src, as_version=4)
    for c in nb.cells:
        if c.cell_type == 'code':
            c.source = BLOCK.sub(lambda m: f"{m.group(1)}raise NotImplementedError('your code here')\n", c.source + '\n').rstrip('\n')
            c.outputs, c.execution_count = [], None
    return nbformat.writes(nb) + '\n'

if __name__ == '__main__':
    stale = []
    for src in sorted((HERE/'solutions').glob('*.ipynb')):
        text, dst = starter(src), HERE/src.name
        if '--check' in sys.argv:
            if not dst.exists() or dst.read_text() != text: stale.append(dst.name)
        else: dst.write_text(text)
    if stale: sys.exit(f"starters out of date: {', '.join(stale)}; run python tutorials/assignments/make_starters.py")
