"""The paper's Table IV: preference, quality and diversity of four image sources, as Markdown
and CSV (docs/reproduction.md §6)."""

from __future__ import annotations

SOURCES = ("random_real", "random_generated", "retrieval", "synthesis")
# Not the paper's: delta-hat's ascent from the codes of delta's items (DesignConfig.start =
# 'retrieved'), a fifth row on the same trials when the design config asks for it.
TAILORED = "tailored_retrieval"
LABELS = {"random_real": "random X_c", "random_generated": "random G(., c)",
          "retrieval": "delta(u, c)", "synthesis": "delta-hat(u, c)",
          TAILORED: "delta-hat from delta's codes"}


def sources_in(results) -> tuple[str, ...]:
  """The paper's four sources, and the tailored retrieval when `results` has it."""
  return SOURCES + ((TAILORED,) if TAILORED in results else ())


EXTRA = (("category_accuracy", "category accuracy"),
         ("frechet_classifier", "classifier Fréchet to real"))


def _extras(results) -> tuple[tuple[str, str], ...]:
  """The design-fidelity columns every source has (with the dataset's category classifier)."""
  return tuple((key, label) for key, label in EXTRA
               if all(key in results[source] for source in sources_in(results)))


def worst_category(results, source: str = "synthesis", against: str = "random_real"):
  """(category index, ratio) of the category where `source`'s category accuracy is lowest
  relative to `against`'s (the random real images of the same trials), over the categories
  both have with a nonzero `against` accuracy; None without per-category accuracies."""
  mine = results[source].get("category_accuracy_by_category")
  theirs = results[against].get("category_accuracy_by_category")
  if not mine or not theirs:
    return None
  ratios = {int(c): mine[c] / theirs[c] for c in mine if c in theirs and theirs[c] > 0}
  if not ratios:
    return None
  worst = min(ratios, key=ratios.get)
  return worst, ratios[worst]


def markdown(results, *, dataset, preset, trials, quality_name, eta, steps=None,
             category_names=None) -> str:
  extras = _extras(results)
  design = f", eta = {eta:g}" + (f", {steps} Adam steps" if steps is not None else "")
  lines = [f"# Table IV on {dataset} ({preset} preset, {trials} trials{design})", "",
           "| source | preference | quality | diversity |"
           + "".join(f" {label} |" for _, label in extras),
           "|---|---|---|---|" + "---|" * len(extras)]
  for source in sources_in(results):
    r = results[source]
    lines.append(f"| {LABELS[source]} | {r['preference_mean']:.4f} +- {r['preference_std']:.2f}"
                 f" | {r['quality_mean']:.4f} +- {r['quality_std']:.2f} | "
                 f"{r['diversity_mean']:.4f} +- {r['diversity_std']:.2f} |"
                 + "".join(f" {r[key]:.3f} |" for key, _ in extras))
  lines += ["", f"Quality: {quality_name}.",
            "Preference: mean theta_u . Phi(image) of the top-3 (eq. 6). Diversity: 1 - mean "
            "pairwise SSIM of the top-3 (scikit-image)."]
  if extras:
    lines.append("Category accuracy: the share of the images the category classifier assigns "
                 "to the category they were made for (do designs stay products?). Classifier "
                 "Fréchet to real: the Fréchet distance between the images' and all real "
                 "images' penultimate classifier features (not FID).")
    for source, lead in (("synthesis", "delta-hat's category accuracy over random X_c's"),
                         (TAILORED, "The same from delta's codes")):
      worst = worst_category(results, source) if source in results else None
      if worst is not None:
        name = category_names[worst[0]] if category_names is not None else str(worst[0])
        overall = (results[source]["category_accuracy"]
                   / max(results["random_real"]["category_accuracy"], 1e-12))
        lines.append(f"{lead}: {overall:.2f} overall, {worst[1]:.2f} in its worst category "
                     f"({name}).")
  return "\n".join(lines) + "\n"


def csv_text(results) -> str:
  keys = ("preference_mean", "preference_std", "quality_mean", "quality_std",
          "diversity_mean", "diversity_std") + tuple(key for key, _ in _extras(results))
  lines = ["source," + ",".join(keys)]
  for source in sources_in(results):
    lines.append(source + "," + ",".join(f"{results[source][k]:.6f}" for k in keys))
  return "\n".join(lines) + "\n"
