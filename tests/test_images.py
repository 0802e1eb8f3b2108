"""Image conversion to the stored RGB JPEG, and the reduced-scale decode of large JPEGs."""

import io

import numpy as np
import pytest
from PIL import Image

from dvbpr_tf_datasets.common import images
from tests import feedback_files


def _photo(mode="RGB", size=(1166, 1750)) -> bytes:
  y, x = np.mgrid[0:size[1], 0:size[0]]
  pixels = np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 9) % 256], -1)
  out = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(out, "JPEG", quality=90)
  return out.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_reduced_decode_is_close_to_the_full_decode(mode):
  data = _photo(mode)
  full = feedback_files.decode(images.to_rgb_jpeg(data, 64))
  fast = feedback_files.decode(images.to_rgb_jpeg(data, 64, reduced_decode=True))
  assert (fast.mode, fast.size) == ("RGB", (64, 64))
  assert np.abs(np.asarray(full, float) - np.asarray(fast, float)).mean() < 4


def test_reduced_decode_still_finds_truncated_files():
  data = _photo()
  with pytest.raises(images.BadImageError, match="truncated"):
    images.to_rgb_jpeg(data[:len(data) // 2], 64, reduced_decode=True)


def test_a_source_that_draft_shrinks_to_the_size_exactly_is_still_reencoded():
  data = _photo(size=(512, 512))  # 1/8 scale is 64x64 already.
  out = images.to_rgb_jpeg(data, 64, reduced_decode=True)
  assert out != data and feedback_files.decode(out).size == (64, 64)


def test_not_an_image_says_so_without_an_object_address():
  with pytest.raises(images.BadImageError) as e:
    images.to_rgb_jpeg(b"<html>404</html>", 64)
  assert "object at 0x" not in str(e.value) and "not an image" in str(e.value)
