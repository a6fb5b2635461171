"""Bad input to the `farmer` command, table-driven: every case ends with exit status 2 and one line on
stderr that names the option (and the accepted range), never a traceback; plus interrupted runs, failures
after training, the debug switch, and a property test over the numeric options of `sample` and `eval`."""
import contextlib, io, json, math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

import farmer_nb.cli as cli
from farmer_nb.cli import main
from farmer_nb.model import build_model, get_config, load_model, randomize_model_, save_model

GREY = ['--size', '8', '--channels', '1']        # own images as farmer-tiny takes them: 1×8×8


def run(argv):
    "main(argv) in this process: (exit status, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def write_images(folder, classes, n, size, mode, seed=0):
    "n random PNG images per class in folder/<class>/."
    g = torch.Generator().manual_seed(seed)
    for k in range(classes):
        (folder/f'c{k}').mkdir(parents=True, exist_ok=True)
        for i in range(n):
            px = torch.randint(0, 256, (size, size, 3 if mode == 'RGB' else 1), generator=g, dtype=torch.uint8)
            Image.fromarray(px.squeeze(-1).numpy(), mode).save(folder/f'c{k}'/f'{i}.png')
    return folder


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    "Models, images and broken files of every kind the table refers to by name."
    d = tmp_path_factory.mktemp('cli')
    from farmer_nb.distill import Student, save_student
    tiny = randomize_model_(build_model(get_config('farmer-tiny')), std=0.05)
    model = save_model(tiny, d/'tiny.safetensors')
    flow = save_model(build_model(get_config('tarflow-tiny')), d/'flow.safetensors')
    other = build_model(get_config('farmer-tiny', n_blocks=3))
    other.student = Student(other.flow)
    student = save_student(other, d/'student_other.safetensors')         # a student of another config
    junk = d/'junk.safetensors'; junk.write_bytes(b'not a checkpoint at all')
    empty = d/'empty.safetensors'; empty.write_bytes(b'')
    rgb = write_images(d/'rgb', classes=1, n=3, size=8, mode='RGB')
    grey = write_images(d/'grey', classes=4, n=10, size=8, mode='L')
    bad = write_images(d/'bad', classes=1, n=2, size=8, mode='L')
    (bad/'c0'/'x.png').write_text('this is not an image')
    blocked = d/'blocked'; blocked.write_text('a file where a folder should be')
    junk_run = d/'junk_run'; junk_run.mkdir()
    (junk_run/'checkpoint.safetensors').write_bytes(b'\x00' * 64)
    run_dir = d/'run'                                                     # a real checkpoint, stopped at step 2 of 4
    code, _, err = run(['train', '--preset', 'farmer-tiny', '--images', str(grey), *GREY, '--steps', '4',
                        '--batch-size', '8', '--stop-at-step', '2', '--out', str(run_dir)])
    assert code == 0, err
    return dict(model=str(model), flow=str(flow), student=str(student), junk=str(junk), empty=str(empty),
                rgb=str(rgb), grey=str(grey), bad=str(bad), blocked=str(blocked), junk_run=str(junk_run),
                run=str(run_dir))


TRAIN = ['train', '--preset', 'farmer-tiny', '--images', '{grey}', *GREY, '--batch-size', '8']
SAMPLE = ['sample', '--model', '{model}', '--per-class', '1', '--out', '{tmp}/g.png']
EVAL = ['eval', '--model', '{model}', '--images', '{grey}', *GREY]

CASES = [  # (id, argv, substring of the one-line message); {tmp} is a fresh folder, the other names are files above
    # farmer train: presets, overrides, numbers, contradictions, data, files
    ('unknown preset', ['train', '--preset', 'cifar'], "--preset: invalid choice: 'cifar'"),
    ('unknown command', ['fit'], "invalid choice: 'fit'"),
    ('non-number option', ['train', '--epochs', 'ten'], "--epochs: invalid int value: 'ten'"),
    ('option of another command', ['sample', '--model', '{model}', '--labels', '3'],
     "farmer sample: error: unrecognized arguments: --labels 3 (see farmer sample --help)"),
    ('unknown config field', ['train', '--set', 'widht=3', '--out', '{tmp}'],
     "has no field 'widht' (fields: image_shape"),
    ('override of wrong type', ['train', '--set', 'd_I=four', '--out', '{tmp}'],
     "--set d_I: expected int, got 'four'"),
    ('empty override', ['train', '--set', 'd_I=', '--out', '{tmp}'],
     "--set d_I: expected int, got ''"),
    ('override out of range', ['train', '--set', 'd_I=99', '--out', '{tmp}'],
     'd_I: expected 1 <= d_I <= d = 16'),
    ('override without =', ['train', '--set', 'd_I', '--out', '{tmp}'],
     "--set: expected field=value, got 'd_I'"),
    ('boolean typo', ['train', '--set', 'mixing=ture', '--out', '{tmp}'],
     '--set mixing: expected true or false'),
    ('NaN float override', ['train', '--set', 'clip=nan', '--out', '{tmp}'],
     "--set clip: expected a finite number, got 'nan'"),
    ('zero batch size', ['train', '--batch-size', '0', '--out', '{tmp}'],
     '--batch-size: expected an integer >= 1, got 0'),
    ('negative learning rate', ['train', '--lr=-1e-3', '--out', '{tmp}'],
     '--lr: expected a number in (0, 1], got -0.001'),
    ('NaN learning rate', ['train', '--lr', 'nan', '--out', '{tmp}'],
     '--lr: expected a number in (0, 1], got nan'),
    ('huge learning rate', ['train', '--lr', '1e9', '--out', '{tmp}'],
     '--lr: expected a number in (0, 1], got 1000000000.0'),
    ('infinite minutes', ['train', '--minutes', 'inf', '--out', '{tmp}'],
     '--minutes: expected a number in (0, 100000], got inf'),
    ('zero steps', ['train', '--steps', '0', '--out', '{tmp}'],
     '--steps: expected an integer >= 1, got 0'),
    ('steps and epochs', ['train', '--steps', '5', '--epochs', '1', '--out', '{tmp}'],
     '--steps, --epochs: give one of them'),
    ('epochs and minutes', ['train', '--epochs', '1', '--minutes', '1', '--out', '{tmp}'],
     '--epochs, --minutes: give one of them'),
    ('EMA decay of 1', ['train', '--ema', '1', '--out', '{tmp}'],
     '--ema: expected a number in [0, 1), got 1.0'),
    ('negative sample interval', ['train', '--sample-every=-1', '--out', '{tmp}'],
     '--sample-every: expected an integer >= 0, got -1'),
    ('negative stop-after', ['train', '--stop-after=-2', '--out', '{tmp}'],
     '--stop-after: expected a number in (0, 100000], got -2.0'),
    ('seed too large', ['train', '--seed', str(2 ** 64), '--out', '{tmp}'],
     f'--seed: expected an integer in [0, {2 ** 63}), got {2 ** 64}'),
    ('negative seed', ['train', '--seed=-1', '--out', '{tmp}'],
     f'--seed: expected an integer in [0, {2 ** 63}), got -1'),
    ('malformed device', ['train', '--device', 'gpu', '--out', '{tmp}'],
     "--device: expected cpu, cuda, cuda:N or mps, got 'gpu'"),
    ('absent GPU', ['train', '--device', 'cuda:99', '--out', '{tmp}'],
     '--device: cuda:99 asked for, but this machine has'),
    ('batch larger than data',
     ['train', '--images', '{rgb}', '--batch-size', '64', '--steps', '1', '--out', '{tmp}'],
     '--batch-size: 64 is larger than the dataset'),
    ('missing image folder', ['train', '--images', '{tmp}/nowhere', '--out', '{tmp}'],
     'nowhere is not a folder'),
    ('non-image named x.png', ['train', '--images', '{bad}', '--out', '{tmp}'],
     'is not a readable PNG/JPEG image'),
    ('image size 0', [*TRAIN[:5], '--size', '0', '--out', '{tmp}'],
     '--size: expected an integer in [1, 1024], got 0'),
    ('test images out of range', [*TRAIN, '--steps', '1', '--test-n', '1000', '--out', '{tmp}'],
     '--test-n: expected an integer in [1, 4]'),
    ('output folder is a file', [*TRAIN, '--steps', '1', '--out', '{blocked}'],
     '--out: cannot create the folder'),
    ('tensorboard folder is a file', [*TRAIN, '--steps', '1', '--tensorboard', '{blocked}', '--out', '{tmp}'],
     '--tensorboard: cannot create the folder'),
    ('init from another config',
     ['train', '--preset', 'fmnist-cmp', '--init', '{model}', '--out', '{tmp}'],
     'checkpoint is from another config'),
    ('init and resume together', ['train', '--init', '{model}', '--resume', '--out', '{tmp}'],
     '--init: starts a new run'),
    ('init from a missing file',
     [*TRAIN, '--steps', '1', '--init', '{tmp}/none.safetensors', '--out', '{tmp}'],
     '--init: no such file'),
    ('corrupted checkpoint', [*TRAIN, '--steps', '4', '--resume', '--out', '{junk_run}'],
     '--resume: '),
    ('resume, other settings',
     [*TRAIN, '--steps', '4', '--lr', '1e-4', '--resume', '--out', '{run}'],
     'written by a run with other settings: lr'),
    # farmer sample
    ('missing model file', ['sample', '--model', '{tmp}/none.safetensors', '--out', '{tmp}/g.png'],
     '--model: no such file:'),
    ('corrupted model file', ['sample', '--model', '{junk}', '--out', '{tmp}/g.png'], '--model: '),
    ('empty model file', ['sample', '--model', '{empty}', '--out', '{tmp}/g.png'],
     'not a readable safetensors checkpoint'),
    ('a folder as model', ['sample', '--model', '{tmp}', '--out', '{tmp}/g.png'],
     '--model: no such file'),
    ('a student as model', ['sample', '--model', '{student}', '--out', '{tmp}/g.png'],
     "format 'farmer_nb.student/1'"),
    ('zero samples per class', [*SAMPLE, '--per-class', '0'],
     '--per-class: expected an integer in [1, 1000], got 0'),
    ('a billion per class', [*SAMPLE, '--per-class', '1000000000'],
     '--per-class: expected an integer in [1, 1000]'),
    ('infinite w', [*SAMPLE, '--guidance', 'naive', '--w', 'inf'],
     '--w: expected a number in [-1, 100], got inf'),
    ('NaN w', [*SAMPLE, '--guidance', 'resampling', '--w', 'nan'],
     '--w: expected a number in [-1, 100], got nan'),
    ('w below -1', [*SAMPLE, '--guidance', 'naive', '--w=-2'],
     '--w: expected a number in [-1, 100], got -2.0'),
    ('w without guidance', [*SAMPLE, '--w', '1'],
     '--w: applies to --guidance naive or resampling only'),
    ('T_s with naive guidance', [*SAMPLE, '--guidance', 'naive', '--T-s', '1'],
     '--T-s: applies to --guidance resampling only'),
    ('negative gamma', [*SAMPLE, '--gamma=-1'], '--gamma: expected a number in [0, 100], got -1.0'),
    ('NaN T_sigma', [*SAMPLE, '--T-sigma', 'nan'],
     '--T-sigma: expected a number in [0, 100], got nan'),
    ('infinite T_sigma_v', [*SAMPLE, '--guidance', 'resampling', '--T-sigma-v', 'inf'],
     '--T-sigma-v: expected a number in [0, 100]'),
    ('no candidates', [*SAMPLE, '--guidance', 'resampling', '--s', '0'],
     '--s: expected an integer in [1, 100], got 0'),
    ('guidance on a flow',
     ['sample', '--model', '{flow}', '--guidance', 'resampling', '--out', '{tmp}/g.png'],
     '--guidance: resampling needs a FARMER model'),
    ('gamma on a flow', ['sample', '--model', '{flow}', '--gamma', '0.5', '--out', '{tmp}/g.png'],
     "--gamma: scales FARMER's redundant channels"),
    ('zero temperature, flow',
     ['sample', '--model', '{flow}', '--T-sigma', '0', '--out', '{tmp}/g.png'],
     '--T-sigma: expected a number in (0, 100]'),
    ('not an image file name', [*SAMPLE[:-1], '{tmp}/g.gif'],
     '--out: expected a file name ending in .png or .jpg or .jpeg'),
    ('a folder as output', [*SAMPLE[:-1], '{tmp}/dir.png'], '--out: '),
    ('unwritable output', [*SAMPLE[:-1], '/proc/farmer/g.png'],
     '--out: cannot create the folder /proc/farmer'),
    # farmer eval
    ('negative n', [*EVAL, '--n=-5'], '--n: expected an integer >= 1, got -5'),
    ('zero n', [*EVAL, '--n', '0'], '--n: expected an integer >= 1, got 0'),
    ('n beyond the split', [*EVAL, '--n', '20000'],
     '--n: expected an integer in [1, 4], got 20000'),
    ('negative quality', [*EVAL, '--quality=-10'], '--quality: expected an integer >= 0, got -10'),
    ('quality of a tiny model', [*EVAL, '--quality', '8'],
     '--quality: scores samples with the Fashion-MNIST feature network'),
    ('images of another shape',
     ['eval', '--model', '{model}', '--images', '{grey}', '--size', '16', '--channels', '1'],
     '--images: images of shape (1, 16, 16), but the model takes (1, 8, 8)'),
    ('eval of a corrupted file', ['eval', '--model', '{junk}'],
     'not a readable safetensors checkpoint'),
    ('JSON output name', [*EVAL, '--out', '{tmp}/r.txt'],
     '--out: expected a file name ending in .json'),
    # farmer distill
    ('distill with zero epochs',
     ['distill', '--model', '{model}', '--epochs', '0', '--out', '{tmp}'],
     '--epochs: expected an integer >= 1, got 0'),
    ('negative noise range', ['distill', '--model', '{model}', '--s-max=-0.1', '--out', '{tmp}'],
     '--s-max: expected a number in [0, 10], got -0.1'),
    ('distill batch too large',
     ['distill', '--model', '{model}', '--images', '{grey}', *GREY, '--out', '{tmp}'],
     '--batch-size: 256 is larger than the dataset'),
    ('a model as student', ['distill', '--model', '{model}', '--init', '{model}', '--out', '{tmp}'],
     'expected format farmer_nb.student/1'),
    # farmer bench
    ('bench with batch 0', ['bench', 'sample', '--model', '{model}', '--batches', '0'],
     '--batches: expected batch sizes in [1, 65536]'),
    ('bench with zero reps', ['bench', 'train', '--preset', 'farmer-tiny', '--reps', '0'],
     '--reps: expected an integer in [1, 1000], got 0'),
    ('bench, NaN peak', ['bench', 'train', '--preset', 'farmer-tiny', '--peak-tflops', 'nan'],
     '--peak-tflops: expected a finite number > 0, got nan'),
    ('bench, zero Jacobi tolerance', ['bench', 'sample', '--model', '{model}', '--jacobi-tol', '0'],
     '--jacobi-tol: expected a finite number > 0, got 0'),
    ('bench, zero Jacobi runs', ['bench', 'sample', '--model', '{model}', '--jacobi-segments', '0'],
     '--jacobi-segments: expected'),
    ('bench, more Jacobi runs than tokens',
     ['bench', 'sample', '--model', '{model}', '--jacobi-segments', '100000'],
     '--jacobi-segments: expected at most the'),
    ('bench, unknown case', ['bench', 'sample', '--model', '{model}', '--cases', 'jacobian'],
     "argument --cases: invalid choice: 'jacobian'"),
    ('student of another model',
     ['bench', 'sample', '--model', '{model}', '--student', '{student}', '--batches', '1'],
     '--student: '),
    # models by name in every command: a name that matches nothing lists the shipped ones
    ('unknown model name', ['sample', '--model', 'fmnist-smal', '--out', '{tmp}/g.png'],
     "--model: no shipped model, folder or file named 'fmnist-smal' (shipped: fmnist-small, emoji64-p8)"),
    ('unknown model name, eval', ['eval', '--model', 'emoji64'], "(shipped: fmnist-small, emoji64-p8)"),
    ('unknown model name, distill', ['distill', '--model', 'tiny', '--out', '{tmp}'],
     "--model: no shipped model, folder or file named 'tiny'"),
    ('unknown model name, bench', ['bench', 'sample', '--model', 'small', '--batches', '1'],
     "--model: no shipped model, folder or file named 'small'"),
    ('unknown model name, init', [*TRAIN, '--steps', '1', '--init', 'fmnist', '--out', '{tmp}'],
     "--init: no shipped model, folder or file named 'fmnist' (shipped: fmnist-small, emoji64-p8)"),
    ('init from a shipped model of another config',
     [*TRAIN, '--steps', '1', '--init', 'fmnist-small', '--out', '{tmp}'],
     'fmnist_small.safetensors: checkpoint is from another config'),
    ('a folder without a student', ['bench', 'sample', '--model', '{model}', '--student', '{tmp}', '--batches', '1'],
     '--student: no such file: '),
    ('a folder without a student, distill',
     ['distill', '--model', '{model}', '--init', '{tmp}', '--out', '{tmp}/o'], '--init: no such file: '),
    ('a shipped name as student',
     ['bench', 'sample', '--model', '{model}', '--student', 'fmnist-small', '--batches', '1'],
     '--student: no such file: fmnist-small'),
]


@pytest.mark.parametrize('case,argv,message', CASES, ids=[c[0] for c in CASES])
def test_cli_bad_input(case, argv, message, files, tmp_path):
    "Exit status 2 and exactly one line on stderr, `farmer CMD: error: ...` containing the expected text."
    (tmp_path/'dir.png').mkdir()
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    code, _, err = run(argv)
    assert code == 2, f"{case}: exit status {code}, stderr {err!r}"
    assert err.endswith('\n') and err.count('\n') == 1, f"{case}: expected one line, got {err!r}"
    assert 'Traceback' not in err
    commands = ('train', 'sample', 'eval', 'distill', 'bench')
    assert err.startswith(f"farmer {argv[0]}: error: " if argv[0] in commands else 'farmer: error: '), err
    assert message in err, f"{case}: expected {message!r} in the error, got {err!r}"


def test_more_classes_than_the_model_knows(files, tmp_path):
    "Own images with more classes than a conditional model knows are refused by name (tarflow-tiny: 4; here 5)."
    folder = write_images(tmp_path/'five', classes=5, n=2, size=8, mode='L')
    code, _, err = run(['eval', '--model', files['model'], '--images', str(folder), *GREY])
    assert code == 2 and err.count('\n') == 1 and '--images: 5 classes, but the model knows 4' in err, err


# ---------------------------------------------------------------- what bad input used to do silently

def test_T_sigma_applies_without_guidance(files, tmp_path):
    "--T-sigma changes the images with --guidance none (the default), and 0 gives the component means."
    grids = {}
    for t in ('0.3', '1.0', '0'):
        code, out, err = run(['sample', '--model', files['model'], '--T-sigma', t, '--out', str(tmp_path/f'{t}.png')])
        assert code == 0, err
        grids[t] = torch.from_numpy(np.asarray(Image.open(tmp_path/f'{t}.png')).copy())
    assert not torch.equal(grids['0.3'], grids['1.0']) and not torch.equal(grids['0'], grids['1.0'])


@pytest.mark.parametrize('extra', [['--guidance', 'resampling', '--gamma', '0'], ['--guidance', 'resampling', '--T-sigma-v', '0'],
                                   ['--guidance', 'naive', '--gamma', '0'], ['--gamma', '0'], ['--guidance', 'naive', '--w=-1']])
def test_degenerate_settings_sample(files, tmp_path, extra):
    "gamma = 0 and T_sigma_v = 0 (the ends of their ranges) and w = -1 draw a grid instead of crashing."
    code, out, err = run(['sample', '--model', files['model'], *extra, '--out', str(tmp_path/'g.png')])
    assert code == 0, err
    assert Image.open(tmp_path/'g.png').size == (2 * (10 * 9 + 1), 2 * (4 * 9 + 1))


def test_eval_counts_what_it_was_asked(files):
    "--n 3 scores exactly 3 images."
    code, out, err = run([*[a.format(**files) for a in EVAL], '--n', '3'])
    assert code == 0, err
    assert json.loads(out)['n'] == 3


# ---------------------------------------------------------------- failures inside a command

@pytest.mark.parametrize('exc', [RuntimeError('boom\nsecond line'), AssertionError('bad state'), ImportError('No module named x'),
                                 MemoryError()])
def test_any_exception_is_one_line(monkeypatch, files, tmp_path, exc):
    "Any exception inside a command becomes one line naming its type, exit status 2; FARMER_DEBUG=1 re-raises it."
    import farmer_nb.viz as viz
    def boom(*a, **k): raise exc
    monkeypatch.setattr(viz, 'save_image_grid', boom)                   # fails inside farmer sample
    argv = ['sample', '--model', files['model'], '--out', str(tmp_path/'g.png')]
    code, _, err = run(argv)
    assert code == 2 and err.count('\n') == 1 and err.startswith(f'farmer sample: error: {type(exc).__name__}'), err
    assert 'FARMER_DEBUG=1' in err
    monkeypatch.setenv('FARMER_DEBUG', '1')
    with pytest.raises(type(exc)): main(argv)


def test_debug_switch_keeps_the_traceback(monkeypatch, files, tmp_path):
    "FARMER_DEBUG=1: bad input raises the underlying exception instead of the one-line error."
    monkeypatch.setenv('FARMER_DEBUG', '1')
    with pytest.raises(ValueError, match='--per-class'):
        main(['sample', '--model', files['model'], '--per-class', '0', '--out', str(tmp_path/'g.png')])


def test_interrupted_training_resumes(monkeypatch, files, tmp_path):
    "Ctrl-C in the middle of training: one line naming --resume, exit 130; the same command with --resume finishes."
    import farmer_nb.train as train
    real, calls = train.optimizer_step, [0]
    def interrupt_at_5(*a, **k):
        calls[0] += 1
        if calls[0] == 5: raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(train, 'optimizer_step', interrupt_at_5)
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '8', '--checkpoint-every', '2', '--test-n', '4', '--out', str(tmp_path)]
    code, _, err = run(argv)
    assert code == 130 and err == 'farmer train: interrupted; continue from the last checkpoint with the same options and --resume\n'
    assert load_model(tmp_path/'checkpoint.safetensors') is not None                 # step 4's checkpoint
    code, out, err = run(argv + ['--resume'])
    assert code == 0 and 'test bits/dim' in out, err


def test_failed_figure_costs_nothing(monkeypatch, files, tmp_path):
    "A sample grid that cannot be written (during and after training) is a warning: the run ends with its model and scores."
    import farmer_nb.viz as viz
    def broken(*a, **k): raise ImportError('no PNG writer here')
    monkeypatch.setattr(viz, 'save_image_grid', broken)
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '4', '--sample-every', '2', '--test-n', '4', '--out', str(tmp_path)]
    with pytest.warns(UserWarning, match='sample grid of step 2 not written'):
        code, out, err = run(argv)
    assert code == 0, err
    assert err == 'farmer train: warning: the sample grid failed (ImportError: no PNG writer here)\n'
    assert json.loads((tmp_path/'results.json').read_text())['test_bpd'] > 0
    assert load_model(tmp_path/'model.safetensors').cfg.image_shape == (1, 8, 8)


def test_failed_scoring_keeps_the_weights(monkeypatch, files, tmp_path):
    "Scoring that fails after training: one-line error, but the trained model and the checkpoint are on disk and load."
    import farmer_nb.metrics as metrics
    def broken(*a, **k): raise RuntimeError('scoring exploded')
    monkeypatch.setattr(metrics, 'evaluate_bpd', broken)
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '4', '--ema', '0.9', '--test-n', '4', '--out', str(tmp_path)]
    code, out, err = run(argv)
    assert code == 2 and err.count('\n') == 1 and 'RuntimeError: scoring exploded' in err
    assert f"checkpoint: {tmp_path/'model.safetensors'}" in out
    for name in ('model.safetensors', 'model_last.safetensors', 'checkpoint.safetensors'): load_model(tmp_path/name)


# ---------------------------------------------------------------- time budgets

def test_time_budgeted_run_resumes_with_its_plan(tmp_path):
    "A --minutes run stopped early resumes with the number of steps it planned, not a new estimate."
    argv = ['train', '--preset', 'fmnist-cmp', '--minutes', '0.05', '--test-n', '50', '--sample-every', '0', '--out', str(tmp_path)]
    code, first, err = run(argv + ['--stop-at-step', '2'])
    assert code == 0, err
    code, second, err = run(argv + ['--resume'])
    assert code == 0, err
    planned = int(first.split(' steps of batch')[0].rsplit(' ', 1)[1])
    assert f'resuming the {planned} steps planned' in second and 'test bits/dim' in second


def test_minutes_are_a_deadline_on_a_machine_that_slows_down(monkeypatch, files, tmp_path):
    """The steps are planned, then the machine slows down: every step takes at least 0.1 s more, and at least
    three times as long as the planning steps did (so the plan cannot fit, however loaded the machine was while
    planning): training still ends within --minutes, its schedule decayed."""
    import time
    import farmer_nb.train as train
    real, took = train.optimizer_step, []
    def slower(*a, **k):
        if len(took) < 7:                                              # the 7 timed steps of the plan
            t = time.perf_counter(); out = real(*a, **k); took.append(time.perf_counter() - t)
            return out
        time.sleep(max(0.1, 2 * sum(took) / len(took)))
        return real(*a, **k)
    monkeypatch.setattr(train, 'optimizer_step', slower)
    argv = [a.format(**files) for a in TRAIN] + ['--minutes', '0.2', '--test-n', '4', '--sample-every', '0', '--out', str(tmp_path)]
    code, out, err = run(argv)
    assert code == 0, err
    planned = int(out.split(' steps of batch')[0].rsplit(' ', 1)[1])
    res = json.loads((tmp_path/'results.json').read_text())
    assert res['steps'] < planned                                        # the plan was not run to the end
    assert res['train_seconds'] <= 12.0 + 1.5                            # the 12 s budget, slack for a busy machine
    assert res['log'][-1]['lr'] < 0.05 * res['lr']                       # the schedule still decayed within the budget


def test_init_starts_from_the_given_weights(tmp_path):
    "--init loads a model's weights before training: with a vanishing learning rate the trained model is that model."
    torch.manual_seed(123)                                                        # weights unlike the run's own seed-0 init
    src = save_model(build_model(get_config('fmnist-cmp')), tmp_path/'src.safetensors')
    code, _, err = run(['train', '--preset', 'fmnist-cmp', '--init', str(src), '--steps', '1', '--lr', '1e-12', '--test-n', '20',
                        '--out', str(tmp_path/'run')])
    assert code == 0, err
    a, b = load_model(src).state_dict(), load_model(tmp_path/'run'/'model.safetensors').state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert '"init":' in (tmp_path/'run'/'results.json').read_text()


def test_init_without_preset_takes_the_models_config(tmp_path):
    "--init without --preset fine-tunes the model as it is: its config (a custom one too), with --set on top."
    import dataclasses
    torch.manual_seed(123)
    cfg = dataclasses.replace(get_config('fmnist-cmp'), K_I=4)                   # equals no preset
    src = save_model(build_model(cfg), tmp_path/'src.safetensors')
    code, out, err = run(['train', '--init', str(src), '--steps', '1', '--lr', '1e-12', '--test-n', '20',
                          '--sample-every', '0', '--out', str(tmp_path/'run')])
    assert code == 0, err
    assert load_model(tmp_path/'run'/'model.safetensors').cfg == cfg and 'a custom config:' in out
    code, _, err = run(['train', '--init', str(src), '--set', 'K_I=8', '--steps', '1', '--out', str(tmp_path/'x')])
    assert code == 2 and 'checkpoint is from another config (K_I: expected 8, checkpoint has 4)' in err
    code, _, err = run(['train', '--init', 'fmnist', '--steps', '1', '--out', str(tmp_path/'y')])
    assert code == 2 and err.startswith("farmer train: error: --init: no shipped model, folder or file named 'fmnist'")


# ---------------------------------------------------------------- property: numeric options never end in a traceback

def _num(values):
    "Option values as text: every float (NaN, ±inf, huge, tiny) and the given edge cases."
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(values))

def _int(lo, hi, edges):
    "Int option values as text: mostly small, sometimes huge, sometimes not an int at all."
    return st.one_of(st.integers(lo, hi).map(str), st.sampled_from(edges))

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _exit_0_or_one_line(argv):
    code, out, err = run(argv)
    assert code in (0, 2), (argv, code, err)
    if code == 2: assert err.count('\n') == 1 and err.startswith('farmer ') and 'Traceback' not in err, (argv, err)
    return code, out


VALID = dict(w=st.floats(-1, 100), s=st.integers(1, 4), T_sigma=st.floats(0, 100), T_pi_v=st.floats(0, 100),
             T_sigma_v=st.floats(0, 100), T_s=st.floats(0, 100), gamma=st.floats(0, 100), per_class=st.integers(1, 2),
             seed=st.integers(0, 2**63 - 1))
ANY = dict(w=_num(['-1', '0', '100', '100.5', '-1.5']), s=_int(-1, 6, ['0', '101', '100000', '2.5']),
           T_sigma=_num(['0', '100', '1e-45']), T_pi_v=_num(['0', '100']), T_sigma_v=_num(['0', '1e-30']),
           T_s=_num(['0', '100']), gamma=_num(['0', '4', '100', '-0.0']),
           per_class=_int(-2, 6, ['0', '1000000000', '-1000000000', '2.5', '']), seed=_int(0, 10, ['-1', str(2**63)]))
RULE = {'none': (), 'naive': ('w',), 'resampling': ('w', 's', 'T_pi_v', 'T_sigma_v', 'T_s')}


@PROPS
@given(data=st.data(), guidance=st.sampled_from(['none', 'naive', 'resampling']), valid=st.booleans())
def test_sample_numeric_options(files, tmp_path, data, guidance, valid):
    """farmer sample on farmer-tiny, its numeric options drawn either all from their documented ranges (then exit 0
    with a PNG of the right size) or from any number or text (then exit 0 with that PNG, or exit 2 with one line)."""
    out = tmp_path/'p.png'
    if out.exists(): out.unlink()
    names = ['per_class', 'T_sigma', 'gamma', 'seed'] + [n for n in RULE[guidance] if data.draw(st.booleans())]
    if not valid: names += [n for n in RULE['resampling'] if n not in names and data.draw(st.booleans())]
    opts = {n: str(data.draw(VALID[n] if valid else ANY[n], label=n)) for n in names}
    argv = ['sample', '--model', files['model'], '--guidance', guidance, '--out', str(out)]
    argv += [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    code, _ = _exit_0_or_one_line(argv)
    assert code == 0 or not valid, argv
    if code == 0:
        n = int(opts['per_class'])
        assert Image.open(out).size == (2 * (n * 9 + 1), 2 * (4 * 9 + 1))


def test_sample_chosen_classes(files, tmp_path):
    "farmer sample --classes draws only those classes, a row each; an index outside [0, 4) or not a number is refused."
    out = tmp_path/'two.png'
    base = ['sample', '--model', files['model'], '--per-class', '3', '--out', str(out)]
    assert _exit_0_or_one_line(base + ['--classes', '2', '0'])[0] == 0
    assert Image.open(out).size == (2 * (3 * 9 + 1), 2 * (2 * 9 + 1))                      # two rows of three
    for bad, message in [('4', '--classes: expected values in [0, 4), got [4, 4]'), ('-1', 'got [-1, -1]'),
                         ('x', 'invalid int')]:
        code, err = run(base + ['--classes', bad])[::2]
        assert code == 2 and err.startswith('farmer sample: error: ') and message in err, (bad, err)


@PROPS
@given(split=st.sampled_from(['test', 'train']), n=st.none() | _int(-2, 40, ['0', '100000', '1e3']),
       quality=st.none() | _int(-2, 8, ['0', '10000']), seed=_int(0, 5, ['-7', str(2**70)]), null=st.booleans())
def test_eval_numeric_options(files, split, n, quality, seed, null):
    "farmer eval on farmer-tiny: exit 0 with finite bits/dim over exactly the images asked for, or exit 2 with one line."
    argv = [a.format(**files) for a in EVAL] + ['--split', split, f'--seed={seed}'] + (['--null-label'] if null else [])
    argv += ([f'--n={n}'] if n is not None else []) + ([f'--quality={quality}'] if quality is not None else [])
    code, out = _exit_0_or_one_line(argv)
    if code == 0:
        res = json.loads(out)
        assert math.isfinite(res['bpd']) and res['n'] == (int(n) if n is not None else (4 if split == 'test' else 36))


EMOJI_PRESENT = any((d / 'emoji64-16.0.0.npz').exists() or (d / 'emoji-datasource-google-16.0.0.tgz').exists()
                    for d in __import__('farmer_nb.data', fromlist=['x']).emoji_search_path())


@pytest.mark.skipif(not EMOJI_PRESENT, reason='Emoji64 not present (scripts/test.sh fetches it)')
def test_emoji64_train_and_eval(tmp_path):
    "--dataset emoji64: train picks the emoji64-p8 preset, eval scores bits/dim and colour sample quality."
    small = ['--set', 'n_blocks=1', 'depth=1', 'width=64', 'ar_depth=1', 'ar_width=64', 'coupling=16']
    code, out, err = run(['train', '--dataset', 'emoji64', '--steps', '2', '--batch-size', '4', *small,
                          '--test-n', '8', '--sample-every', '0', '--out', str(tmp_path)])
    assert code == 0, err
    cfg = load_model(tmp_path / 'model.safetensors').cfg
    assert cfg.image_shape == (3, 64, 64) and cfg.basis == 'dct' and cfg.num_classes == 9
    code, out, err = run(['eval', '--dataset', 'emoji64', '--model', str(tmp_path / 'model.safetensors'),
                          '--n', '8', '--quality', '9'])
    assert code == 0, err
    res = json.loads(out)
    assert res['n'] == 8 and res['quality']['n_fake'] == 9 and res['quality']['n_real'] == 750 and 'stripe' in res['quality']
    code, out2, err = run(['eval', '--model', str(tmp_path / 'model.safetensors'), '--test-n', '8'])
    assert code == 0, err                                  # --dataset left out: the model's shape picks emoji64
    assert json.loads(out2)['bpd'] == res['bpd']
    code, _, err = run(['train', '--preset', 'emoji64-p16', '--steps', '1', '--batch-size', '2', '--test-n', '2',
                        *small, '--sample-every', '0', '--out', str(tmp_path / 'p16')])
    assert code == 0, err                                  # so does a colour preset
    code, _, err = run(['train', '--dataset', 'emoji64', '--preset', 'fmnist-small', '--steps', '1', '--out', str(tmp_path / 'x')])
    assert code == 2 and err.startswith('farmer train: error: --dataset: images of shape (3, 64, 64)')
    assert '(pick a --preset of its shape)' in err
    code, _, err = run(['eval', '--dataset', 'fashion_mnist', '--model', str(tmp_path / 'model.safetensors')])
    assert code == 2 and err.startswith('farmer eval: error: --dataset: images of shape (1, 28, 28), but the '
                                        'model takes (3, 64, 64) (use the images the model was trained on)')


# ---------------------------------------------------------------- models by name, folders and files

@pytest.fixture(scope='module')
def saved(files, tmp_path_factory):
    "The tiny model of `files` as a folder of save_pretrained, and a folder holding its student."
    from farmer_nb.distill import Student, save_student
    d = tmp_path_factory.mktemp('saved')
    model = load_model(files['model'])
    folder = model.save_pretrained(d/'tiny')
    model.student = Student(model.flow)
    save_student(model, d/'distilled'/'student.safetensors')
    return dict(folder=str(folder), students=str(d/'distilled'))


def test_model_by_name_folder_and_file(files, saved, tmp_path):
    "sample draws the same grid from a file and from a folder of save_pretrained; a shipped name samples too."
    grids = []
    for model in (files['model'], saved['folder']):
        out = tmp_path/f'{len(grids)}.png'
        code, stdout, err = run(['sample', '--model', model, '--per-class', '2', '--out', str(out)])
        assert code == 0 and stdout.strip() == str(out), err
        grids.append(np.asarray(Image.open(out)))
    assert np.array_equal(*grids)
    code, _, err = run(['sample', '--model', 'fmnist-small', '--per-class', '1', '--out', str(tmp_path/'s.png')])
    assert code == 0 and Image.open(tmp_path/'s.png').size == (2 * (28 + 2), 2 * (10 * 29 + 1)), err


def test_folders_in_every_command(files, saved, tmp_path):
    "eval, distill, bench and train --init take the folder; --student and distill --init take a student's folder."
    code, out, err = run(['eval', '--model', saved['folder'], '--images', files['grey'], *GREY])
    assert code == 0 and math.isfinite(json.loads(out)['bpd']), err
    code, out, err = run(['distill', '--model', saved['folder'], '--init', saved['students'], '--images', files['grey'],
                          *GREY, '--batch-size', '8', '--max-steps', '1', '--out', str(tmp_path/'d')])
    assert code == 0 and (tmp_path/'d'/'student.safetensors').exists(), err
    code, out, err = run(['bench', 'sample', '--model', saved['folder'], '--student', saved['students'],
                          '--batches', '1', '--reps', '1'])
    assert code == 0 and 'whole sampler, student' in out, err
    code, out, err = run(['train', '--preset', 'farmer-tiny', '--images', files['grey'], *GREY, '--batch-size', '8',
                          '--steps', '1', '--lr', '1e-12', '--sample-every', '0', '--test-n', '1',
                          '--init', saved['folder'], '--out', str(tmp_path/'t')])
    assert code == 0 and 'test bits/dim' in out, err
    a, b = load_model(files['model']).state_dict(), load_model(tmp_path/'t'/'model.safetensors').state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)               # lr 1e-12: the weights it started from
    code, out, err = run(['eval', '--model', str(tmp_path/'t'), '--images', files['grey'], *GREY])
    assert code == 0, err                                                       # a farmer train folder


# ---------------------------------------------------------------- defaults from the presets; TensorBoard

def test_train_lr_and_noise_defaults(monkeypatch, files, tmp_path):
    "Without --lr, farmer train trains at the preset's peak learning rate (06_model's PRESET_LR), with fit's noise; --help says so."
    import farmer_nb.model as model_module
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '1', '--test-n', '4', '--sample-every', '0']

    def trained(*extra):
        out = tmp_path/f'run{len(list(tmp_path.iterdir()))}'
        code, _, err = run(argv + [*extra, '--out', str(out)])
        assert code == 0, err
        return json.loads((out/'results.json').read_text())
    res = trained()
    assert res['lr'] == 2e-3 and res['log'][0]['lr'] == 2e-3 and res['noise'] == 'gaussian'
    monkeypatch.setitem(model_module.PRESET_LR, 'farmer-tiny', 5e-4)             # the table decides
    assert trained()['lr'] == 5e-4 and trained('--lr', '1e-3')['lr'] == 1e-3       # --lr still wins
    monkeypatch.undo()
    code, help_text, _ = run(['train', '--help'])
    help_text = ' '.join(help_text.split())                                        # as wrapped for any terminal
    assert "(default: the preset's, 3e-4 for fmnist-base, 2e-3 for the others; with --init a quarter of it)" in help_text
    assert '(default: gaussian; with --init: uniform, the dequantization a model is scored with)' in help_text
    src = save_model(build_model(get_config('farmer-tiny')), tmp_path/'src.safetensors')
    res = trained('--init', str(src))                                              # fine-tuning
    assert res['lr'] == 5e-4 and res['noise'] == 'uniform'
    assert trained('--init', str(src), '--noise', 'gaussian', '--lr', '1e-3')['noise'] == 'gaussian'


def test_train_tensorboard(files, tmp_path):
    "--tensorboard DIR: the run's log.jsonl numbers as TensorBoard scalars, step for step."
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '3', '--log-every', '1', '--test-n', '4', '--sample-every', '0',
                                                  '--tensorboard', str(tmp_path/'tb'), '--out', str(tmp_path/'run')]
    code, out, err = run(argv)
    assert code == 0, err
    assert f"TensorBoard events in {tmp_path/'tb'}: tensorboard --logdir {tmp_path/'tb'}" in out
    acc = EventAccumulator(str(tmp_path/'tb'))
    acc.Reload()
    log = [json.loads(line) for line in (tmp_path/'run'/'log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log] == [1, 2, 3]
    for key in ('loss', 'bpd', 'grad_norm', 'lr', 'skipped', 'sigma', 'eff_K_I'):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3], key
        assert [e.value for e in events] == pytest.approx([r[key] for r in log], rel=1e-6), key
    assert [e.value for e in acc.Scalars('z2/1')] == pytest.approx([r['z2'][1] for r in log], rel=1e-6)


def test_train_tensorboard_missing(monkeypatch, files, tmp_path):
    "Without the tensorboard package --tensorboard is refused before any work, in one line naming the extra."
    import sys
    monkeypatch.setitem(sys.modules, 'tensorboard', None)                        # as if not installed
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    argv = [a.format(**files) for a in TRAIN] + ['--steps', '1', '--tensorboard', str(tmp_path/'tb'),
                                                  '--out', str(tmp_path/'run')]
    code, out, err = run(argv)
    assert code == 2 and out == ''
    assert err == ("farmer train: error: --tensorboard: writing TensorBoard events needs the tensorboard package: "
                   "pip install 'farmer_nb[tensorboard]'\n")
    assert not (tmp_path/'run').exists() and not (tmp_path/'tb').exists()


def test_every_option_shows_its_default():
    "--help of every command states each option's default, argparse's or in words (required options excepted)."
    import argparse
    ap = cli.make_parser()
    subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) == {'train', 'sample', 'eval', 'distill', 'bench'}
    for name, p in subs.items():
        fmt = p._get_formatter()
        for action in p._actions:
            if not action.option_strings or action.dest == 'help' or action.required: continue
            text = fmt._get_help_string(action)
            assert action.help and 'default' in text, (name, action.option_strings, text)
        help_text = p.format_help()
        assert '(default: None)' not in help_text, name


def test_cli_code_style():
    "12_cli's exported cells: lines of at most 100 characters, no semicolons, one statement per line."
    import ast, io, tokenize
    nb = json.loads((Path(__file__).resolve().parents[1]/'nbs'/'12_cli.ipynb').read_text())
    cells = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code']
    src = '\n\n'.join(c for c in cells if c.startswith('#| export'))
    long = [line for line in src.splitlines() if len(line) > 100]
    assert not long, long
    semis = [t.start[0] for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.OP and t.string == ';']
    assert not semis, [src.splitlines()[i - 1] for i in semis]
    same = [node.lineno for node in ast.walk(ast.parse(src)) for field in ('body', 'orelse', 'finalbody', 'handlers')
            if isinstance(getattr(node, field, None), list) and getattr(node, field) and hasattr(node, 'lineno')
            and getattr(node, field)[0].lineno == node.lineno]
    assert not same, [src.splitlines()[i - 1] for i in same]


def test_bench_cases_and_jacobi(files, tmp_path):
    "`--cases` times only what it names, in that order; the Jacobi row carries its rounds and its error."
    out = tmp_path/'b.json'
    code, _, err = run(['bench', 'sample', '--model', files['model'], '--student', 'init', '--batches', '3',
                        '--reps', '1', '--cases', 'jacobi', 'student', 'sequential', '--jacobi-tol', '1e-6',
                        '--device', 'cpu', '--out', str(out)])
    assert code == 0, err
    rows = json.loads(out.read_text())['rows']
    assert [r['case'] for r in rows] == ['jacobi', 'student', 'sequential']
    j, cfg = rows[0], get_config('farmer-tiny')
    assert len(j['rounds']) == cfg.n_blocks and all(1 <= r <= cfg.N - 1 for r in j['rounds'])
    assert max(j['rounds']) > 1 and j['steps_sequential'] == cfg.N - 1      # randomised blocks: not the identity
    assert j['max_abs_err'] < 1e-4 and all(r['ms_per_image'] > 0 for r in rows)
    code, _, err = run(['bench', 'sample', '--model', files['model'], '--batches', '3', '--reps', '1',
                        '--cases', 'jacobi', '--jacobi-tol', '1e-6', '--jacobi-segments', '2',
                        '--device', 'cpu', '--out', str(out)])
    g = json.loads(out.read_text())['rows'][0]              # Gauss–Seidel over 2 runs, Jacobi in each
    assert code == 0 and g['jacobi_segments'] == 2 and g['max_abs_err'] < 1e-4, err
    assert all(2 <= r <= cfg.N for r in g['rounds'])          # ≤ (T₀ − 1 + 1) + T₁ = N calls a block
    code, _, err = run(['bench', 'sample', '--model', files['model'], '--precision', 'bf16', '--batches', '2',
                        '--reps', '1', '--cases', 'whole', 'jacobi', '--device', 'cpu', '--out', str(out)])
    rows = json.loads(out.read_text())['rows']
    assert code == 0 and [r['precision'] for r in rows] == ['bf16', 'bf16'], err
    assert rows[1]['max_abs_err'] < 1e-2                  # latents from a bf16 prior; the flow's inverse is fp32
    code, out_text, err = run(['bench', 'sample', '--model', files['flow'], '--batches', '2', '--reps', '1',
                               '--cases', 'graph', 'prior', 'sequential', '--device', 'cpu'])
    assert code == 0, err                                 # cases asked for by name that this setup lacks: why
    assert 'not available here (needs a CUDA device)' in out_text
    assert 'not available here (needs a FARMER model, with an AR prior)' in out_text
    assert 'flow inverse (sequential)' in out_text
