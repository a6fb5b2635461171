"Bad input to the `farmer` command: each case ends with a one-line error that names the option, never a traceback."
import pytest
from farmer_nb.cli import main
from farmer_nb.model import build_model, get_config, save_model

CASES = [  # (id, argv, exit code, substring of the message); {tmp} is a fresh folder, {model} a saved tiny model
    ('unknown preset',          ['train', '--preset', 'cifar'], 2, "invalid choice: 'cifar'"),
    ('unknown command',         ['fit'], 2, "invalid choice: 'fit'"),
    ('unknown config field',    ['train', '--set', 'widht=3', '--out', '{tmp}'], 1, "has no field 'widht'"),
    ('override of wrong type',  ['train', '--set', 'd_I=four', '--out', '{tmp}'], 1, "--set d_I: expected int, got 'four'"),
    ('override out of range',   ['train', '--set', 'd_I=99', '--out', '{tmp}'], 1, 'd_I: expected 1 <= d_I <= d = 16'),
    ('override without =',      ['train', '--set', 'd_I', '--out', '{tmp}'], 1, "expected field=value, got 'd_I'"),
    ('zero batch size',         ['train', '--batch-size', '0', '--out', '{tmp}'], 1, '--batch-size: expected a positive number, got 0'),
    ('negative learning rate',  ['train', '--lr=-1e-3', '--out', '{tmp}'], 1, '--lr: expected a positive number'),
    ('zero steps',              ['train', '--steps', '0', '--out', '{tmp}'], 1, '--steps: expected a positive number'),
    ('batch larger than data',  ['train', '--images', '{imgs}', '--batch-size', '64', '--steps', '1', '--out', '{tmp}'], 1, 'larger than the dataset'),
    ('missing image folder',    ['train', '--images', '{tmp}/nowhere', '--out', '{tmp}'], 1, 'nowhere'),
    ('init from another config', ['train', '--preset', 'fmnist-cmp', '--init', '{model}', '--out', '{tmp}'], 1, 'checkpoint is from another config'),
    ('init and resume together', ['train', '--preset', 'fmnist-cmp', '--init', '{model}', '--resume', '--out', '{tmp}'], 1, '--init: starts a new run'),
    ('non-number option',       ['train', '--epochs', 'ten'], 2, "invalid int value: 'ten'"),
    ('missing model file',      ['sample', '--model', '{tmp}/none.safetensors', '--out', '{tmp}/g.png'], 1, 'none.safetensors'),
    ('corrupted model file',    ['sample', '--model', '{junk}', '--out', '{tmp}/g.png'], 1, 'not a readable safetensors checkpoint'),
    ('zero samples per class',  ['sample', '--model', '{model}', '--per-class', '0', '--out', '{tmp}/g.png'], 1, '--per-class: expected a positive number'),
    ('eval of a corrupted file', ['eval', '--model', '{junk}'], 1, 'not a readable safetensors checkpoint'),
    ('distill with zero epochs', ['distill', '--model', '{model}', '--epochs', '0', '--out', '{tmp}'], 1, '--epochs: expected a positive number'),
    ('bench with batch 0',      ['bench', 'sample', '--model', '{model}', '--batches', '0'], 1, '--batches: expected positive batch sizes'),
    ('bench with zero reps',    ['bench', 'train', '--preset', 'farmer-tiny', '--reps', '0'], 1, '--reps: expected a positive number'),
]

@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    model = save_model(build_model(get_config('farmer-tiny')), d/'tiny.safetensors')
    junk = d/'junk.safetensors'; junk.write_bytes(b'not a checkpoint at all')
    imgs = d/'imgs'/'cats'; imgs.mkdir(parents=True)
    from PIL import Image
    for i in range(3): Image.new('RGB', (8, 8), (i * 40, 0, 0)).save(imgs/f'{i}.png')
    return dict(model=str(model), junk=str(junk), imgs=str(d/'imgs'))

@pytest.mark.parametrize('case,argv,code,message', CASES, ids=[c[0] for c in CASES])
def test_cli_bad_input(case, argv, code, message, files, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, **files) for a in argv]
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err + (e.value.code if isinstance(e.value.code, str) else '')
    assert (2 if code == 2 else 1) == (e.value.code if isinstance(e.value.code, int) else 1), err
    assert message in err, f"{case}: expected {message!r} in the error, got {err!r}"
    assert 'Traceback' not in err
    if code == 1: assert err.startswith(f'farmer {argv[0]}: error: '), err

def test_time_budgeted_run_resumes_with_its_plan(tmp_path, capsys):
    "A --minutes run stopped early resumes with the number of steps it planned, not a new estimate."
    argv = ['train', '--preset', 'fmnist-cmp', '--minutes', '0.05', '--test-n', '50', '--sample-every', '0', '--out', str(tmp_path)]
    main(argv + ['--stop-at-step', '2'])
    first = capsys.readouterr().out
    main(argv + ['--resume'])
    second = capsys.readouterr().out
    planned = int(first.split(' steps of batch')[0].rsplit(' ', 1)[1])
    assert f'resuming the {planned} steps planned' in second and 'test bits/dim' in second

def test_init_starts_from_the_given_weights(tmp_path, capsys):
    "--init loads a model's weights before training: with a vanishing learning rate the trained model is that model."
    import torch
    from farmer_nb.model import load_model
    torch.manual_seed(123)                                                        # weights unlike the run's own seed-0 init
    src = save_model(build_model(get_config('fmnist-cmp')), tmp_path/'src.safetensors')
    main(['train', '--preset', 'fmnist-cmp', '--init', str(src), '--steps', '1', '--lr', '1e-12', '--test-n', '20',
          '--out', str(tmp_path/'run')])
    a, b = load_model(src).state_dict(), load_model(tmp_path/'run'/'model.safetensors').state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert '"init":' in (tmp_path/'run'/'results.json').read_text()
