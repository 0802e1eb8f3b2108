"""Ctrl-C during training: one line saying how to resume, exit 130, no traceback, and the
checkpoints written so far kept."""

import signal

from tests.faults import runs


def test_ctrl_c_says_how_to_resume_and_keeps_the_checkpoints(tiny_data_dir, tmp_path):
  work = tmp_path / "run"
  flags = ["--experiment=recommendation", "--preset=smoke", f"--data_dir={tiny_data_dir}",
           f"--workdir={work}", "--epochs=1", "--steps_per_epoch=20000", "--steps_per_loop=2",
           "--checkpoint_every_steps=4"]
  # Far more steps than it reaches before the signal (about 100 a second here): a fast
  # machine must not finish the run between the progress line and the signal. SIGINT is
  # restored to its default in the child: a shell without job control starts background
  # commands with SIGINT ignored, and Python then never raises KeyboardInterrupt.
  first = runs.Run(*flags, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  first.wait_for(r"step (1[2-9]|[2-9]\d)/20000")
  first.signal(signal.SIGINT)
  assert first.wait() == 130, first.stderr[-3000:]
  assert "interrupted: what was saved is kept; rerun the same command" in first.stderr
  assert "Traceback" not in first.stderr
  # Checkpoints were kept (resuming from them is tested with SIGKILL in
  # test_kill_and_resume.py).
  assert list((work / "checkpoints" / "latest").glob("ckpt-*.index"))
