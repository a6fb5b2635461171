"""A/B of the flow trunk's residual stream under bf16 autocast: the autocast dtype (the library) against fp32.

    python scripts/mfu_residual_ab.py                       # paper-shaped flow, batch 64, compiled with CUDA graphs

Each arm runs `farmer bench train` in its own process (fresh compile caches); the fp32 arm replaces
farmer_nb.flow.amp_residual by the identity, which is what the flow did before the cast was added.
"""
import argparse, subprocess, sys

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', default='imagenet256-p16-flow8')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--compile', default='reduce-overhead')
    ap.add_argument('--arm', choices=['amp', 'fp32'], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm is None:
        for arm in ('amp', 'fp32'):
            print(f"== residual stream: {arm}", flush=True)
            subprocess.run([sys.executable, __file__, '--arm', arm, '--preset', args.preset, '--batch', str(args.batch),
                            '--compile', args.compile], check=True)
        return
    import farmer_nb.flow
    if args.arm == 'fp32': farmer_nb.flow.amp_residual = lambda h: h
    from farmer_nb.cli import main as farmer
    farmer(['bench', 'train', '--preset', args.preset, '--precision', 'bf16', '--compile', args.compile,
            '--batches', str(args.batch), '--reps', '5'])

if __name__ == '__main__':
    main()
