"""The command line with a SIGKILL planted at one exact point of a checkpoint write.

    python -m tests.faults.fault_injection <point> <n> <flags of experiments.main>

runs `experiments.main` unchanged, except that at the n-th time the run reaches <point> the
process sends itself SIGKILL: the same uncatchable kill as `kill -9`, at a moment an outside
killer only hits by luck. Points:

  checkpoint_state  inside `CheckpointManager.save`, after the checkpoint's files are written
                    and before the `checkpoint` state file names them (its first update).
  history           after the checkpoint is saved, before `checkpoints/history.json` is
                    written (the n-th write of it).
  export            inside the SavedModel export, once the model is written to its staging
                    folder and before the folder is renamed into place.

The line `fault_injection: SIGKILL at <point> #<n>` goes to stderr first.
"""

import os
import signal
import sys


def _kill_at(point: str, count: int):
  calls = {"n": 0}

  def maybe_kill():
    calls["n"] += 1
    if calls["n"] == count:
      sys.stderr.write(f"fault_injection: SIGKILL at {point} #{count}\n")
      sys.stderr.flush()
      os.kill(os.getpid(), signal.SIGKILL)

  return maybe_kill


def _plant(point: str, count: int) -> None:
  maybe_kill = _kill_at(point, count)
  if point == "checkpoint_state":
    from tensorflow.python.checkpoint import checkpoint_management  # pylint: disable=g-import-not-at-top
    original = checkpoint_management.update_checkpoint_state_internal
    first_update = {"path": None}

    def update(save_dir, model_checkpoint_path, *args, **kwargs):
      # Each save updates the state twice (before and after deleting old checkpoints).
      if model_checkpoint_path != first_update["path"]:
        first_update["path"] = model_checkpoint_path
        maybe_kill()
      return original(save_dir, model_checkpoint_path, *args, **kwargs)

    checkpoint_management.update_checkpoint_state_internal = update
  elif point == "history":
    from dvbpr_tf.core import files  # pylint: disable=g-import-not-at-top
    original_json = files.write_json_atomic

    def write_json(path, value):
      if str(path).endswith("history.json"):
        maybe_kill()
      return original_json(path, value)

    files.write_json_atomic = write_json
  elif point == "export":
    from dvbpr_tf.serving import export  # pylint: disable=g-import-not-at-top
    original_write = export._write_archive  # pylint: disable=protected-access

    def write_archive(archive, path):
      original_write_out = archive.write_out

      def write_out(*args, **kwargs):
        original_write_out(*args, **kwargs)
        maybe_kill()

      archive.write_out = write_out
      return original_write(archive, path)

    export._write_archive = write_archive  # pylint: disable=protected-access
  else:
    raise SystemExit(f"fault_injection: unknown point {point!r}")


def main() -> None:
  point, count = sys.argv[1], int(sys.argv[2])
  sys.argv = [sys.argv[0]] + sys.argv[3:]
  _plant(point, count)
  from experiments import main as main_lib  # pylint: disable=g-import-not-at-top
  main_lib.run()


if __name__ == "__main__":
  main()
