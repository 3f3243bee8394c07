"""The style measures of issue 14: does a stylisation keep its photo, carry the style, stay free of a grid."""

from __future__ import annotations

import pytest
import torch

from perceptlab.features import VGG16Features
from perceptlab.style.measures import blob_fraction, content_ratio, style_ratio


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return VGG16Features(["relu1_2", "relu2_2", "relu3_3", "relu4_3"], weights=None)


def _photos(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Smooth random photos of different sizes: each has its own structure.
    return [torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(40 + 8 * i, 48),
                                            mode="bicubic").clamp(0, 1) for i in range(n)]  # fmt: skip


def test_content_ratio_is_zero_for_the_photo_itself_and_above_one_for_another_photo(vgg):
    photos = _photos()
    assert content_ratio(photos, photos, side=32, vgg=vgg).max() == 0
    swapped = [photos[1], photos[0], photos[2]]
    ratio = content_ratio(swapped, photos, side=32, vgg=vgg)
    assert ratio[0] > 1 and ratio[1] > 1 and ratio[2] == 0
    # A little noise keeps the photo: the ratio stays far below 1.
    noisy = [(p + 0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1) for p in photos]
    assert content_ratio(noisy, photos, side=32, vgg=vgg).max() < 0.5
    with pytest.raises(ValueError, match="two or more photos"):
        content_ratio(photos[:1], photos[:1], vgg=vgg)


def test_style_ratio_is_one_for_the_photo_and_near_zero_for_the_style_image(vgg):
    photos, (style,) = _photos(2), _photos(1, seed=5)
    assert torch.allclose(style_ratio(photos, photos, style, style_size=48, vgg=vgg), torch.ones(2, dtype=torch.float64))
    resized = torch.nn.functional.interpolate(style, size=(48, 48), mode="bicubic").clamp(0, 1)
    assert style_ratio([resized] * 2, photos, style, style_size=48, vgg=vgg).max() < 0.2
    with pytest.raises(ValueError, match="one stylisation of each photo"):
        style_ratio(photos[:1], photos, style, vgg=vgg)


def test_blob_fraction_counts_burnt_pixels_where_the_photo_is_not_burnt():
    photo = torch.full((1, 3, 20, 20), 0.5)
    photo[..., :, :5] = 0.0  # a dark band in the photo: black there is no blob
    out = photo.clone()
    out[..., 10:14, 10:15] = 0.0   # 20 black pixels
    out[..., 0:2, 10:13] = 1.0     # 6 white pixels
    out[..., :, :5] = 0.0
    assert blob_fraction([out], [photo]).tolist() == pytest.approx([26 / 400])
    assert blob_fraction([photo], [photo]).tolist() == [0.0]
    near_black = photo.clone()
    near_black[..., 10:14, 10:15] = 0.05  # dark, but not burnt out
    assert blob_fraction([near_black], [photo]).tolist() == [0.0]
    with pytest.raises(ValueError, match="differ in shape"):
        blob_fraction([out[..., :10]], [photo])
