#!/usr/bin/env python3
"""Makes sure `make demo` has the Fashion-MNIST files its embedded dataset is built from.

`make demo` runs this with the system's python3 (standard library only) before it creates the
virtual environment, so that a machine without the files learns it in seconds, not after an
install. In order:

1. the demo dataset is already built in the data dir: nothing is needed;
2. the four files are in the manual dir (`--manual_dir`, else `<data_dir>/downloads/manual`)
   or in /usr/share/datasets/fashion-mnist (Debian's package `dataset-fashion-mnist`):
   nothing to do;
3. otherwise it installs that Debian package: as root with apt-get, or through `sudo -n`
   (sudo without a password prompt); `apt-get update` first when apt does not know the
   package yet;
4. otherwise, or when the install fails, one line says what to run; exit status 2.

Usage: python3 tools/ensure_fashion_mnist.py --data_dir=DIR [--manual_dir=DIR]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Callable, Sequence

# The same names as the fashion_mnist_shoppers builder's (a test checks they agree; this
# script cannot import the builder, which needs TensorFlow).
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
PACKAGE = "dataset-fashion-mnist"
BUILT_CONFIG = ("fashion_mnist_shoppers", "demo")  # What `make demo` builds from the files.
# apt gives up on a host that does not answer within this many seconds, and does not retry:
# without a network the update and the install fail in seconds.
APT_OPTIONS = ("-o", "Acquire::http::Timeout=10", "-o", "Acquire::https::Timeout=10",
               "-o", "Acquire::Retries=0")
COMMAND_TIMEOUT_SECONDS = 600  # A hung apt-get is stopped after this.

Runner = Callable[[Sequence[str]], int]


def advice(manual_hint: str = "") -> str:
  """The one line a user gets when the files cannot be had automatically."""
  return (f"Fashion-MNIST (needed to build the demo dataset) is not on this machine{manual_hint}"
          f": install it with `sudo apt-get install -y {PACKAGE}` (as root: `apt-get update && "
          f"apt-get install -y {PACKAGE}`), or put the files {', '.join(FILES)} in a folder "
          "and run `make demo MANUAL_DIR=<folder>` (the same as --manual_dir=<folder>)")


def complete(folder: str | os.PathLike | None) -> bool:
  """Whether `folder` holds all four Fashion-MNIST files."""
  return folder is not None and all(
      (pathlib.Path(folder) / name).is_file() for name in FILES)


def already_built(data_dir: str | os.PathLike | None) -> bool:
  """Whether the demo dataset is built in `data_dir` (any version)."""
  if not data_dir:
    return False
  config = pathlib.Path(data_dir).joinpath(*BUILT_CONFIG)
  return config.is_dir() and any(config.glob("*/dataset_info.json"))


def privilege_prefix(euid: int, which: Callable[[str], str | None], runner: Runner
                     ) -> list[str] | None:
  """[] as root, ["sudo", "-n"] when sudo works without a password, else None."""
  if which("apt-get") is None:
    return None
  if euid == 0:
    return []
  if which("sudo") is not None and runner(["sudo", "-n", "true"]) == 0:
    return ["sudo", "-n"]
  return None


def package_known(prefix: Sequence[str], runner: Runner) -> bool:
  """Whether apt has a candidate version of the package (its lists mention it)."""
  del prefix  # apt-cache needs no privileges.
  return runner(["sh", "-c", f"apt-cache policy {PACKAGE} 2>/dev/null | grep -q "
                 "'Candidate: [0-9]'"]) == 0


def install(prefix: Sequence[str], runner: Runner, say: Callable[[str], None]) -> bool:
  """Installs the Debian package; whether apt-get said it succeeded."""
  env = ["env", "DEBIAN_FRONTEND=noninteractive"]
  if not package_known(prefix, runner):
    say(f"apt does not know {PACKAGE} yet: apt-get update")
    runner([*prefix, *env, "apt-get", *APT_OPTIONS, "-qq", "update"])
  say(f"installing the Debian package {PACKAGE} (Fashion-MNIST, 30 MB)")
  return runner([*prefix, *env, "apt-get", *APT_OPTIONS, "install", "-y", "-qq",
                 "--no-install-recommends", PACKAGE]) == 0


def ensure(data_dir: str | None, manual_dir: str | None, *, euid: int,
           which: Callable[[str], str | None], runner: Runner, debian_dir: str = DEBIAN_DIR,
           say: Callable[[str], None] = print) -> tuple[int, str]:
  """(exit status, message): 0 when the demo can build its dataset, 2 when it cannot."""
  if already_built(data_dir):
    return 0, f"the demo dataset is already built in {data_dir}"
  manual = manual_dir or (os.path.join(data_dir, "downloads", "manual") if data_dir else None)
  for place in (manual, debian_dir):
    if complete(place):
      return 0, f"Fashion-MNIST found in {place}"
  if manual_dir and not complete(manual_dir):
    return 2, "error: " + advice(f" (the manual dir {manual_dir} does not hold all four files)")
  prefix = privilege_prefix(euid, which, runner)
  if prefix is None:
    return 2, "error: " + advice()
  if install(prefix, runner, say) and complete(debian_dir):
    return 0, f"Fashion-MNIST installed in {debian_dir}"
  return 2, "error: " + advice(f" and `apt-get install {PACKAGE}` failed (no network, or no "
                               "such package in this machine's apt sources?)")


def run_command(command: Sequence[str]) -> int:
  """Runs a command, its output shown; its exit status (124 when it hangs)."""
  try:
    return subprocess.run(list(command), check=False, stdin=subprocess.DEVNULL,
                          timeout=COMMAND_TIMEOUT_SECONDS).returncode
  except subprocess.TimeoutExpired:
    return 124
  except OSError:
    return 127


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data_dir", default=os.environ.get("TFDS_DATA_DIR"))
  parser.add_argument("--manual_dir", default=None)
  parser.add_argument("--debian_dir", default=DEBIAN_DIR, help=argparse.SUPPRESS)  # Tests.
  args = parser.parse_args(argv)
  status, message = ensure(
      args.data_dir, args.manual_dir or None, euid=os.geteuid(), which=shutil.which,
      runner=run_command, debian_dir=args.debian_dir, say=lambda text: print(f"ensure_fashion_mnist: {text}", flush=True))
  print(message if status else f"ensure_fashion_mnist: {message}",
        file=sys.stderr if status else sys.stdout, flush=True)
  return status


if __name__ == "__main__":
  sys.exit(main())
