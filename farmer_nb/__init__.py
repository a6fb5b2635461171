"FARMER (Flow AutoRegressive Transformer over Pixels), notebook-first in PyTorch."
__version__ = "0.1.0"

import os
# OpenMP threads that busy-wait make PyTorch on a CPU shared with other busy processes 10-40x
# slower (09_train); sleeping threads cost little on an idle machine. Read when torch is first
# imported, so import farmer_nb first.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
