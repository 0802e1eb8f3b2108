"""Checks a written report.html against the results.json beside it (shared by the tests)."""

import html.parser
import json
import pathlib

from dvbpr_tf.reporting import html_report


class _Page(html.parser.HTMLParser):
  """Collects the images, the numbers (data-key cells with their text) and the tags."""

  def __init__(self):
    super().__init__()
    self.images, self.numbers, self.scripts, self.links = [], [], 0, []
    self.open_tags = []
    self._cell = None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag not in ("img", "meta", "br", "link", "hr", "input"):
      self.open_tags.append(tag)
    if tag == "img":
      self.images.append(attrs["src"])
    if tag == "script":
      self.scripts += 1
    if tag == "link" or "href" in attrs:
      self.links.append(attrs.get("href"))
    if "data-key" in attrs:
      self._cell = {"key": attrs["data-key"], "value": attrs["data-value"], "text": ""}

  def handle_endtag(self, tag):
    assert self.open_tags and self.open_tags[-1] == tag, (tag, self.open_tags[-5:])
    self.open_tags.pop()
    if self._cell is not None and tag == "td":
      self.numbers.append(self._cell)
      self._cell = None

  def handle_data(self, data):
    if self._cell is not None:
      self._cell["text"] += data


def check_report(folder, min_numbers: int = 1, min_images: int = 0) -> dict:
  """Parses <folder>/report.html; asserts it is well formed, self-contained, that each image
  exists and each number equals results.json's. Returns what was found."""
  folder = pathlib.Path(folder)
  text = (folder / "report.html").read_text()
  results = json.loads((folder / "results.json").read_text())
  page = _Page()
  page.feed(text)
  page.close()
  assert page.open_tags == [], page.open_tags
  assert page.scripts == 0 and not [link for link in page.links if link], page.links
  assert "http://" not in text and "https://" not in text
  for source in page.images:
    assert not source.startswith("/") and (folder / source).is_file(), source
  for cell in page.numbers:
    value = html_report.lookup(results, cell["key"])
    assert json.loads(cell["value"]) == value, cell
    digits = len(cell["text"].partition(".")[2])  # As many decimals as shown.
    assert cell["text"] == html_report.format_value(value, digits), cell
  assert len(page.numbers) >= min_numbers, len(page.numbers)
  assert len(page.images) >= min_images, page.images
  return {"images": page.images, "numbers": {c["key"]: json.loads(c["value"])
                                             for c in page.numbers}}
