"""Fuzzing the authors' pickle loader: every damaged file loads or is refused in one line.

Hypothesis mutates valid files in the authors' format (Python 2's opcodes from
`make_dummy_data.py`, and NumPy 2's `np.save`): opcodes inserted with random or lying
arguments, length fields, memo indices and integers changed, opcodes deleted or repeated,
bytes flipped, deep nesting inserted, the file cut short. Each file is loaded in a child
process (`_Worker`, one for many files), so that a segfault is a failed case rather than a
dead pytest; the child runs under `RLIMIT_AS` (set by `preexec_fn`) of its own footprint plus
`safe_pickle.memory_budget` of the largest case, so that a load past the budget shows as a
MemoryError. Every case must load or raise `UnsafePickleError` / `AuthorsFormatError`: one
line naming the file, never caused by a MemoryError.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import pathlib
import pickle
import pickletools
import resource
import select
import struct
import subprocess
import sys

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import pytest

from dvbpr_tf_datasets.dvbpr_authors import make_dummy_data as dummy
from dvbpr_tf_datasets.dvbpr_authors import safe_pickle

FAST_CASES = 200
SLOW_CASES = 5000
MAX_CASE_SIZE = 64 * 1024  # The strategy's files stay below this (about 3 KB, up to ~20 KB).
_TIMEOUT_S = 30  # One load; the authors'-sized ones take milliseconds.
_ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")

# The child: reads one path a line, answers one JSON line. 'STATUS' reports its memory.
_WORKER = r"""
import json, sys, traceback
from dvbpr_tf_datasets.common import errors
from dvbpr_tf_datasets.dvbpr_authors import safe_pickle

for line in sys.stdin:
  path = line.rstrip("\n")
  if path == "STATUS":
    status = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in open("/proc/self/status")
              if l.startswith(("VmPeak:", "VmSize:"))}
    print(json.dumps(status), flush=True)
    continue
  try:
    safe_pickle.load_authors_dataset(path)
    out = {"outcome": "loaded"}
  except errors.DatasetError as e:
    cause = e.__cause__
    out = {"outcome": "refused", "type": type(e).__name__, "message": str(e),
           "cause": type(cause).__name__ if cause is not None else None}
  except Exception as e:  # What the test looks for: reported, not fatal to the child.
    out = {"outcome": "raised", "type": type(e).__name__, "traceback": traceback.format_exc()}
  print(json.dumps(out), flush=True)
"""


class _Worker:
  """A child process that loads files one at a time; restarted when it dies."""

  def __init__(self, limit: int | None):
    self.limit = limit
    self._proc: subprocess.Popen | None = None

  def _preexec(self) -> None:
    if self.limit is not None:
      resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

  def _start(self) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=_ENV, preexec_fn=self._preexec,
    )

  def ask(self, line: str) -> dict:
    """Sends one line; the child's JSON answer, or {'outcome': 'crashed' / 'timeout'}."""
    if self._proc is None or self._proc.poll() is not None:
      self._proc = self._start()
    proc = self._proc
    try:
      proc.stdin.write(line + "\n")
      proc.stdin.flush()
    except BrokenPipeError:
      pass  # Died before reading: seen below.
    ready, _, _ = select.select([proc.stdout], [], [], _TIMEOUT_S)
    if not ready:
      proc.kill()
      proc.wait()
      self._proc = None
      return {"outcome": "timeout"}
    answer = proc.stdout.readline()
    if not answer:
      self._proc = None
      return {"outcome": "crashed", "returncode": proc.wait()}
    return json.loads(answer)

  def close(self) -> None:
    if self._proc is not None and self._proc.poll() is None:
      self._proc.stdin.close()
      self._proc.wait(timeout=30)


def _rerun_alone(path: pathlib.Path, limit: int) -> str:
  """Loads one file in a fresh child (same limit): its exit status and stderr, to pinpoint."""
  def preexec():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
  done = subprocess.run([sys.executable, "-c", _WORKER], input=f"{path}\n", text=True,
                        capture_output=True, env=_ENV, preexec_fn=preexec, timeout=120,
                        check=False)
  return (f"alone: exit {done.returncode}, stdout {done.stdout[-500:]!r}, "
          f"stderr {done.stderr[-1500:]!r}")


# -- Valid files to start from -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Base:
  """A valid authors'-format file and the opcodes of its pickle (offsets in the file)."""

  data: bytes
  ops: tuple  # (name, offset, end) per opcode


def _parts(bytes_keys: bool) -> list:
  """A tiny authors' structure: 3 users, 4 items (one image past 255 bytes: BINSTRING)."""
  def key(k):
    return k.encode() if bytes_keys else k
  items = {i: {key("imgs"): bytes([i]) * (40 if i != 2 else 300),
               key("c"): dummy.one_hot(i % 3, 3)} for i in range(4)}
  train = {u: [{key("productid"): (u + k) % 4} for k in range(2)] for u in range(3)}
  validation = {u: [{key("productid"): (u + 2) % 4}] for u in range(3)}
  test = {u: [{key("productid"): (u + 3) % 4}] for u in range(3)}
  return [train, validation, test, items, np.int64(3), 4]


def _np_save(parts: list) -> bytes:
  array = np.empty(len(parts), dtype=object)
  for i, part in enumerate(parts):
    array[i] = part
  out = io.BytesIO()
  np.save(out, array, allow_pickle=True)  # Protocol 4: FRAME, MEMOIZE, STACK_GLOBAL.
  return out.getvalue()


def _base(data: bytes) -> _Base:
  start = data.index(b"\x80")  # PROTO: the pickle follows the .npy header.
  ops = [(op.name, start + pos) for op, _, pos in pickletools.genops(data[start:])]
  ends = [pos for _, pos in ops[1:]] + [len(data)]
  return _Base(data, tuple((name, pos, end) for (name, pos), end in zip(ops, ends)))


_BASES = (
    _base(dummy.npy_bytes(_parts(bytes_keys=False))),  # Python 2's opcodes, no memo.
    _base(_np_save(_parts(bytes_keys=True))),  # NumPy 2, protocol 4.
    _base(dummy.npy_bytes([[dummy.interactions([0, 1])], [dummy.interactions([1])],
                           [dummy.interactions([0])], [{"imgs": b"x"}, {"imgs": b"y"}], 1, 2])),
)

# -- Mutations -----------------------------------------------------------------------------

_OPCODES = tuple(pickletools.opcodes)
_NAMES = (b"numpy", b"ndarray", b"dtype", b"numpy.core.multiarray", b"numpy._core.multiarray",
          b"_reconstruct", b"scalar", b"__builtin__", b"builtins", b"bytearray", b"list", b"os",
          b"system", b"copy_reg", b"_reconstructor", b"0", b"99999999999999999999")
_LENGTH_OPS = {  # opcode: (struct format of its length field, signed)
    "SHORT_BINSTRING": "<B", "SHORT_BINBYTES": "<B", "SHORT_BINUNICODE": "<B", "LONG1": "<B",
    "BINSTRING": "<i", "LONG4": "<i", "BINBYTES": "<I", "BINUNICODE": "<I",
    "BINUNICODE8": "<Q", "BINBYTES8": "<Q", "FRAME": "<Q", "BYTEARRAY8": "<Q",
}
_INDEX_OPS = {"BINPUT": "<B", "BINGET": "<B", "LONG_BINPUT": "<I", "LONG_BINGET": "<I",
              "BININT1": "<B", "BININT2": "<H", "BININT": "<i", "PROTO": "<B"}


def _limits(fmt: str) -> tuple[int, int]:
  """The range of a struct field: lower-case formats are signed."""
  bits = 8 * struct.calcsize(fmt)
  if fmt[1].islower():
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
  return 0, 2**bits - 1


@st.composite
def _field(draw, fmt: str, near: int = 0) -> bytes:
  """A value for a length or index field: near the true one, an extreme, or anything."""
  low, high = _limits(fmt)
  value = draw(st.one_of(
      st.integers(max(low, near - 3), min(high, near + 3)),
      st.sampled_from([low, high, 0, 1, 6, 2**7, 2**27, 2**30, 2**31 - 1, 2**32 - 1, 2**40,
                       2**63, 2**64 - 1, 10**9]),
      st.integers(low, high),
  ))
  return struct.pack(fmt, min(max(value, low), high))


@st.composite
def _opcode(draw) -> bytes:
  """One opcode with an argument of the right shape, its lengths true or lying."""
  op = draw(st.sampled_from(_OPCODES))
  out = op.code.encode("latin1")
  arg = op.arg
  if arg is None:
    return out
  if arg.n > 0:
    return out + draw(st.binary(min_size=arg.n, max_size=arg.n))
  if arg.n == pickletools.UP_TO_NEWLINE:
    lines = 2 if op.name in ("GLOBAL", "INST") else 1
    for _ in range(lines):
      out += draw(st.one_of(st.sampled_from(_NAMES), st.binary(max_size=12))) + b"\n"
    return out
  fmt = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
         pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}[arg.n]
  payload = draw(st.binary(max_size=40))
  return out + draw(_field(fmt, len(payload))) + payload


def _nesting(kind: str, depth: int) -> bytes:
  return {
      "tuples": b")" + b"\x85" * depth,  # ((((),),),)
      "lists": b"]" * depth + b"a" * (depth - 1),
      "marks": b"(" * depth,
      "mark_tuples": b"(" * depth + b"t" * depth,
      "dicts": b"}" * depth,
  }[kind]


@st.composite
def _mutation(draw, base: _Base) -> tuple[int, int, bytes]:
  """(start, end, replacement): the bytes base.data[start:end] are replaced."""
  ops = base.ops
  kind = draw(st.sampled_from(["insert", "length", "index", "delete", "repeat", "flip",
                               "nest", "truncate"]))
  if kind == "insert":
    at = draw(st.sampled_from(ops))[1]
    return at, at, b"".join(draw(st.lists(_opcode(), min_size=1, max_size=4)))
  if kind in ("length", "index"):
    table = _LENGTH_OPS if kind == "length" else _INDEX_OPS
    chosen = [op for op in ops if op[0] in table]
    if chosen:
      name, pos, end = draw(st.sampled_from(chosen))
      fmt = table[name]
      width = struct.calcsize(fmt)
      true = struct.unpack(fmt, base.data[pos + 1:pos + 1 + width])[0]
      return pos + 1, pos + 1 + width, draw(_field(fmt, true))
    kind = "flip"
  if kind in ("delete", "repeat"):
    name, pos, end = draw(st.sampled_from(ops[:-1]))  # Not STOP (its end is the file's end).
    return pos, end, b"" if kind == "delete" else base.data[pos:end] * 2
  if kind == "nest":
    at = draw(st.sampled_from(ops))[1]
    depth = draw(st.one_of(st.integers(1, 120), st.sampled_from([99, 100, 101, 1000, 3000])))
    pattern = draw(st.sampled_from(["tuples", "lists", "marks", "mark_tuples", "dicts"]))
    return at, at, _nesting(pattern, depth)
  if kind == "truncate":
    at = draw(st.integers(0, len(base.data) - 1))
    return at, len(base.data), b""
  at = draw(st.integers(0, len(base.data) - 1))  # flip: any byte, header included.
  return at, at + 1, bytes([draw(st.integers(0, 255))])


@st.composite
def hostile_files(draw) -> bytes:
  """A valid file with 1-3 mutations (applied from the end, so offsets stay true)."""
  base = draw(st.sampled_from(_BASES))
  edits = draw(st.lists(_mutation(base), min_size=1, max_size=3))
  data = base.data
  for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
    if end <= len(data):
      data = data[:start] + replacement + data[end:]
  return data


# -- The tests -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
  """A child under RLIMIT_AS = its footprint after one load + the budget of the largest case."""
  global _case_dir
  _case_dir = tmp_path_factory.mktemp("pickle_fuzz")
  probe = _Worker(limit=None)
  assert probe.ask(str(_write(_BASES[0].data, "probe.npy")))["outcome"] == "loaded"
  footprint = probe.ask("STATUS")["VmPeak"]
  probe.close()
  child = _Worker(limit=footprint + safe_pickle.memory_budget(MAX_CASE_SIZE))
  yield child
  child.close()


_case_dir: pathlib.Path | None = None  # Set by the `worker` fixture (a pytest tmp dir).


def _write(data: bytes, name: str) -> pathlib.Path:
  path = _case_dir / name
  path.write_bytes(data)
  return path


def _check(worker: _Worker, data: bytes, counts: collections.Counter) -> None:
  assert len(data) <= MAX_CASE_SIZE
  path = _write(data, "case.npy")
  out = worker.ask(str(path))
  counts[out["outcome"] if out["outcome"] != "refused" else out["type"]] += 1
  if out["outcome"] in ("crashed", "timeout"):
    kept = _write(data, f"{out['outcome']}_{counts[out['outcome']]}.npy")
    pytest.fail(f"the loader {out['outcome']} ({out}) on {kept}; "
                f"{_rerun_alone(kept, worker.limit)}")
  assert out["outcome"] in ("loaded", "refused"), out.get("traceback", out)
  if out["outcome"] == "refused":
    assert out["type"] in ("UnsafePickleError", "AuthorsFormatError"), out
    assert "\n" not in out["message"] and str(path) in out["message"], out
    assert out["cause"] != "MemoryError", f"past the memory budget: {out}"


def _fuzz(worker: _Worker, max_examples: int, derandomize: bool) -> collections.Counter:
  counts = collections.Counter()

  @settings(max_examples=max_examples, deadline=None, derandomize=derandomize, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
  @given(hostile_files())
  def run(data: bytes) -> None:
    _check(worker, data, counts)

  run()
  print(f"pickle fuzz: {sum(counts.values())} cases, {dict(counts)}")
  return counts


def test_bases_load(worker):
  for base in _BASES:
    assert worker.ask(str(_write(base.data, "base.npy")))["outcome"] == "loaded"


def test_fuzz_loads_or_refuses_in_one_line(worker):
  counts = _fuzz(worker, FAST_CASES, derandomize=True)
  assert sum(counts.values()) >= FAST_CASES
  assert counts["AuthorsFormatError"] and counts["loaded"], counts


@pytest.mark.slow
def test_fuzz_many_loads_or_refuses_in_one_line(worker, request):
  # About a minute: only when asked for (`-m slow`), not in the default run.
  markexpr = request.config.getoption("markexpr") or ""
  if "slow" not in markexpr or "not slow" in markexpr:
    pytest.skip(f"{SLOW_CASES} fuzz cases run only with -m slow")
  counts = _fuzz(worker, SLOW_CASES, derandomize=False)
  assert sum(counts.values()) >= SLOW_CASES
