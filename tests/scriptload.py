"Import a file of scripts/ as a module, for tests of the measurement and build scripts."
import importlib.util, sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1]/'scripts'


def load_script(name, module_name=None):
    "scripts/<name>.py as a module (scripts/ on sys.path, for the helpers they import)."
    if str(SCRIPTS) not in sys.path: sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(module_name or f'script_{name}', SCRIPTS/f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
