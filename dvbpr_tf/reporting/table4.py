"""The paper's Table IV: preference, quality and diversity of four image sources, as Markdown
and CSV (docs/reproduction.md §6)."""

from __future__ import annotations

SOURCES = ("random_real", "random_generated", "retrieval", "synthesis")
LABELS = {"random_real": "random X_c", "random_generated": "random G(., c)",
          "retrieval": "delta(u, c)", "synthesis": "delta-hat(u, c)"}


def markdown(results, *, dataset, preset, trials, quality_name, eta) -> str:
  lines = [f"# Table IV on {dataset} ({preset} preset, {trials} trials, eta = {eta:g})", "",
           "| source | preference | quality | diversity |", "|---|---|---|---|"]
  for source in SOURCES:
    r = results[source]
    lines.append(f"| {LABELS[source]} | {r['preference_mean']:.4f} +- {r['preference_std']:.2f}"
                 f" | {r['quality_mean']:.4f} +- {r['quality_std']:.2f} | "
                 f"{r['diversity_mean']:.4f} +- {r['diversity_std']:.2f} |")
  lines += ["", f"Quality: {quality_name}.",
            "Preference: mean theta_u . Phi(image) of the top-3 (eq. 6). Diversity: 1 - mean "
            "pairwise SSIM of the top-3 (scikit-image)."]
  return "\n".join(lines) + "\n"


def csv_text(results) -> str:
  keys = ("preference_mean", "preference_std", "quality_mean", "quality_std",
          "diversity_mean", "diversity_std")
  lines = ["source," + ",".join(keys)]
  for source in SOURCES:
    lines.append(source + "," + ",".join(f"{results[source][k]:.6f}" for k in keys))
  return "\n".join(lines) + "\n"


