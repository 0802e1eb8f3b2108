"""make demo's first steps: getting Fashion-MNIST (tools/ensure_fashion_mnist.py) and the
builder's download, which must give up quickly without a network. No test touches the
network: downloads are pointed at closed ports on 127.0.0.1 or at a failing resolver."""

import importlib.util
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest

from dvbpr_tf_datasets.fashion_mnist_shoppers import fashion_mnist_shoppers_dataset_builder as fm

REPO = pathlib.Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "ensure_fashion_mnist.py"


def _tool():
  spec = importlib.util.spec_from_file_location("ensure_fashion_mnist", TOOL)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ensure_tool = _tool()


def _fill(folder):
  folder.mkdir(parents=True, exist_ok=True)
  for name in ensure_tool.FILES:
    (folder / name).write_bytes(b"x")
  return folder


class FakeSystem:
  """Records the commands the tool runs; `install_into` gets the files when apt-get install
  runs and `install_ok` is set."""

  def __init__(self, install_into, *, known=False, install_ok=True, sudo_ok=False):
    self.commands, self.install_into = [], install_into
    self.known, self.install_ok, self.sudo_ok = known, install_ok, sudo_ok

  def run(self, command):
    self.commands.append(list(command))
    text = " ".join(command)
    if command[:3] == ["sudo", "-n", "true"]:
      return 0 if self.sudo_ok else 1
    if "apt-cache policy" in text:
      return 0 if self.known else 1
    if " update" in text:
      self.known = True
      return 0
    if " install " in text:
      if self.install_ok and self.known:
        _fill(self.install_into)
        return 0
      return 100
    raise AssertionError(f"unexpected command {command}")


def _ensure(tmp_path, system, *, euid=0, tools=("apt-get", "sudo"), manual=None, data=None):
  return ensure_tool.ensure(
      str(data or tmp_path / "data"), manual, euid=euid,
      which=lambda name: f"/usr/bin/{name}" if name in tools else None, runner=system.run,
      debian_dir=str(tmp_path / "debian"), say=lambda text: None)


def test_the_tool_and_the_builder_agree_on_the_files():
  assert ensure_tool.FILES == fm.FASHION_MNIST_FILES
  assert ensure_tool.DEBIAN_DIR == fm.DEBIAN_DIR


def test_files_already_there_need_nothing(tmp_path):
  system = FakeSystem(tmp_path / "debian")
  _fill(tmp_path / "debian")
  assert _ensure(tmp_path, system)[0] == 0
  manual = _fill(tmp_path / "manual")
  assert _ensure(tmp_path, system, manual=str(manual), euid=1000, tools=())[0] == 0
  _fill(tmp_path / "data" / "downloads" / "manual")  # TFDS's default manual dir.
  built = tmp_path / "built"
  (built / "fashion_mnist_shoppers" / "demo" / "1.0.0").mkdir(parents=True)
  (built / "fashion_mnist_shoppers" / "demo" / "1.0.0" / "dataset_info.json").write_text("{}")
  status, message = _ensure(tmp_path, system, data=built, euid=1000, tools=())
  assert status == 0 and "already built" in message
  assert system.commands == []


def test_root_updates_apt_once_then_installs(tmp_path):
  system = FakeSystem(tmp_path / "debian", known=False)
  status, message = _ensure(tmp_path, system)
  assert status == 0 and "installed" in message
  kinds = [next(w for w in ("policy", "update", "install") if w in " ".join(c))
           for c in system.commands]
  assert kinds == ["policy", "update", "install"]
  install = system.commands[-1]
  assert install[0] == "env" and "dataset-fashion-mnist" in install and "-y" in install
  assert "Acquire::Retries=0" in install  # No retry loops without a network.


def test_a_known_package_is_installed_without_update(tmp_path):
  system = FakeSystem(tmp_path / "debian", known=True)
  assert _ensure(tmp_path, system)[0] == 0
  assert not any("update" in c for c in system.commands)


def test_sudo_without_password_is_used_when_not_root(tmp_path):
  system = FakeSystem(tmp_path / "debian", known=True, sudo_ok=True)
  assert _ensure(tmp_path, system, euid=1000)[0] == 0
  assert system.commands[-1][:2] == ["sudo", "-n"]


@pytest.mark.parametrize("case", ["no_sudo", "sudo_asks_password", "no_apt", "offline",
                                  "bad_manual_dir"])
def test_when_it_cannot_one_line_says_what_to_run(tmp_path, case):
  system = FakeSystem(tmp_path / "debian", install_ok=case != "offline")
  kwargs = {"no_sudo": dict(euid=1000, tools=("apt-get",)),
            "sudo_asks_password": dict(euid=1000),
            "no_apt": dict(tools=()),
            "offline": {},
            "bad_manual_dir": dict(manual=str(tmp_path / "nothing"))}[case]
  started = time.monotonic()
  status, message = _ensure(tmp_path, system, **kwargs)
  assert time.monotonic() - started < 30
  assert status == 2 and "\n" not in message and message.startswith("error: ")
  assert "apt-get install -y dataset-fashion-mnist" in message
  assert "MANUAL_DIR=<folder>" in message and "--manual_dir" in message
  assert not (tmp_path / "debian").exists() or case != "offline"


def test_the_script_runs_with_the_system_python_alone(tmp_path):
  """The Makefile runs it before the venv exists: standard library only."""
  manual = _fill(tmp_path / "manual")
  done = subprocess.run([sys.executable, "-I", str(TOOL), f"--data_dir={tmp_path}",
                         f"--manual_dir={manual}", f"--debian_dir={tmp_path / 'none'}"],
                        capture_output=True, text=True, timeout=60, check=False)
  assert done.returncode == 0, done.stderr
  assert "found in" in done.stdout
  done = subprocess.run([sys.executable, "-I", str(TOOL), f"--data_dir={tmp_path}",
                         f"--manual_dir={tmp_path / 'empty'}",
                         f"--debian_dir={tmp_path / 'none'}"], capture_output=True,
                        text=True, timeout=60, check=False)
  assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]  # Closed again when the block ends: nobody listens.


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch):
  """The builder sees no Debian files and no manual dir."""
  monkeypatch.setattr(fm, "DEBIAN_DIR", str(tmp_path / "no_debian"))
  return tmp_path


def _build(data_dir):
  from dvbpr_tf.data import catalog  # pylint: disable=g-import-not-at-top
  return catalog.load_catalog("fashion_mnist_shoppers/tiny", data_dir=str(data_dir))


def test_download_to_an_unreachable_host_fails_fast_with_the_advice(no_fashion_mnist,
                                                                    monkeypatch):
  monkeypatch.setattr(fm, "DOWNLOAD_URL", f"http://127.0.0.1:{_closed_port()}/")
  assert fm.DOWNLOAD_DEADLINE_SECONDS <= 15
  started = time.monotonic()
  with pytest.raises(FileNotFoundError) as raised:
    _build(no_fashion_mnist / "tfds")
  assert time.monotonic() - started < 15
  message = str(raised.value)
  assert "apt-get install dataset-fashion-mnist" in message and "--manual_dir" in message
  assert "Connection refused" in message, message


def test_a_failing_resolver_fails_fast(no_fashion_mnist, monkeypatch):
  def no_names(*args, **kwargs):
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
  monkeypatch.setattr(socket, "getaddrinfo", no_names)
  started = time.monotonic()
  with pytest.raises(FileNotFoundError, match="cannot resolve the host"):
    _build(no_fashion_mnist / "tfds")
  assert time.monotonic() - started < 15


def test_a_hanging_resolver_is_abandoned_at_the_deadline(monkeypatch):
  release = threading.Event()
  monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(60) and [])
  started = time.monotonic()
  try:
    with pytest.raises(TimeoutError, match="within 0.5s"):
      fm.check_reachable("http://fashion-mnist.invalid/", 0.5)
    assert time.monotonic() - started < 3
  finally:
    release.set()
