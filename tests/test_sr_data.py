"""SR training data: the degradation and the random-crop dataset, on small synthetic folders."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.io import ImageError
from perceptlab.ops import gaussian_blur, imresize
from perceptlab.sr import SRTrainingSet, degrade


def write_png(path, height, width, gray=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (height, width) if gray else (height, width, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def folders(tmp_path):
    """Two folders: colour images of several sizes, one grayscale, one too small for a 32 crop."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_png(a / "wide.png", 40, 64, seed=1)
    write_png(a / "tall.png", 48, 36, seed=2)
    write_png(b / "gray.png", 33, 35, gray=True, seed=3)
    write_png(b / "tiny.png", 20, 50, seed=4)
    return a, b


def load_set(folders, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SRTrainingSet(list(folders), scale=4, hr_crop=32, **kwargs)


def test_degrade_is_clamped_bicubic_of_the_blurred_image():
    hr = torch.rand(2, 3, 32, 24, dtype=torch.float64)
    assert degrade(hr, 4).shape == (2, 3, 8, 6)
    torch.testing.assert_close(degrade(hr, 4), imresize(hr, scale=0.25).clamp(0, 1))
    blurred = imresize(gaussian_blur(hr, 1.0), scale=0.5).clamp(0, 1)
    torch.testing.assert_close(degrade(hr, 2, blur_sigma=1.0), blurred)
    assert not torch.allclose(degrade(hr, 2, blur_sigma=1.0), degrade(hr, 2))
    lr = degrade(hr[..., :30, :], 3)
    assert lr.min() >= 0 and lr.max() <= 1


def test_degrade_keeps_flat_images_and_is_differentiable():
    flat = torch.full((1, 3, 12, 12), 0.25, dtype=torch.float64)
    expected = torch.full((1, 3, 4, 4), 0.25, dtype=torch.float64)
    torch.testing.assert_close(degrade(flat, 3, blur_sigma=1.0), expected)
    hr = torch.rand(1, 1, 8, 8, dtype=torch.float64).mul(0.5).add(0.25).requires_grad_()  # no clamping at work
    assert torch.autograd.gradcheck(lambda x: degrade(x, 2, blur_sigma=0.8), (hr,))


def test_degrade_errors():
    with pytest.raises(ValueError, match="multiple of 4"):
        degrade(torch.rand(1, 3, 30, 32), 4)
    with pytest.raises(ValueError, match="positive int"):
        degrade(torch.rand(1, 3, 32, 32), 0)
    with pytest.raises(ValueError, match="sigma"):
        degrade(torch.rand(1, 3, 32, 32), 4, blur_sigma=-1.0)


def test_loads_every_image_big_enough_and_warns_about_the_rest(folders):
    with pytest.warns(UserWarning, match=r"skipped 1 image\(s\) smaller than the 32-pixel crop \(tiny.png: 20x50\)"):
        data = SRTrainingSet(list(folders), scale=4, hr_crop=32)
    assert [p.name for p in data.paths] == ["tall.png", "wide.png", "gray.png"]
    assert all(image.dtype == torch.uint8 and image.shape[0] == 3 for image in data.images)
    gray = data.images[2]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_sample_batch_shapes_range_and_pairing(folders):
    data = load_set(folders)
    lr, hr = data.sample_batch(6, torch.Generator().manual_seed(0))
    assert hr.shape == (6, 3, 32, 32) and lr.shape == (6, 3, 8, 8)
    assert hr.dtype == lr.dtype == torch.float32
    assert hr.min() >= 0 and hr.max() <= 1
    torch.testing.assert_close(lr, degrade(hr, 4))
    # HR values come straight from the 8-bit files.
    torch.testing.assert_close(hr * 255, (hr * 255).round())


def test_sample_batch_is_deterministic_per_generator_seed(folders):
    data = load_set(folders)
    first = data.sample_batch(4, torch.Generator().manual_seed(7))
    again = data.sample_batch(4, torch.Generator().manual_seed(7))
    other = data.sample_batch(4, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not torch.equal(first[1], other[1])
    # Without a generator the dataset's own, seeded by `seed`, is used.
    own = load_set(folders, seed=3).sample_batch(4)
    assert torch.equal(own[1], load_set(folders, seed=3).sample_batch(4)[1])


def dihedral(image):
    """The 8 flips/rotations of a square image."""
    out = []
    for t in (image, image.transpose(-1, -2)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2)]
    return out


def locate(crop, images):
    """(image index, transform index) such that `crop` is a square cut of that transformed image."""
    c = crop.shape[-1]
    for i, image in enumerate(images):
        h, w = image.shape[-2:]
        for k, variant in enumerate(dihedral(crop)):
            windows = image.unfold(1, c, 1).unfold(2, c, 1)  # (3, h-c+1, w-c+1, c, c)
            if (windows == variant[:, None, None]).all(-1).all(-1).all(0).any():
                return i, k
    return None


def test_crops_are_cut_from_the_images_with_all_flips_and_rotations(folders):
    data = load_set(folders)
    _, hr = data.sample_batch(64, torch.Generator().manual_seed(1))
    crops = hr.mul(255).round().to(torch.uint8)
    found = [locate(crop, data.images) for crop in crops]
    assert None not in found
    assert {i for i, _ in found} == {0, 1, 2}
    # Random noise images have no symmetry, so the 8 transforms are told apart; all of them occur.
    assert len({k for _, k in found}) == 8


def test_iteration_yields_single_pairs(folders):
    data = load_set(folders)
    pairs = [pair for pair, _ in zip(data, range(3))]
    assert all(lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32) for lr, hr in pairs)
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    lr, hr = next(iter(loader))
    assert lr.shape == (2, 3, 8, 8) and hr.shape == (2, 3, 32, 32)


def test_errors(folders, tmp_path):
    with pytest.raises(ImageError, match="no such folder"):
        SRTrainingSet(tmp_path / "missing", scale=4)
    with pytest.raises(ValueError, match="multiple of scale=3"):
        SRTrainingSet(folders[0], scale=3, hr_crop=32)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no image of at least 96x96"):
        SRTrainingSet(folders[0], scale=4)
    with pytest.raises(ValueError, match="batch_size"):
        load_set(folders).sample_batch(0)
