"Pieces shared by the measurement scripts: common options, the data, and a record of the environment."
import platform
from pathlib import Path
import torch
from farmer_nb.data import FashionMNIST

def add_common_args(ap, out):
    "Options every run takes."
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--lr', type=float, default=2e-3, help='peak learning rate')
    ap.add_argument('--data', default=None, help='folder with the Fashion-MNIST IDX files (default: the search path)')
    ap.add_argument('--out', default=out, help='output folder')
    ap.add_argument('--subset', type=int, default=None, help='use only the first n train/test images (smoke tests)')
    ap.add_argument('--max-steps', type=int, default=None, help='stop each run after this many steps (smoke tests)')
    ap.add_argument('--seed', type=int, default=0)

def setup(args):
    "(device, output folder, (train images, train labels, test images, test labels), environment record)."
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    train, test = FashionMNIST('train', args.data), FashionMNIST('test', args.data)
    data = [train.images, train.labels, test.images, test.labels]
    if args.subset: data = [t[:args.subset] for t in data]
    env = dict(device=torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or 'cpu',
               torch=torch.__version__, python=platform.python_version())
    print(env, flush=True)
    return device, out, data, env
