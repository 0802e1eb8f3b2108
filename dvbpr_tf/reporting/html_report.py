"""`report.html`: one static page per work dir, a person's view of its `results.json`.

The page has no JavaScript and loads nothing from outside: its figures are the PNGs of the
work dir, referenced by relative paths (so the folder can be moved or copied whole). Every
number on it is read from the run's results by a dotted key (`dvbpr.auc_test`,
`learning_curve.3.auc_valid`) and carries that key and its exact JSON value in `data-key` /
`data-value` attributes, so a test (or a reader's script) can check the page against
`results.json`.

What a page holds is a list of `Section`s, each a title and blocks: `Values` (a two-column
table of labelled numbers), `Grid` (rows x columns of numbers), `Figure` (a PNG and its
caption) and plain `str` paragraphs. `experiments/` chooses the sections; this module only
renders them.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import pathlib
from typing import Any, Mapping, Sequence, Union

from dvbpr_tf.core import files

REPORT_NAME = "report.html"


@dataclasses.dataclass(frozen=True)
class Value:
  """One labelled number of the results (`key`: a dotted path into them)."""

  label: str
  key: str
  digits: int = 4


@dataclasses.dataclass(frozen=True)
class Values:
  """A two-column table: label, number."""

  values: tuple[Value, ...]


@dataclasses.dataclass(frozen=True)
class Grid:
  """A table of numbers: `rows` are (label, one key per column; None for an empty cell)."""

  columns: tuple[str, ...]
  rows: tuple[tuple[str, tuple[str | None, ...]], ...]
  digits: int = 4


@dataclasses.dataclass(frozen=True)
class Figure:
  """A PNG (its path as results.json records it: absolute or relative to the current
  folder) and a one-line caption saying what it is."""

  path: str | os.PathLike
  caption: str


Block = Union[Values, Grid, Figure, str]


@dataclasses.dataclass(frozen=True)
class Section:
  title: str
  blocks: tuple[Block, ...]


def lookup(results: Mapping[str, Any], key: str):
  """The value at a dotted key (list items by their index); None where there is none."""
  value: Any = results
  for part in key.split("."):
    if isinstance(value, Mapping) and part in value:
      value = value[part]
    elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
      value = value[int(part)]
    else:
      return None
  return value


def format_value(value, digits: int = 4) -> str:
  """How a number is shown: floats with `digits` decimals, ints in full, None as n/a."""
  if value is None:
    return "n/a"
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, int):
    return str(value)
  if isinstance(value, float):
    return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
  return str(value)


def _number(results, key: str | None, digits: int) -> str:
  if key is None:
    return "<td></td>"
  value = lookup(results, key)
  if isinstance(value, (Mapping, list, tuple)):
    raise ValueError(f"report key {key!r} names a {type(value).__name__}, not a number")
  attributes = (f'data-key="{html.escape(key)}" '
                f'data-value="{html.escape(json.dumps(value))}"')
  return f'<td class="num" {attributes}>{html.escape(format_value(value, digits))}</td>'


def _figure(figure: Figure, folder: pathlib.Path) -> str:
  path = pathlib.Path(os.path.abspath(figure.path))
  caption = html.escape(figure.caption)
  if not path.is_file():
    return f'<p class="missing">(figure not written: {html.escape(str(figure.path))}) ' \
           f'{caption}</p>'
  source = os.path.relpath(path, folder.resolve())
  return (f'<figure><img src="{html.escape(pathlib.Path(source).as_posix())}" '
          f'alt="{caption}"><figcaption>{caption}</figcaption></figure>')


def _block(block: Block, results, folder: pathlib.Path) -> str:
  if isinstance(block, str):
    return f"<p>{html.escape(block)}</p>"
  if isinstance(block, Figure):
    return _figure(block, folder)
  if isinstance(block, Values):
    rows = "".join(f"<tr><th>{html.escape(v.label)}</th>{_number(results, v.key, v.digits)}"
                   "</tr>" for v in block.values)
    return f'<table class="values">{rows}</table>'
  if isinstance(block, Grid):
    head = "<tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
    body = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(_number(results, key, block.digits) for key in keys) + "</tr>"
        for label, keys in block.rows)
    return f'<table class="grid">{head}</tr>{body}</table>'
  raise TypeError(f"not a report block: {block!r}")


_STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #444; max-width: 50em; }
img { image-rendering: pixelated; max-width: 100%; }
.missing { color: #a00; } .subtitle { color: #555; }
"""


def render(title: str, results: Mapping[str, Any], sections: Sequence[Section],
           folder: str | os.PathLike, subtitle: str = "") -> str:
  """The page as text; image paths are made relative to `folder` (where it will live)."""
  folder = pathlib.Path(folder)
  parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
  if subtitle:
    parts.append(f'<p class="subtitle">{html.escape(subtitle)}</p>')
  for section in sections:
    parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
    parts.extend(_block(block, results, folder) for block in section.blocks)
    parts.append("</section>")
  parts.append('<p class="subtitle">Every number here is read from results.json beside this '
               "page.</p></body></html>")
  return "\n".join(parts) + "\n"


def write_report(folder: str | os.PathLike, title: str, results: Mapping[str, Any],
                 sections: Sequence[Section], subtitle: str = "") -> pathlib.Path:
  """Writes `<folder>/report.html` atomically; returns its path.

  `results` must be what the run wrote to its results.json (JSON-able: the page quotes its
  values as JSON).
  """
  path = pathlib.Path(folder) / REPORT_NAME
  results = json.loads(json.dumps(files.jsonable(results)))
  text = render(title, results, sections, folder, subtitle)
  files.write_bytes_atomic(path, text.encode("utf-8"))
  return path
