"""Item embeddings for TensorBoard's embedding projector: vectors, a sprite and metadata.

Writes into `<logdir>/projector/`: a checkpoint holding the variable `item_embeddings`,
`metadata.tsv` (item id, category, source id), `sprite.png` (the items' images in a grid) and
`projector_config.pbtxt` that ties them together. Open with `tensorboard --logdir <logdir>`
and choose PROJECTOR.
"""

from __future__ import annotations

import io
import math
import pathlib

import numpy as np
from PIL import Image
import tensorflow as tf

from dvbpr_tf.core import files

SPRITE_MAX_SIDE = 8192  # TensorBoard's limit on the sprite image.


def write_projector(logdir: str | pathlib.Path, vectors: np.ndarray, items: np.ndarray,
                    categories, source_ids, jpegs, thumb_size: int = 32) -> pathlib.Path:
  """Writes the projector files for `items` (their rows of `vectors`)."""
  out = pathlib.Path(logdir) / "projector"
  out.mkdir(parents=True, exist_ok=True)
  items = np.asarray(items)
  per_row = max(1, math.ceil(math.sqrt(len(items))))
  thumb_size = min(thumb_size, SPRITE_MAX_SIDE // per_row)
  sprite = Image.new("RGB", (per_row * thumb_size, per_row * thumb_size), (255, 255, 255))
  for n, item in enumerate(items):
    thumb = Image.open(io.BytesIO(jpegs[item])).convert("RGB").resize(
        (thumb_size, thumb_size), Image.BILINEAR)
    sprite.paste(thumb, ((n % per_row) * thumb_size, (n // per_row) * thumb_size))
  files.write_png_atomic(out / "sprite.png", np.asarray(sprite))
  lines = ["item_id\tcategory\tsource_id"] + [
      f"{item}\t{categories[item]}\t{source_ids[item]}" for item in items]
  files.write_bytes_atomic(out / "metadata.tsv", ("\n".join(lines) + "\n").encode())
  variable = tf.Variable(np.asarray(vectors)[items], name="item_embeddings")
  checkpoint = tf.train.Checkpoint(item_embeddings=variable)
  path = checkpoint.save(str(out / "embeddings.ckpt"))
  tensor_name = "item_embeddings/.ATTRIBUTES/VARIABLE_VALUE"
  config = (
      "embeddings {\n"
      f'  tensor_name: "{tensor_name}"\n'
      '  metadata_path: "metadata.tsv"\n'
      "  sprite {\n"
      '    image_path: "sprite.png"\n'
      f"    single_image_dim: {thumb_size}\n"
      f"    single_image_dim: {thumb_size}\n"
      "  }\n"
      "}\n"
      f'model_checkpoint_path: "{pathlib.Path(path).name}"\n')
  files.write_bytes_atomic(out / "projector_config.pbtxt", config.encode())
  return out
