"Tests of farmer_nb.data: IDX files, the dataset search path and download, datasets, pixels and patches."
import gzip, math, os, struct
from pathlib import Path

import numpy as np
import pytest
import torch

import farmer_nb.data as fd
from farmer_nb.data import (DATASETS, IDXDataset, FashionMNIST, ImageFolder, SyntheticImages, check_images,
                            check_labels, data_search_path, dequantize, download_dataset, find_idx_files, nll_to_bpd,
                            noise_sigma, patchify, quantize, read_idx, sha256_file, unpatchify, write_idx)

SPLIT_FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
               't10k': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}
ALL_FILES = SPLIT_FILES['train'] + SPLIT_FILES['t10k']


def write_file(path, raw, gz):
    "Write the bytes `raw` to `path`, gzipped if `gz`."
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


# ---------------------------------------------------------------- IDX reader and writer

@pytest.mark.parametrize('gz', [False, True])
def test_read_idx_hand_built_uint8(tmp_path, gz):
    "The reader decodes an IDX uint8 file built byte by byte with struct (independent of write_idx)."
    values = list(range(0, 240, 10))                                       # 24 values, shape (2, 3, 4)
    raw = struct.pack('>4B', 0, 0, 0x08, 3) + struct.pack('>3I', 2, 3, 4) + struct.pack('>24B', *values)
    a = read_idx(write_file(tmp_path / ('x.idx.gz' if gz else 'x.idx'), raw, gz))
    assert a.dtype == np.uint8 and a.shape == (2, 3, 4)
    np.testing.assert_array_equal(a, np.array(values, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize('gz', [False, True])
def test_read_idx_hand_built_float32(tmp_path, gz):
    "Big-endian float32 data (type 0x0D) comes back as native-order float32 with the same values."
    values = [0.0, -1.5, 3.25, 1e-3, -2e6, 7.0]
    raw = struct.pack('>4B', 0, 0, 0x0D, 2) + struct.pack('>2I', 3, 2) + struct.pack('>6f', *values)
    a = read_idx(write_file(tmp_path / ('f.idx.gz' if gz else 'f.idx'), raw, gz))
    assert a.dtype == np.float32 and a.dtype.isnative and a.shape == (3, 2)
    np.testing.assert_array_equal(a, np.array(values, dtype=np.float32).reshape(3, 2))


@pytest.mark.parametrize('gz', [False, True])
@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'int16', 'int32', 'float32', 'float64'])
def test_write_read_idx_round_trip(tmp_path, dtype, gz):
    "write_idx then read_idx returns the same values, dtype and shape, for every IDX type, gzipped or plain."
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / ('a.idx.gz' if gz else 'a.idx')
    write_idx(path, a)
    assert (path.read_bytes()[:2] == b'\x1f\x8b') == gz                    # gzip magic only when asked for
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_write_idx_header_bytes(tmp_path):
    "write_idx writes the documented header: 00 00 <type> <rank>, then big-endian uint32 dimensions."
    write_idx(tmp_path / 'h.idx', np.zeros((2, 5), dtype=np.int16))
    raw = (tmp_path / 'h.idx').read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2]) and struct.unpack('>2I', raw[4:12]) == (2, 5)
    assert len(raw) == 12 + 2 * 5 * 2


@pytest.mark.parametrize('dtype', ['int64', 'bool', 'uint16'])
def test_write_idx_unsupported_dtype(tmp_path, dtype):
    "Dtypes without an IDX type code are refused with a TypeError naming the dtype."
    with pytest.raises(TypeError, match=f'dtype {dtype} has no IDX type code'):
        write_idx(tmp_path / 'x.idx', np.zeros(3, dtype=dtype))


HEADER = struct.pack('>4B', 0, 0, 0x08, 2) + struct.pack('>2I', 2, 3)     # uint8 (2, 3): 6 data bytes

@pytest.mark.parametrize('raw, match', [
    (b'', 'not an IDX file'),                                              # empty file
    (b'\x01\x00\x08\x02' + HEADER[4:] + bytes(6), 'not an IDX file'),      # bad first byte
    (b'\x00\x00\x07\x02' + HEADER[4:] + bytes(6), 'not an IDX file'),      # unknown type code
    (b'PK\x03\x04' + bytes(20), 'not an IDX file'),                        # some other format
    (HEADER[:8], 'IDX header truncated'),                                  # rank 2 but one dimension
    (HEADER + bytes(5), r'header says shape \(2, 3\) \(6 bytes\) but the file holds 5'),   # truncated data
    (HEADER + bytes(7), r'header says shape \(2, 3\) \(6 bytes\) but the file holds 7'),   # trailing bytes
])
@pytest.mark.parametrize('gz', [False, True])
def test_read_idx_malformed(tmp_path, raw, match, gz):
    "Malformed files raise ValueError whose message names the file and says what is wrong."
    path = write_file(tmp_path / ('bad.idx.gz' if gz else 'bad.idx'), raw, gz)
    with pytest.raises(ValueError, match=match) as e:
        read_idx(path)
    assert 'bad.idx' in str(e.value)


# ---------------------------------------------------------------- patches

@pytest.mark.parametrize('B, C, H, W, p', [(2, 1, 8, 8, 2), (2, 3, 8, 8, 4), (1, 3, 6, 4, 2),
                                           (3, 2, 12, 8, 4), (1, 1, 5, 5, 1), (2, 3, 4, 8, 4)])
def test_patchify_round_trip(B, C, H, W, p):
    "patchify gives (B, HW/p², Cp²) tokens and unpatchify inverts it exactly (square and non-square, C = 1..3)."
    x = torch.randn(B, C, H, W)
    X = patchify(x, p)
    assert X.shape == (B, H * W // p**2, C * p * p)
    assert torch.equal(unpatchify(X, p, (C, H, W)), x)


@pytest.mark.parametrize('p, exc', [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_patchify_refuses_a_bad_patch_size(p, exc):
    "A patch size that is not a positive int is named (0 raised ZeroDivisionError)."
    with pytest.raises(exc, match='p: expected'):
        patchify(torch.zeros(1, 1, 8, 8), p)


@pytest.mark.parametrize('C, H, W, p', [(3, 4, 6, 2), (2, 6, 9, 3), (1, 4, 4, 2)])
def test_patchify_order(C, H, W, p):
    "Patches are in raster order and each is flattened (row, col, channel): channel fastest."
    x = torch.arange(C * H * W, dtype=torch.float64).reshape(1, C, H, W)
    X = patchify(x, p)
    w = W // p
    for n in range(X.shape[1]):
        R, Q = divmod(n, w)                                                # patch row, patch column
        for i in range(p):
            for j in range(p):
                for c in range(C):
                    assert X[0, n, (i * p + j) * C + c] == x[0, c, R * p + i, Q * p + j]


@pytest.mark.parametrize('shape, p', [((1, 8, 8), 3), ((3, 8, 6), 4), ((1, 6, 8), 4)])
def test_patch_size_must_divide(shape, p):
    "A patch size that does not divide H and W raises ValueError in both directions."
    with pytest.raises(ValueError, match=f'patch size {p} does not divide'):
        patchify(torch.zeros(1, *shape), p)
    with pytest.raises(ValueError, match=f'patch size {p} does not divide'):
        unpatchify(torch.zeros(1, 4, 4), p, shape)


def test_patch_wrong_shapes():
    "patchify wants rank 4; unpatchify wants tokens that match the image shape."
    with pytest.raises(ValueError, match=r'x: expected images \(B, C, H, W\)'):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match=r'X: expected \(B, 16, 4\) tokens'):
        unpatchify(torch.zeros(2, 16, 12), 2, (1, 8, 8))


# ---------------------------------------------------------------- pixels, dequantization, bits/dim

ALL_PIXELS = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)


def test_dequantize_uniform_range_and_bins():
    "Uniform dequantization stays in [-1, 1), each value in its own bin [x/128 − 1, (x+1)/128 − 1)."
    x = ALL_PIXELS.repeat(64, 1, 1, 1)
    y = dequantize(x, generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert y.min() >= -1 and y.max() < 1
    lo = x.double() / 128 - 1
    assert (y.double() >= lo).all() and (y.double() < lo + 1 / 128).all()
    u = 128 * (y.double() - lo)                                            # the noise, U[0, 1)
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005


@pytest.mark.parametrize('mode, sigma', [('uniform', 0.0), ('center', 0.0), ('gaussian', 0.0), ('gaussian', 1e-4)])
def test_quantize_inverts_dequantize(mode, sigma):
    "quantize(dequantize(x)) == x for all 256 pixel values (Gaussian noise far below half a bin)."
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        assert torch.equal(quantize(dequantize(ALL_PIXELS, mode, sigma, generator=g)), ALL_PIXELS)


def test_dequantize_center_and_gaussian_values():
    "'center' puts y at bin centres; 'gaussian' adds noise of std sigma around them."
    centre = dequantize(ALL_PIXELS, 'center')
    assert torch.equal(centre, (ALL_PIXELS.float() + 0.5) / 128 - 1)
    x = ALL_PIXELS.repeat(64, 1, 1, 1)
    noise = dequantize(x, 'gaussian', 0.1, generator=torch.Generator().manual_seed(2)) - dequantize(x, 'center')
    assert abs(noise.mean().item()) < 0.005 and abs(noise.std().item() - 0.1) < 0.005


def _fixed_noise(monkeypatch, u):
    "Make torch.rand return the constant `u`, so dequantize's uniform noise is pinned."
    monkeypatch.setattr(torch, 'rand', lambda shape, generator=None, device=None, **kw: torch.full(shape, u, device=device))


MAX_U = 1 - 2**-24            # the largest value torch.rand returns in fp32 (and 0 is the smallest)



@pytest.mark.parametrize('u', [0.0, 0.5, MAX_U],
                         ids=['u=0', 'u=0.5', 'u=max'])
def test_dequantize_noise_extremes_range(monkeypatch, u):
    "Every noise value torch.rand can return, including 0 and 1 − 2⁻²⁴, keeps y in [-1, 1)."
    _fixed_noise(monkeypatch, u)
    y = dequantize(ALL_PIXELS)
    assert y.min() >= -1 and y.max() < 1


@pytest.mark.parametrize('u', [0.0, 0.5, MAX_U],
                         ids=['u=0', 'u=0.5', 'u=max'])
def test_dequantize_noise_extremes_bin(monkeypatch, u):
    "Every noise value torch.rand can return decodes back to its own pixel value."
    _fixed_noise(monkeypatch, u)
    assert torch.equal(quantize(dequantize(ALL_PIXELS)), ALL_PIXELS)


def test_quantize_clips():
    "Values outside [-1, 1) are clipped to 0 and 255."
    assert quantize(torch.tensor([-3.0, -1.0, 0.999, 1.0, 5.0])).tolist() == [0, 0, 255, 255, 255]


def test_dequantize_bad_inputs():
    "dequantize wants uint8 images and a known mode."
    with pytest.raises(TypeError, match='x: expected uint8 pixels'):
        dequantize(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"mode: expected 'uniform', 'center', 'gaussian' or 'uniform\+gaussian'"):
        dequantize(ALL_PIXELS, 'triangle')


@pytest.mark.parametrize('nll', [math.log(2), torch.tensor(math.log(2), dtype=torch.float32),
                                 torch.tensor(math.log(2), dtype=torch.float64)], ids=['float', 'fp32', 'fp64'])
def test_nll_to_bpd_uniform_density(nll):
    "A uniform density on [-1, 1] (NLL ln 2 nats/dim) is exactly 8 bits per dimension, in every precision."
    assert float(nll_to_bpd(nll)) == 8.0


def test_nll_to_bpd_is_affine():
    "bpd = (nll + ln 128)/ln 2: slope 1/ln 2 and bpd(0) = 7."
    assert nll_to_bpd(0.0) == pytest.approx(7.0, rel=1e-15)
    assert nll_to_bpd(1.0) - nll_to_bpd(0.0) == pytest.approx(1 / math.log(2), rel=1e-12)


def test_noise_sigma_schedule():
    "sigma goes from sigma_max at τ = 0 to sigma_min at τ = 1, monotonically, and clamps τ outside [0, 1]."
    assert noise_sigma(0) == 0.1 and noise_sigma(1) == 0.005
    assert noise_sigma(-3) == 0.1 and noise_sigma(7) == 0.005
    assert noise_sigma(0.5, 1.0, 0.0) == pytest.approx(0.5, abs=1e-15)
    s = [noise_sigma(t) for t in np.linspace(0, 1, 101)]
    assert all(a > b for a, b in zip(s, s[1:]))


# ---------------------------------------------------------------- search path and download

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    "Point the cache, FARMER_DATA and the Debian folder into tmp_path so the user's folders are never used."
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.delenv('FARMER_DATA', raising=False)
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'debian', str(tmp_path / 'debian'))
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'urls', [(tmp_path / 'no-server').as_uri() + '/'])
    return tmp_path


def test_search_path_order(isolated, monkeypatch):
    "Search order: root, root/<name>, $FARMER_DATA/<name>, the Debian folder, the cache."
    t = isolated
    monkeypatch.setenv('FARMER_DATA', str(t / 'fd'))
    assert data_search_path('fashion_mnist', t / 'r') == [
        t / 'r', t / 'r' / 'fashion_mnist', t / 'fd' / 'fashion_mnist', t / 'debian', t / 'xdg' / 'farmer_nb' / 'fashion_mnist']


def test_search_path_defaults(isolated, monkeypatch):
    "Without root or FARMER_DATA only the Debian folder (if any) and the cache are searched."
    t = isolated
    assert data_search_path('fashion_mnist') == [t / 'debian', t / 'xdg' / 'farmer_nb' / 'fashion_mnist']
    assert data_search_path('mnist') == [t / 'xdg' / 'farmer_nb' / 'mnist']          # no Debian package
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(t / 'home'))
    assert data_search_path('mnist') == [t / 'home' / '.cache' / 'farmer_nb' / 'mnist']
    with pytest.raises(ValueError, match="name: unknown dataset 'cifar'"):
        data_search_path('cifar')


def make_idx_split(folder, n=5, size=6, seed=0, gz=True, files=SPLIT_FILES['train']):
    "Write a small fake MNIST-style split into `folder`; returns (images, labels)."
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    for fname, a in zip(files, (images, labels)):
        write_idx(folder / (fname if gz else fname.removesuffix('.gz')), a)
    return images, labels


@pytest.mark.parametrize('winner', ['root', 'root/name', 'farmer_data', 'debian', 'cache'])
def test_find_idx_files_first_folder_wins(isolated, monkeypatch, winner):
    "The first folder of the search path that holds both files is used; later ones are ignored."
    t = isolated
    monkeypatch.setenv('FARMER_DATA', str(t / 'fd'))
    folders = {'root': t / 'r', 'root/name': t / 'r' / 'fashion_mnist', 'farmer_data': t / 'fd' / 'fashion_mnist',
               'debian': t / 'debian', 'cache': t / 'xdg' / 'farmer_nb' / 'fashion_mnist'}
    names = list(folders)
    for k in names[names.index(winner):]: make_idx_split(folders[k])
    img, lbl = find_idx_files('fashion_mnist', 'train', root=t / 'r', download=False)
    assert img == folders[winner] / 'train-images-idx3-ubyte.gz' and lbl.parent == folders[winner]


def test_find_idx_files_plain_names(isolated):
    "Un-gzipped files (names without .gz) are found too."
    make_idx_split(isolated / 'r', gz=False)
    img, lbl = find_idx_files('fashion_mnist', 'train', root=isolated / 'r', download=False)
    assert img.name == 'train-images-idx3-ubyte' and lbl.name == 'train-labels-idx1-ubyte'


def test_find_idx_files_incomplete_folder_skipped(isolated):
    "A folder holding only the images (no labels) is not used."
    t = isolated
    make_idx_split(t / 'r')
    (t / 'r' / 'train-labels-idx1-ubyte.gz').unlink()
    make_idx_split(t / 'debian')
    assert find_idx_files('fashion_mnist', 'train', root=t / 'r', download=False)[0].parent == t / 'debian'


def test_not_found_message(isolated, monkeypatch):
    "FileNotFoundError names every folder searched, the apt package and the other ways to get the data."
    t = isolated
    monkeypatch.setenv('FARMER_DATA', str(t / 'fd'))
    with pytest.raises(FileNotFoundError) as e:
        find_idx_files('fashion_mnist', 'test', root=t / 'r', download=False)
    msg = str(e.value)
    for d in data_search_path('fashion_mnist', t / 'r'): assert str(d) in msg
    for s in ('Fashion-MNIST (test) not found', 'sudo apt-get install dataset-fashion-mnist', 'download=False',
              't10k-images-idx3-ubyte.gz', 'FARMER_DATA'):
        assert s in msg


def test_not_found_after_failed_download(isolated):
    "With download=True and an unreachable server the error says the download failed; the cache stays empty."
    with pytest.raises(FileNotFoundError, match='download failed') as e:
        find_idx_files('fashion_mnist', 'train')
    assert 'no-server' in str(e.value)
    cache = isolated / 'xdg' / 'farmer_nb' / 'fashion_mnist'
    assert not cache.exists() or list(cache.iterdir()) == []


def test_split_and_name_checked(isolated):
    "An unknown split or dataset name is a ValueError naming the argument."
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        find_idx_files('fashion_mnist', 'val', download=False)
    with pytest.raises(ValueError, match='name: unknown dataset'):
        find_idx_files('imagenet', 'train', download=False)


@pytest.fixture
def server(isolated, monkeypatch):
    "A file:// 'server' holding the four Fashion-MNIST files (fake, small) with their SHA-256 sums registered."
    src = isolated / 'server'
    make_idx_split(src, n=4, files=SPLIT_FILES['train'], seed=1)
    make_idx_split(src, n=3, files=SPLIT_FILES['t10k'], seed=2)
    sums = {f: sha256_file(src / f) for f in ALL_FILES}
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'sha256', sums)
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'urls', [src.as_uri() + '/'])
    return src


def test_sha256_file(tmp_path):
    "sha256_file is the SHA-256 hex digest of the file's bytes."
    (tmp_path / 'f').write_bytes(b'abc')
    assert sha256_file(tmp_path / 'f') == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'


def test_download_success(server, tmp_path):
    "download_dataset copies every file when the checksums match and leaves no partial files."
    dest = download_dataset('fashion_mnist', tmp_path / 'dest')
    assert dest == tmp_path / 'dest'
    assert sorted(p.name for p in dest.iterdir()) == sorted(ALL_FILES)
    for f in ALL_FILES: assert (dest / f).read_bytes() == (server / f).read_bytes()


def test_download_falls_back_to_second_url(server, tmp_path, monkeypatch):
    "If the first mirror fails the next one is tried."
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'urls', [(tmp_path / 'down').as_uri() + '/', server.as_uri() + '/'])
    dest = download_dataset('fashion_mnist', tmp_path / 'dest')
    assert sorted(p.name for p in dest.iterdir()) == sorted(ALL_FILES)


def test_download_skips_verified_files(server, tmp_path, monkeypatch):
    "Files already present with the right checksum are not downloaded again."
    download_dataset('fashion_mnist', tmp_path / 'dest')
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'urls', [(tmp_path / 'down').as_uri() + '/'])
    assert download_dataset('fashion_mnist', tmp_path / 'dest') == tmp_path / 'dest'


def test_download_checksum_mismatch(server, tmp_path, monkeypatch):
    "A file whose SHA-256 differs is rejected with an IOError and nothing is left in the destination."
    bad = dict(DATASETS['fashion_mnist']['sha256'], **{'train-images-idx3-ubyte.gz': '0' * 64})
    monkeypatch.setitem(DATASETS['fashion_mnist'], 'sha256', bad)
    dest = tmp_path / 'dest'
    with pytest.raises(IOError, match='SHA-256 mismatch for train-images-idx3-ubyte.gz') as e:
        download_dataset('fashion_mnist', dest)
    assert 'could not download train-images-idx3-ubyte.gz' in str(e.value)
    assert list(dest.iterdir()) == []                                      # no .part file, no unverified file


def test_download_into_cache_then_load(server, isolated):
    "FashionMNIST(download=True) with nothing on disk downloads into $XDG_CACHE_HOME/farmer_nb and loads."
    ds = FashionMNIST('test')
    cache = isolated / 'xdg' / 'farmer_nb' / 'fashion_mnist'
    assert ds.paths[0] == cache / 't10k-images-idx3-ubyte.gz'
    assert ds.images.shape == (3, 1, 6, 6) and len(ds) == 3


# ---------------------------------------------------------------- datasets

@pytest.mark.parametrize('gz', [True, False])
def test_fashion_mnist_from_root(isolated, gz):
    "FashionMNIST reads a split from root: images (n, 1, H, W) uint8, labels (n,) int64, with the right values."
    images, labels = make_idx_split(isolated / 'r', n=5, size=6, gz=gz)
    ds = FashionMNIST('train', root=isolated / 'r', download=False)
    assert ds.images.shape == (5, 1, 6, 6) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (5,) and ds.labels.dtype == torch.int64
    assert np.array_equal(ds.images[:, 0].numpy(), images) and np.array_equal(ds.labels.numpy(), labels)
    x, y = ds[2]
    assert x.shape == (1, 6, 6) and y.item() == labels[2] and len(ds) == 5
    assert ds.classes == DATASETS['fashion_mnist']['classes'] and 'n=5' in repr(ds)


def test_idx_dataset_by_name(tmp_path, monkeypatch):
    "IDXDataset(name='mnist') loads the same way from root/mnist."
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    monkeypatch.delenv('FARMER_DATA', raising=False)
    make_idx_split(tmp_path / 'mnist', n=4, files=SPLIT_FILES['t10k'])
    ds = IDXDataset('test', root=tmp_path, download=False, name='mnist')
    assert ds.images.shape == (4, 1, 6, 6) and ds.classes == tuple('0123456789')


def test_idx_dataset_inconsistent_files(isolated):
    "Label count different from image count, or non-uint8 images, raise ValueError."
    r = isolated / 'r'
    make_idx_split(r, n=5)
    write_idx(r / 'train-labels-idx1-ubyte.gz', np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r'expected uint8 images \(n, H, W\) with n labels'):
        FashionMNIST('train', root=r, download=False)
    write_idx(r / 'train-labels-idx1-ubyte.gz', np.zeros(5, np.uint8))
    write_idx(r / 'train-images-idx3-ubyte.gz', np.zeros((5, 6, 6), np.float32))
    with pytest.raises(ValueError, match='float32'):
        FashionMNIST('train', root=r, download=False)


def write_png(path, array):
    "Save a uint8 array (H, W, 3) or (H, W) as a PNG with Pillow."
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    "Sub-folders become sorted classes; images are centre-cropped and resized to (n, C, size, size) uint8."
    white_centre = np.zeros((6, 12, 3), np.uint8); white_centre[:, 3:9] = 255     # 6×12: centre 6×6 is white
    write_png(tmp_path / 'zebra' / 'a.png', white_centre)
    write_png(tmp_path / 'cat' / 'b.png', np.full((10, 7, 3), (255, 0, 0), np.uint8))
    write_png(tmp_path / 'cat' / 'c.png', np.full((5, 5, 3), (0, 0, 200), np.uint8))
    (tmp_path / 'cat' / 'notes.txt').write_text('not an image')
    ds = ImageFolder(tmp_path, size=8, channels=3)
    assert ds.classes == ('cat', 'zebra') and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 3, 8, 8) and ds.images.dtype == torch.uint8 and len(ds) == 3
    assert (ds.images[0] == torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None]).all()
    assert (ds.images[1] == torch.tensor([0, 0, 200], dtype=torch.uint8)[:, None, None]).all()
    assert (ds.images[2] == 255).all()                                              # black margins cropped away
    grey = ImageFolder(tmp_path, size=4, channels=1)
    assert grey.images.shape == (3, 1, 4, 4) and grey.images[2].eq(255).all()


def test_image_folder_errors(tmp_path):
    "Bad channel counts and folders without images raise clear errors."
    with pytest.raises(ValueError, match='channels: expected 1 or 3, got 2'):
        ImageFolder(tmp_path, channels=2)
    with pytest.raises(FileNotFoundError, match='root: no .png/.jpg/.jpeg images under'):
        ImageFolder(tmp_path)


def test_synthetic_images():
    "SyntheticImages is deterministic for a seed and gives uint8 images with labels in range."
    a, b = SyntheticImages(n=16, size=8, channels=3, num_classes=4, seed=3), SyntheticImages(16, 8, 3, 4, 3)
    assert a.images.shape == (16, 3, 8, 8) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.labels.min() >= 0 and a.labels.max() < 4 and len(a.classes) == 4


# ---------------------------------------------------------------- argument checks

@pytest.mark.parametrize('x, kw, exc, match', [
    ([[0]], {}, TypeError, 'x: expected a torch.Tensor'),
    (torch.zeros(2, 8, 8, dtype=torch.uint8), {}, ValueError, 'x: expected images of shape .* got rank 3'),
    (torch.zeros(0, 1, 8, 8, dtype=torch.uint8), {}, ValueError, r'x: empty batch \(B = 0\)'),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), dict(shape=(1, 8, 8)), ValueError, r'\(C, H, W\) = \(1, 8, 8\), got \(3, 8, 8\)'),
    (torch.zeros(2, 1, 8, 8), {}, TypeError, r'x: expected uint8 pixels.*\[-1, 1\]: quantize\(x\)'),
    (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), dict(dtype='float'), TypeError, r'x: expected float images.*dequantize\(\)'),
    (torch.zeros(2, 1, 8, 8, dtype=torch.int32), dict(dtype='float'), TypeError, 'x: expected float images'),
    (torch.full((2, 1, 8, 8), float('nan')), dict(dtype='float'), ValueError, 'x: contains NaN or Inf'),
    (torch.full((2, 1, 8, 8), -float('inf')), dict(dtype='float'), ValueError, 'x: contains NaN or Inf'),
    (torch.full((2, 1, 8, 8), 255.0), dict(dtype='float'), ValueError, r"x: expected values in the model's \[-1, 1\] range"),
    (torch.full((2, 1, 8, 8), 1.6), dict(dtype='float', name='imgs'), ValueError, 'imgs: expected values'),
])
def test_check_images_errors(x, kw, exc, match):
    "check_images raises the right exception type with a message naming the argument."
    with pytest.raises(exc, match=match):
        check_images(x, **kw)


def test_check_images_accepts():
    "Valid batches pass through unchanged (floats up to max_abs allow for noise)."
    x = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    assert check_images(x, (1, 8, 8)) is x
    y = torch.full((1, 1, 2, 2), 1.4)
    assert check_images(y, dtype='float') is y


@pytest.mark.parametrize('labels, kw, exc, match', [
    ([0, 1], {}, TypeError, 'labels: expected a torch.Tensor'),
    (torch.tensor([0.0, 1.0]), {}, TypeError, 'labels: expected integer class indices, got torch.float32'),
    (torch.tensor([True, False]), {}, TypeError, 'labels: expected integer class indices, got torch.bool'),
    (torch.tensor([[0, 1]]), {}, ValueError, r'labels: expected shape \(B,\), got \(1, 2\)'),
    (torch.tensor([0, 1, 2]), dict(batch_size=2), ValueError, r'labels: expected shape \(2,\), got \(3,\)'),
    (torch.tensor([0, 4]), {}, ValueError, r'labels: expected values in \[0, 4\), got \[0, 4\]'),
    (torch.tensor([-1, 0]), {}, ValueError, r'labels: expected values in \[0, 4\), got \[-1, 0\]'),
])
def test_check_labels_errors(labels, kw, exc, match):
    "check_labels raises the right exception type with a message naming the argument."
    with pytest.raises(exc, match=match):
        check_labels(labels, 4, **kw)


def test_check_labels_returns_long():
    "Valid integer labels of any integer dtype come back as int64."
    out = check_labels(torch.tensor([0, 3], dtype=torch.uint8), 4, batch_size=2)
    assert out.dtype == torch.int64 and out.tolist() == [0, 3]


# ---------------------------------------------------------------- Emoji64

def _fake_emoji_root(tmp_path, monkeypatch):
    "Fake tarballs under tmp_path/emoji64, with npm's integrity of those fakes patched in."
    root = tmp_path / 'emoji64'
    root.mkdir()
    packages = {}
    for vendor, (pkg, _) in fd.EMOJI64['packages'].items():
        path = fd.fake_emoji_tarball(root / fd.emoji_tarball(vendor), vendor, n_per_class=12)
        packages[vendor] = (pkg, fd.npm_integrity(path))
    monkeypatch.setitem(fd.EMOJI64, 'packages', packages)
    monkeypatch.delenv('FARMER_DATA', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))            # not the real cache of this machine
    return tmp_path


def test_emoji64_builds_and_caches(tmp_path, monkeypatch):
    "From two (fake) tarballs: integrity checked, decoded, split by identity, cached beside them, read back from the cache."
    root = _fake_emoji_root(tmp_path, monkeypatch)
    tr, te = fd.Emoji64('train', root, fetch=False), fd.Emoji64('test', root, fetch=False)
    cache = root / 'emoji64' / 'emoji64-16.0.0.npz'
    assert cache.exists()
    assert (len(tr), len(te)) == (342, 18) and not set(tr.ids) & set(te.ids)
    assert tr.images.dtype == torch.uint8 and tr.images.shape[1:] == (3, 64, 64)
    assert set(tr.labels.tolist()) == set(range(9)) and set(tr.vendors) == {'google', 'twitter'}
    for t in root.glob('emoji64/*.tgz'): t.unlink()                          # now only the cache is there
    again = fd.Emoji64('train', root, fetch=False)
    assert torch.equal(again.images, tr.images) and torch.equal(again.labels, tr.labels)
    assert len(fd.Emoji64('train', root, skin_tones=False)) == 198


def test_emoji64_refuses_a_tampered_tarball(tmp_path, monkeypatch):
    "One changed byte: the integrity check fails and nothing is cached."
    root = _fake_emoji_root(tmp_path, monkeypatch)
    t = root / 'emoji64' / fd.emoji_tarball('google')
    raw = bytearray(t.read_bytes()); raw[100] ^= 1; t.write_bytes(bytes(raw))
    with pytest.raises(IOError, match='integrity mismatch'): fd.Emoji64('train', root, fetch=False)
    assert not (root / 'emoji64' / 'emoji64-16.0.0.npz').exists()


def test_emoji64_missing_says_how_to_get_it(tmp_path, monkeypatch):
    "No tarballs, no npm: the error lists the folders searched and the npm command."
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    monkeypatch.delenv('FARMER_DATA', raising=False)
    with pytest.raises(FileNotFoundError, match='npm pack emoji-datasource-google@16.0.0'):
        fd.Emoji64('train', tmp_path / 'nowhere', fetch=False)
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"): fd.Emoji64('val', tmp_path)


def test_emoji_test_split_keeps_every_copy_together():
    "All drawings and skin tones of an emoji land on one side; about one emoji in ten is held out per category."
    cat = np.array(['x'] * 40 + ['y'] * 40)
    ids = np.array([f'{c}{k // 4}' for c, k in zip(cat, list(range(40)) * 2)])   # 10 emoji per category, 4 copies each
    test = fd.emoji_test_split(cat, ids, np.arange(80))
    for e in set(ids): assert len(set(test[ids == e])) == 1
    assert sorted(set(ids[test])) == ['x5', 'y5']


@pytest.mark.skipif(not any((d / f"emoji64-{fd.EMOJI64['version']}.npz").exists() or (d / fd.emoji_tarball('google')).exists()
                            for d in fd.emoji_search_path()), reason='Emoji64 tarballs not present (scripts/test.sh fetches them)')
def test_emoji64_real():
    "The real data: 9 classes, 6,812 / 750 images with skin tones, 3,432 / 380 without, no emoji on both sides."
    tr, te = fd.Emoji64('train', fetch=False), fd.Emoji64('test', fetch=False)
    assert (len(tr), len(te)) == (6812, 750)
    assert torch.bincount(te.labels, minlength=9).tolist() == [34, 448, 32, 26, 44, 16, 52, 44, 54]
    assert not set(tr.ids) & set(te.ids)
    assert (len(fd.Emoji64('train', skin_tones=False)), len(fd.Emoji64('test', skin_tones=False))) == (3432, 380)
    assert tr.images.dtype == torch.uint8 and tr.images.shape[1:] == (3, 64, 64) and tr.images.float().mean() > 150
    assert set(tr.vendors) == {'google', 'twitter'}
