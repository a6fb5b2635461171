"""A/B of training-step options on the paper-shaped flow: each variant runs `farmer bench train` in a fresh process.

    python scripts/mfu_variants.py --out runs/mfu_variants                  # every variant, batch 64, bf16, reduce-overhead
    python scripts/mfu_variants.py --variants folded tune --budget 300     # some of them, within 5 minutes
    python scripts/mfu_variants.py --compile none --preset tarflow-tiny --batch 8 --device cpu   # a smoke test, eager
    python scripts/mfu_variants.py --preset imagenet256-p16 --variants folded --compile regional   # each block compiled alone
    python scripts/mfu_variants.py --preset imagenet256-p8 --batch 16 --variants blocks-ro --tune   # and its kernels tuned

Variants (one change each, against `folded`, the library's default):
  folded       the library: `optimizer_step` hands the clip factor max(1, |g|/c) to the fused AdamW as its grad_scale
  clip-pass    gradient clipping as a pass of its own (`clip_grad_norm_`), then the fused AdamW (the library before)
  flash        SDPA's flash-attention backend instead of cuDNN's
  tune         Inductor's coordinate-descent tuning of the kernels it generates (block sizes, warps)
  tune-pointwise  tune, and Inductor's autotuning of pointwise kernels (max_autotune_pointwise)
  fp32-residual  the flow trunk's residual stream in fp32 (`farmer_nb.flow.amp_residual` as the identity), as
               before it was kept in the autocast dtype
  regional-ma  no whole-model compile: each transformer layer compiled on its own with mode 'max-autotune'
               (Triton matmul templates that can fuse GELU and bias into the matmul; all 32 layers share one
               compiled graph, so autotuning runs once per matmul shape)
  fp8          the Linear layers inside the transformer layers (attention and MLP) as torchao's Float8Linear
               (tensorwise dynamic scaling, float8 matmuls on H100/H200); the flow's input and output
               projections, the AR prior's heads and all affine and log-det math stay as they are
               (needs `pip install torchao`)
  liger-ln     every LayerNorm of the transformer layers as Liger-Kernel's fused Triton LayerNorm, weights
               copied (needs `pip install liger-kernel`)
  blocks       no whole-model compile: each flow block (transformer, projections, affine map and log-det) and
               each layer of the AR prior compiled on its own, default mode (`compile_regions`, what
               `--compile regional` does; the 28 blocks of the paper's flow share two graphs)
  blocks-ro    blocks, each region with mode 'reduce-overhead' (CUDA graphs per region)
Both ecosystem variants are optional: the library does not depend on either package.
Prints one line per variant, writes <variant>.json (the bench's rows) and summary.json into --out. A variant
that runs out of the time left is reported as such; one with less than 30 s left is not started.
"""
import argparse, json, subprocess, sys, time
from pathlib import Path

VARIANTS = ('folded', 'clip-pass', 'flash', 'tune', 'tune-pointwise', 'fp32-residual', 'regional-ma', 'fp8',
            'liger-ln', 'blocks', 'blocks-ro')


def to_float8(model):
    "torchao float8 training for the Linear layers of every transformer layer (`Block`); the rest untouched."
    from torchao.float8 import convert_to_float8_training
    from farmer_nb.transformer import Block
    for m in model.modules():
        if isinstance(m, Block): convert_to_float8_training(m)
    return model


def to_liger_layernorm(model):
    "Each `nn.LayerNorm` of the transformer layers replaced by Liger-Kernel's LayerNorm (same weights and eps)."
    import torch
    from liger_kernel.transformers import LigerLayerNorm
    from farmer_nb.transformer import Block, Transformer
    for m in model.modules():
        if not isinstance(m, (Block, Transformer)): continue
        for name, ln in list(m.named_children()):
            if not isinstance(ln, torch.nn.LayerNorm): continue
            new = LigerLayerNorm(ln.normalized_shape[0], eps=ln.eps, bias=True).to(ln.weight.device)
            with torch.no_grad(): new.weight.copy_(ln.weight); new.bias.copy_(ln.bias)
            setattr(m, name, new)
    return model


def patch_build(change):
    "Make `farmer bench` build its model through `change` (applied before it is moved or compiled)."
    import farmer_nb.model
    build = farmer_nb.model.build_model
    farmer_nb.model.build_model = lambda cfg: change(build(cfg))


def clip_pass_step(net, opt, y, c, grad_clip=1.0, amp_dtype=None):
    "The training step with clipping as its own pass over the gradients, then the fused AdamW (skipping on the device)."
    import torch
    with torch.autocast(y.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        loss = net(y, c, validate=False).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    ok = torch.isfinite(loss) & torch.isfinite(grad_norm)
    opt.found_inf = (~ok).float()
    opt.step(); del opt.found_inf
    opt.zero_grad(set_to_none=True)
    return loss.detach(), grad_norm.detach(), ok


def run_variant(args):
    "In the child process: apply the variant's change, then run the benchmark."
    import torch, farmer_nb.train, farmer_nb.flow
    if args.variant == 'clip-pass': farmer_nb.train.optimizer_step = clip_pass_step
    if args.variant == 'fp32-residual': farmer_nb.flow.amp_residual = lambda h: h
    if args.variant == 'flash':                                   # the backend is chosen while tracing: no cached graphs
        torch.backends.cuda.enable_cudnn_sdp(False); torch._inductor.config.force_disable_caches = True
    if args.variant.startswith('tune') or args.tune: torch._inductor.config.coordinate_descent_tuning = True
    if args.variant == 'tune-pointwise': torch._inductor.config.max_autotune_pointwise = True
    compile_args = [] if args.compile == 'none' else ['--compile', args.compile]
    if args.variant == 'fp8': patch_build(to_float8)
    if args.variant == 'liger-ln': patch_build(to_liger_layernorm)
    if args.variant == 'regional-ma':
        import farmer_nb.model
        from farmer_nb.transformer import Block
        torch._dynamo.config.cache_size_limit = torch._dynamo.config.recompile_limit = 64
        build = farmer_nb.model.build_model
        def build_regional(cfg):
            model = build(cfg)
            for m in model.modules():
                if isinstance(m, Block): m.compile(mode='max-autotune')
            return model
        farmer_nb.model.build_model, compile_args = build_regional, []
    if args.variant in ('blocks', 'blocks-ro'):
        torch._dynamo.config.cache_size_limit = torch._dynamo.config.recompile_limit = 64
        mode = 'reduce-overhead' if args.variant == 'blocks-ro' else None
        from farmer_nb.train import compile_regions                # the library's regional compile
        patch_build(lambda model: compile_regions(model, mode)); compile_args = []
    from farmer_nb.cli import main as farmer
    farmer(['bench', 'train', '--preset', args.preset, '--precision', 'bf16', *compile_args, '--device', args.device,
            '--batches', str(args.batch), '--reps', str(args.reps), '--out', str(Path(args.out)/f'{args.variant}.json')])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument('--preset', default='imagenet256-p16-flow8')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--compile', default='reduce-overhead', help="torch.compile mode, or 'none' for eager")
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--budget', type=float, default=560, help='seconds for all variants together')
    ap.add_argument('--tune', action='store_true',
                    help="every variant with Inductor's coordinate-descent tuning (as the 'tune' variant)")
    ap.add_argument('--out', default='runs/mfu_variants')
    ap.add_argument('--variant', default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant: return run_variant(args)
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    t0, summary = time.perf_counter(), []
    for v in args.variants:
        left = args.budget - (time.perf_counter() - t0)
        if left < 30: summary.append(dict(variant=v, status='not run: out of time')); continue
        cmd = [sys.executable, __file__, '--variant', v, '--preset', args.preset, '--batch', str(args.batch),
               '--compile', args.compile, '--device', args.device, '--reps', str(args.reps), '--out', str(out),
               *(['--tune'] if args.tune else [])]
        t = time.perf_counter()
        try: rc = subprocess.run(cmd, timeout=left).returncode
        except subprocess.TimeoutExpired: rc = 'timeout'
        row = dict(variant=v, status='ok' if rc == 0 else f'failed ({rc})', seconds=round(time.perf_counter() - t, 1),
                   tune=args.tune or v.startswith('tune'))
        if rc == 0: row.update(json.loads((out/f'{v}.json').read_text())['rows'][0])
        summary.append(row)
        print(f"== {v}: " + (f"{row['ms_per_step']:.1f} ms/step, MFU {100 * row['mfu']:.1f} %" if rc == 0 else row['status'])
              + f" ({row['seconds']} s with compilation)", flush=True)
        (out/'summary.json').write_text(json.dumps(summary, indent=1))


if __name__ == '__main__':
    main()
