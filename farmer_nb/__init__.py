"FARMER (Flow AutoRegressive Transformer over Pixels), notebook-first in PyTorch."
__version__ = "0.1.0"
