"""Bad input to the Python API, table-driven: each call raises ValueError, TypeError or FileNotFoundError with a
one-line message that names the argument and what it accepts, before any work is done."""
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from farmer_nb.data import ImageFolder, SyntheticImages, dequantize
from farmer_nb.distill import FastSampler, Student, distill, load_student, save_student
from farmer_nb.gmm import GMM, check_scale
from farmer_nb.guidance import NaiveGuidance, NoGuidance, Resampling
from farmer_nb.metrics import evaluate_bpd
from farmer_nb.model import (Farmer, build_model, get_config, load_model, load_pretrained, randomize_model_,
                             save_model)
from farmer_nb.train import fit
from farmer_nb.viz import save_image_grid


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    "A tiny FARMER, a tiny unconditional one, data, and files of every wrong kind."
    d = tmp_path_factory.mktemp('api')
    m = randomize_model_(build_model(get_config('farmer-tiny')), std=0.05).eval()
    other = build_model(get_config('farmer-tiny', n_blocks=3))
    other.student = Student(other.flow)
    junk = d/'junk.safetensors'; junk.write_bytes(b'\x00' * 100)
    (d/'imgs'/'a').mkdir(parents=True)
    Image.new('L', (8, 8)).save(d/'imgs'/'a'/'0.png')
    (d/'imgs'/'a'/'x.png').write_text('not an image')
    (d/'empty').mkdir()
    return dict(m=m, uncond=build_model(get_config('farmer-tiny', num_classes=0)), data=SyntheticImages(n=64),
                model_file=save_model(m, d/'m.safetensors'), student_file=save_student(other, d/'s.safetensors'),
                junk=junk, imgs=d/'imgs', empty=d/'empty', missing=d/'missing.safetensors', out=d)


L4 = torch.tensor([0, 1, 2, 3])
NAN, INF = float('nan'), float('inf')

CASES = [  # (id, call on the fixture e, exception, substring of the message)
    # configs and models
    ('unknown preset', lambda e: get_config('cifar'), ValueError, "preset: unknown 'cifar'"),
    ('unknown config field', lambda e: get_config('farmer-tiny', widht=3), ValueError,
     "['widht'] are not fields"),
    ('d_I out of range', lambda e: get_config('farmer-tiny', d_I=0), ValueError,
     'd_I: expected 1 <= d_I <= d = 4'),
    ('NaN clip', lambda e: get_config('farmer-tiny', clip=NAN), ValueError,
     'clip: expected a finite number >= 0'),
    ('string where a bool goes', lambda e: get_config('farmer-tiny', mixing='yes'), TypeError,
     'FarmerConfig.mixing: expected bool'),
    ('label_drop of 1', lambda e: get_config('farmer-tiny', label_drop=1.0), ValueError,
     'label_drop: expected in [0, 1)'),
    ('config of the wrong type', lambda e: build_model({'patch': 2}), TypeError,
     'cfg: expected one of'),
    # files
    ('missing model file', lambda e: load_model(e['missing']), FileNotFoundError,
     'missing.safetensors'),
    ('corrupted model file', lambda e: load_model(e['junk']), ValueError,
     'not a readable safetensors checkpoint'),
    ('a student as model', lambda e: load_model(e['student_file']), ValueError,
     "format 'farmer_nb.student/1'"),
    ('model of another config',
     lambda e: load_model(e['model_file'], expect_config=get_config('farmer-tiny', n_blocks=3)),
     ValueError, 'n_blocks: expected 3, checkpoint has 2'),
    ('unknown pretrained model', lambda e: load_pretrained('imagenet'), ValueError,
     "name: no pretrained model 'imagenet'"),
    ('pretrained name not a str', lambda e: load_pretrained(3), TypeError,
     'name: expected a model name'),
    ('reserved metadata key', lambda e: save_model(e['m'], e['out'] / 'x.safetensors', sha256='x'),
     ValueError, 'reserved metadata keys'),
    ('student of another config', lambda e: load_student(e['m'], e['student_file']), ValueError,
     'a student of another config'),
    ('a model as student', lambda e: load_student(e['m'], e['model_file']), ValueError,
     'expected format farmer_nb.student/1'),
    # sampling
    ('zero samples', lambda e: e['uncond'].sample(n=0), ValueError, 'n: expected a positive int'),
    ('fractional n', lambda e: e['uncond'].sample(n=2.5), ValueError, 'n: expected a positive int'),
    ('label out of range', lambda e: e['m'].sample(torch.tensor([0, 4])), ValueError,
     'expected values in [0, 4)'),
    ('seeds of another length', lambda e: e['m'].sample(L4, seeds=[1, 2]), ValueError,
     'seeds: expected 4 seeds'),
    ('student not distilled', lambda e: e['m'].sample(L4, inverse='student'), ValueError,
     "inverse: 'student' needs"),
    ('negative gamma', lambda e: e['m'].sample(L4, gamma=-1.0), ValueError,
     'gamma: expected a finite number >= 0'),
    ('NaN temperature', lambda e: e['m'].sample(L4, T_sigma=NAN), ValueError,
     'T_sigma: expected a finite number >= 0'),
    ('huge temperature', lambda e: e['m'].sample(L4, T_pi=1000000.0), ValueError,
     'T_pi: expected a number in [0, 100]'),
    ('guidance, unconditional', lambda e: e['uncond'].sample(n=2, guidance=NoGuidance()),
     ValueError, 'guidance: needs a class-conditional'),
    ('temperatures beside a rule',
     lambda e: e['m'].sample(L4, T_sigma=0.5, guidance=Resampling(1.0)), ValueError,
     'set the sampling temperatures on the rule'),
    ('guidance by name', lambda e: e['m'].sample(L4, guidance='resampling'), TypeError,
     "guidance: expected a guidance rule, e.g. farmer_nb.Resampling(3.0) or NaiveGuidance(2.0), got str "
     "'resampling'"),
    ('fast sampler of batch 0', lambda e: FastSampler(e['m'], 0), ValueError,
     'batch_size: expected a positive int'),
    # guidance rules
    ('w below -1', lambda e: Resampling(-2.0), ValueError,
     'w: expected a finite number in [-1, 100]'),
    ('infinite w', lambda e: NaiveGuidance(INF), ValueError,
     'w: expected a finite number in [-1, 100]'),
    ('NaN w', lambda e: Resampling(NAN), ValueError, 'w: expected a finite number in [-1, 100]'),
    ('w as text', lambda e: Resampling('2'), ValueError,
     'w: expected a finite number in [-1, 100] (0: no guidance'),
    ('negative candidates', lambda e: Resampling(1.0, -1, 5), ValueError,
     's_c: expected an int >= 0'),
    ('no candidates at all', lambda e: Resampling(1.0, 0, 0), ValueError,
     's_c, s_u: expected at least one candidate'),
    ('infinite T_s', lambda e: Resampling(1.0, T_s=INF), ValueError,
     'T_s: expected a finite number >= 0'),
    ('negative T_pi', lambda e: NoGuidance(T_pi=-1.0), ValueError,
     'T_pi: expected a finite number >= 0'),
    ('temperature as text',
     lambda e: GMM(torch.zeros(2), torch.zeros(2, 1), torch.zeros(2, 1)).temper(T_sigma='1'),
     TypeError, 'T_sigma: expected a number >= 0'),
    ('scale above its cap', lambda e: check_scale(101.0, 'gamma', 100), ValueError,
     'gamma: expected a number in [0, 100]'),
    # training and distillation
    ('zero time budget', lambda e: fit(e['m'], e['data'].images, time_budget=0), ValueError,
     'time_budget: expected a finite number'),
    ('NaN time budget', lambda e: fit(e['m'], e['data'].images, time_budget=NAN), ValueError,
     'time_budget: expected a finite'),
    ('unknown noise', lambda e: fit(e['m'], e['data'].images, noise='pink'), ValueError,
     'noise: expected one of'),
    ('batch larger than data', lambda e: fit(e['m'], e['data'].images, batch_size=1000), ValueError,
     'batch_size: 1000 is larger'),
    ('float images to fit', lambda e: fit(e['m'], e['data'].images.float()), TypeError,
     'images: expected uint8 pixels'),
    ('images of another shape', lambda e: fit(e['m'], torch.zeros(8, 1, 16, 16, dtype=torch.uint8)),
     ValueError, '(C, H, W) = (1, 8, 8)'),
    ('negative noise range', lambda e: distill(e['m'], e['data'].images, s_max=-0.1), ValueError,
     's_max: expected a noise scale >= 0'),
    ('init not a student', lambda e: distill(e['m'], e['data'].images, init=e['m'].flow), TypeError,
     'init: expected a Student'),
    # data, metrics, figures
    ('non-image named x.png', lambda e: ImageFolder(e['imgs'], size=8, channels=1), ValueError,
     'x.png is not a readable PNG/JPEG image'),
    ('folder without images', lambda e: ImageFolder(e['empty']), FileNotFoundError,
     'root: no .png/.jpg/.jpeg images'),
    ('folder that does not exist', lambda e: ImageFolder(e['out']/'nowhere'), FileNotFoundError,
     'nowhere is not a folder'),
    ('two channels', lambda e: ImageFolder(e['imgs'], channels=2), ValueError,
     'channels: expected 1 or 3'),
    ('unknown dequantization', lambda e: dequantize(e['data'].images, 'pink'), ValueError,
     "mode: expected 'uniform'"),
    ('bits/dim of other images',
     lambda e: evaluate_bpd(e['m'], torch.zeros(2, 3, 8, 8, dtype=torch.uint8)), ValueError,
     '(C, H, W) = (1, 8, 8)'),
    ('bits/dim in batches of 0', lambda e: evaluate_bpd(e['m'], e['data'].images, batch_size=0), ValueError,
     'batch_size: expected a finite number >= 1, got 0'),
    ('bits/dim in batches of -2', lambda e: evaluate_bpd(e['m'], e['data'].images, batch_size=-2), ValueError,
     'batch_size: expected a finite number >= 1, got -2'),
    ('bits/dim in batches of 2.5', lambda e: evaluate_bpd(e['m'], e['data'].images, batch_size=2.5), TypeError,
     'batch_size: expected an int, got 2.5'),
    ('grid of float images', lambda e: save_image_grid(torch.rand(2, 1, 4, 4), e['out'] / 'g.png'),
     ValueError, 'images: expected uint8'),
    ('grid file without .png', lambda e: save_image_grid(e['data'].images[:2], e['out'] / 'grid'),
     ValueError, "path: expected a file name ending in .png, .jpg, .jpeg, got"),
    ('bits/dim of a numpy array', lambda e: evaluate_bpd(e['m'], e['data'].images.numpy()), TypeError,
     'got ndarray; torch.from_numpy(images)'),
    ('bits/dim of one image without its batch axis', lambda e: evaluate_bpd(e['m'], e['data'].images[0]),
     ValueError, 'one image (C, H, W)? images[None]'),
    ('bits/dim of one greyscale image (H, W)', lambda e: evaluate_bpd(e['m'], e['data'].images[0, 0]),
     ValueError, 'one greyscale image (H, W)? images[None, None]'),
    ('bits/dim with one label too few', lambda e: evaluate_bpd(e['m'], e['data'].images, e['data'].labels[1:]),
     ValueError, 'labels: expected shape'),
    ('bits/dim of a channels-last batch',
     lambda e: evaluate_bpd(e['m'], e['data'].images.permute(0, 2, 3, 1).contiguous()), ValueError,
     'channels last? images.permute(0, 3, 1, 2)'),
]


@pytest.mark.parametrize('case,call,exc,message', CASES, ids=[c[0] for c in CASES])
def test_api_bad_input(case, call, exc, message, env):
    "The call raises the expected exception type with a one-line message containing the expected text."
    with pytest.raises(exc) as info: call(env)
    text = str(info.value)
    assert message in text, f"{case}: expected {message!r} in {text!r}"
    assert '\n' not in text, f"{case}: the message is not one line: {text!r}"


def test_bpd_checks_labels_before_its_progress_bar(env, capsys):
    "Labels of the wrong length are refused before evaluate_bpd starts its bar: nothing is printed."
    with pytest.raises(ValueError, match='labels: expected shape'):
        evaluate_bpd(env['m'], env['data'].images, env['data'].labels[1:])
    assert capsys.readouterr().err == ''


def test_degenerate_ends_of_the_ranges_sample(env):
    "The accepted ends of each range sample instead of raising: gamma, T_sigma, T_sigma_v, T_s = 0; w = -1, 0, 100."
    m = env['m']
    for kw in [dict(gamma=0.0), dict(T_sigma=0.0), dict(T_pi=0.0), dict(T_sigma=100.0, gamma=100.0),
               dict(gamma=0.0, guidance=Resampling(1.0)), dict(guidance=Resampling(1.0, T_sigma_v=0.0, T_pi_v=0.0)),
               dict(guidance=Resampling(-1.0, T_s=0.0)), dict(guidance=NaiveGuidance(100.0, T_sigma=0.0)),
               dict(guidance=Resampling(100.0, 0, 3, T_s=100.0))]:
        img = m.sample(L4, generator=torch.Generator().manual_seed(0), **kw)
        assert img.shape == (4, 1, 8, 8) and img.dtype == torch.uint8, kw
