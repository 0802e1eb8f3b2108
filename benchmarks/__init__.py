"""Speed benchmarks of the DVBPR reproduction against the authors' way of doing the same work.

Each benchmark measures two things side by side in one process (A: this project, B: the
authors' way or a compute-only bound), repeats the pair a few times in alternating order and
reports the median of the paired ratios A / B: absolute rates on a shared machine are noise,
ratios are the result. `python -m benchmarks.run` runs them all, prints a table and writes a
JSON file; see `benchmarks/README.md` for the figures and the machine they came from.
"""
