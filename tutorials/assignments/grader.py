"Autograder helpers: load a student's functions from a notebook (the code cells marked `#| export`)."
import json, os
from pathlib import Path

HERE = Path(__file__).resolve().parent

def notebook(default):
    "The notebook to grade: $FARMER_NOTEBOOK, or the starter `default` next to the tests."
    return Path(os.environ.get('FARMER_NOTEBOOK') or HERE/default)

def load(nb_path, *names):
    "Run the notebook's `#| export` cells in a fresh namespace and return the functions `names`."
    cells = json.loads(Path(nb_path).read_text())['cells']
    ns = {'__name__': 'student_notebook'}
    for c in cells:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'code' and src.lstrip().startswith('#| export'):
            exec(compile(src, str(nb_path), 'exec'), ns)
    missing = [n for n in names if n not in ns]
    assert not missing, f"{nb_path}: define {', '.join(missing)} in a cell that starts with '#| export'"
    return ns[names[0]] if len(names) == 1 else [ns[n] for n in names]
