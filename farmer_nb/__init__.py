"FARMER (Flow AutoRegressive Transformer over Pixels), notebook-first in PyTorch."
__version__ = "0.1.0"

import os
# OpenMP threads that busy-wait make PyTorch on a CPU shared with other busy processes 10-40x
# slower (09_train); sleeping threads cost little on an idle machine. Read when torch is first
# imported, so import farmer_nb first.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import importlib, typing

# The API a user needs first, by module. Each name is imported from its module on first use
# (PEP 562), so `import farmer_nb` stays fast, imports neither torch nor matplotlib, and the line
# above runs before torch.
_API = {
    'model': ('Farmer', 'GaussianFlow', 'DensityModel', 'FarmerConfig', 'GaussianFlowConfig',
              'get_config', 'build_model', 'PRESETS', 'PRETRAINED', 'load_pretrained', 'load_model',
              'save_model'),
    'data': ('FashionMNIST', 'Emoji64', 'ImageFolder'),
    'train': ('fit',),
    'metrics': ('evaluate_bpd',),
    'guidance': ('NaiveGuidance', 'Resampling'),
    'viz': ('save_image_grid',),
}
__all__ = [name for names in _API.values() for name in names]
_MODULE_OF = {name: module for module, names in _API.items() for name in names}


def __getattr__(name: str) -> typing.Any:
    "`farmer_nb.Farmer`, `from farmer_nb import Farmer`: import the name's module the first time."
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f'.{_MODULE_OF[name]}', __name__), name)
    globals()[name] = value                                  # later look-ups skip this function
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(__all__))


if typing.TYPE_CHECKING:                                     # what type checkers and editors see
    from .model import (Farmer, GaussianFlow, DensityModel, FarmerConfig, GaussianFlowConfig,
                        get_config, build_model, PRESETS, PRETRAINED, load_pretrained, load_model,
                        save_model)
    from .data import FashionMNIST, Emoji64, ImageFolder
    from .train import fit
    from .metrics import evaluate_bpd
    from .guidance import NaiveGuidance, Resampling
    from .viz import save_image_grid
