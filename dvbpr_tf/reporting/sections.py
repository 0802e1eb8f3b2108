"""The sections of each experiment's `report.html`: what is shown, with which caption.

Each function takes the results as written to results.json and, where one run's results are
nested in another's (the demo keeps DVBPR's under `dvbpr`), the `prefix` of their keys
(`"dvbpr."`); it returns `html_report.Section`s. The captions say what a figure is and which
figure of the paper it mirrors.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dvbpr_tf.reporting import html_report as page

AUC_NOTE = ("Exact AUC: per user, the share of the items outside the user's train, validation "
            "and test items that the held-out item outranks, averaged over users; cold: users "
            "whose test item has fewer training observations than the dataset's cold threshold "
            "(5, the paper's), ranked among such items only. Sampled-100: the authors' code's "
            "estimate over 100 drawn items.")


def _sub(results: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
  value = page.lookup(results, prefix.rstrip(".")) if prefix else results
  return value if isinstance(value, Mapping) else {}


def dataset(results: Mapping[str, Any], prefix: str = "") -> list[page.Section]:
  """The dataset's sizes, splits, cold share and items per category."""
  key = f"{prefix}dataset_statistics."
  stats = _sub(results, key)
  if not stats:
    return []
  labels = (("users", "num_users"), ("items", "num_items"),
            ("interactions", "num_interactions"), ("training interactions", "num_train"),
            ("validation interactions (one per user)", "num_validation"),
            ("test interactions (one per user)", "num_test"),
            ("categories", "num_categories"),
            ("interactions per user, mean", "interactions_per_user_mean"),
            ("training observations per item, mean", "train_observations_per_item_mean"),
            ("share of items that are cold (fewer than cold_threshold training "
             "observations)", "cold_item_share"),
            ("share of test items that are cold", "cold_test_share"),
            ("cold threshold", "cold_threshold"))
  values = [page.Value(label, key + name) for label, name in labels if name in stats]
  if "density" in stats:
    values.append(page.Value("density", key + "density", digits=6))
  blocks: list = [page.Values(tuple(values))]
  per_category = stats.get("items_per_category")
  if isinstance(per_category, Mapping) and per_category:
    blocks.append(page.Grid(("items",), tuple(
        (name, (f"{key}items_per_category.{name}",)) for name in per_category)))
  if "oracle_auc_test" in stats:
    blocks.append("Simulated shoppers: the planted model (their true tastes and the items' "
                  "popularity) scores the held-out items as follows; no model can do better. "
                  "The learnable ceiling is BPR over the items' true style numbers with each "
                  "user's taste learned from the training split: what a visual model can "
                  "learn from this much data.")
    rows = [("planted model (oracle), test AUC", (key + "oracle_auc_test",
                                                   key + "oracle_auc_test_cold"))]
    if "learnable_auc_test" in stats:
      rows.append(("learnable ceiling, test AUC", (key + "learnable_auc_test",
                                                    key + "learnable_auc_test_cold")))
    blocks.append(page.Grid(("all items", "cold items"), tuple(rows)))
  return [page.Section(f"Dataset {page.lookup(results, prefix + 'dataset') or ''}".strip(),
                       tuple(blocks))]


def _auc_rows(sub: Mapping[str, Any], prefix: str, name: str):
  rows = [(f"{name} exact AUC, test", (prefix + "auc_test", prefix + "auc_test_cold")),
          (f"{name} exact AUC, validation", (prefix + "auc_valid", prefix + "auc_valid_cold")),
          (f"{name} sampled-100 AUC, test", (prefix + "auc_test_sampled100", None))]
  if "learnable_auc_test" in sub:
    rows.append(("learnable ceiling (BPR on the true style), test", (
        prefix + "learnable_auc_test", prefix + "learnable_auc_test_cold")))
  if "oracle_auc_test" in sub:
    rows.append(("planted model (oracle), test", (prefix + "oracle_auc_test",
                                                   prefix + "oracle_auc_test_cold")))
  for ceiling in ("learnable", "oracle"):
    if f"auc_test_share_of_{ceiling}_lift" in sub:
      rows.append((f"{name}'s share of the {ceiling} ceiling's lift over random", (
          prefix + f"auc_test_share_of_{ceiling}_lift",
          prefix + f"auc_test_cold_share_of_{ceiling}_lift")))
  if "random_auc" in sub:
    rows.append(("random", (prefix + "random_auc", prefix + "random_auc")))
  return tuple(rows)


def recommender(results: Mapping[str, Any], prefix: str = "") -> list[page.Section]:
  """DVBPR (or one baseline): AUCs beside the oracle and random, training figures, the
  learning curve."""
  sub = _sub(results, prefix)
  model = str(sub.get("model", "dvbpr"))
  name = "DVBPR" if model == "dvbpr" else model
  blocks: list = [page.Grid(("all items", "cold items"), _auc_rows(sub, prefix, name)),
                  AUC_NOTE]
  values = [page.Value(label, prefix + key, digits)
            for label, key, digits in (("best epoch (by validation AUC)", "best_epoch", 0),
                                       ("epochs", "epochs", 0), ("steps", "steps", 0),
                                       ("training pairs per second", "train_pairs_per_second",
                                        0),
                                       ("wall time, seconds", "wall_time_seconds", 0))
            if key in sub]
  if values:
    blocks.append(page.Values(tuple(values)))
  if sub.get("learning_curve_figure"):
    blocks.append(page.Figure(
        sub["learning_curve_figure"],
        "DVBPR's validation and test AUC (all items) after each epoch; the reported test "
        "figures are those of the best validation epoch, the paper's protocol. Dashed: random "
        "and, for simulated data, the planted model."))
  dataset_name = sub.get("dataset") or results.get("dataset") or ""
  return [page.Section(f"{name} on {dataset_name}".strip(), tuple(blocks))]


def gan(results: Mapping[str, Any], prefix: str = "") -> list[page.Section]:
  """The conditional LSGAN: speed, final losses, sample grid, nearest neighbours."""
  sub = _sub(results, prefix)
  values = [page.Value(label, prefix + key, digits) for label, key, digits in (
      ("training images per second", "images_per_second", 0), ("steps", "steps", 0),
      ("generator parameters", "generator_parameters", 0),
      ("discriminator parameters", "discriminator_parameters", 0),
      ("final D loss", "final_losses.d_loss", 4), ("final G loss", "final_losses.g_loss", 4),
      ("final D(real), batch mean", "final_losses.d_real", 3),
      ("final D(fake), batch mean", "final_losses.d_fake", 3),
      ("wall time, seconds", "wall_time_seconds", 0))
            if page.lookup(sub, key) is not None]
  blocks: list = [page.Values(tuple(values))]
  fidelity = sub.get("colour_fidelity") or {}
  if fidelity.get("by_category"):
    key = f"{prefix}colour_fidelity.by_category"
    blocks.append(
        "Colours of the generated images against the real ones, per category, on garment "
        "pixels: saturation generated / real (1 = the same), the total-variation distance "
        "of the saturation-weighted hue histograms, and the same distance between two "
        "halves of the real images (what sampling alone gives).")
    blocks.append(page.Grid(
        ("saturation ratio", "hue distance", "real halves' hue distance"),
        tuple((name, (f"{key}.{name}.saturation_ratio", f"{key}.{name}.hue_distance",
                      f"{key}.{name}.hue_distance_real_halves"))
              for name in fidelity["by_category"] if "." not in name), digits=3))
  if fidelity.get("frechet_classifier") is not None:
    blocks.append(
        "Fréchet distance between generated and real images in the penultimate features of "
        "the dataset's own category classifier (the network of Table IV's quality score; not "
        "FID, which uses ImageNet's Inception), beside the same distance between two halves "
        "of the real images.")
    blocks.append(page.Values((
        page.Value("classifier Fréchet distance, generated vs real",
                   f"{prefix}colour_fidelity.frechet_classifier", 2),
        page.Value("the same, two halves of the real images",
                   f"{prefix}colour_fidelity.frechet_classifier_real_halves", 2))))
  if sub.get("samples"):
    blocks.append(page.Figure(sub["samples"], "GAN samples at a fixed z, one row per "
                              "category (the generated images of the paper's Fig. 4)."))
  if sub.get("nearest_neighbours"):
    blocks.append(page.Figure(sub["nearest_neighbours"], "Each generated image (left) beside "
                              "its L1-nearest real image of the same category (right): is the "
                              "GAN copying its data? (the paper's Fig. 4)."))
  return [page.Section("Conditional LSGAN (eq. 7)", tuple(blocks))]


def design(results: Mapping[str, Any], prefix: str = "") -> list[page.Section]:
  """One user's top-3 retrieved and top-3 generated items of a category."""
  sub = _sub(results, prefix)
  checked = all("category_probability" in row
                for row in list(sub.get("retrieved", ())) + list(sub.get("generated", ())))
  extra = lambda key: (f"{key}.category_probability",) if checked else ()
  rows = [(f"retrieved #{n + 1} (eq. 8)", (f"{prefix}retrieved.{n}.preference", None)
           + extra(f"{prefix}retrieved.{n}"))
          for n in range(len(sub.get("retrieved", ())))]
  rows += [(f"generated #{n + 1} (eq. 10)", (f"{prefix}generated.{n}.preference",
                                             f"{prefix}generated.{n}.realism_D")
            + extra(f"{prefix}generated.{n}"))
           for n in range(len(sub.get("generated", ())))]
  blocks: list = [page.Grid(("preference theta_u . Phi(image)", "realism D(G(z))")
                            + (("P(category), category classifier",) if checked else ()),
                            tuple(rows))]
  if sub.get("figure"):
    blocks.append(page.Figure(sub["figure"], f"Personalised design for user "
                              f"{sub.get('user')}, {sub.get('category')}: the top-3 real items "
                              "(retrieval, eq. 8) above the top-3 generated ones (preference "
                              "maximisation, eqs. 9-11), each with its preference score (the "
                              "paper's Fig. 5)."))
  return [page.Section(f"Design: user {sub.get('user')}, {sub.get('category')}",
                       tuple(blocks))]


def tailoring(results: Mapping[str, Any], prefix: str = "") -> list[page.Section]:
  """An item inverted into the GAN and moved toward a user's taste."""
  sub = _sub(results, prefix)
  blocks: list = [page.Values((
      page.Value("inversion L1 distance, start", prefix + "inversion_l1_before"),
      page.Value("inversion L1 distance, after (eq. 12)", prefix + "inversion_l1_after")))]
  checked = all("category_probability" in step for step in sub.get("iterations", ()))
  blocks.append(page.Grid(
      ("preference", "realism D(G(z))")
      + (("P(category), category classifier",) if checked else ()), tuple(
          (f"iteration {step.get('step')}", (f"{prefix}iterations.{n}.preference",
                                             f"{prefix}iterations.{n}.realism_D")
           + ((f"{prefix}iterations.{n}.category_probability",) if checked else ()))
          for n, step in enumerate(sub.get("iterations", ())))))
  if sub.get("figure"):
    blocks.append(page.Figure(sub["figure"], f"Tailoring {sub.get('query')} for user "
                              f"{sub.get('user')}: the query, its reconstruction by the GAN "
                              "(eq. 12) and the image after successive iterations of "
                              "preference maximisation, with scores (the paper's Fig. 6)."))
  return [page.Section(f"Tailoring: {sub.get('query')} for user {sub.get('user')}",
                       tuple(blocks))]


def table3(results: Mapping[str, Any], methods: Sequence[str]) -> list[page.Section]:
  """Table III: every method's exact AUC (all, cold) and sampled-100 AUC."""
  rows = tuple((method, (f"{method}.auc_test", f"{method}.auc_test_cold",
                         f"{method}.auc_test_sampled100", f"{method}.auc_valid"))
               for method in methods if method in results)
  blocks: list = [page.Grid(("test AUC, all items", "test AUC, cold items",
                             "sampled-100 AUC, test", "validation AUC"), rows), AUC_NOTE]
  top_k = tuple((method, (f"{method}.hr20_test", f"{method}.ndcg20_test", f"{method}.mrr_test",
                          f"{method}.hr20_test_cold", f"{method}.ndcg20_test_cold"))
                for method in methods if "hr20_test" in results.get(method, {}))
  if top_k:
    blocks += [page.Grid(("HR@20", "NDCG@20", "MRR", "HR@20, cold", "NDCG@20, cold"), top_k),
               "Full-ranking top-K on the test split (cold: the cold users ranked among cold "
               "items); table3.md has K = 10, 20, 50, the 95% intervals and the paired tests "
               "against DVBPR."]
  ceilings = [(label, (f"{c}_auc_test", f"{c}_auc_test_cold"))
              for c, label in (("learnable", "learnable ceiling (BPR on the true style), test"),
                               ("oracle", "planted model (oracle), test"))
              if f"{c}_auc_test" in results]
  if ceilings:
    blocks.append(page.Grid(("all items", "cold items"), tuple(ceilings)))
  if results.get("grid"):
    blocks.append(f"Grid (chosen by validation AUC): {results['grid']}")
  return [page.Section("Table III", tuple(blocks))]


def table4(results: Mapping[str, Any], sources: Mapping[str, str]) -> list[page.Section]:
  """Table IV: preference, quality and diversity of four image sources (name -> label), and,
  with the category classifier, each source's category accuracy and Fréchet distance."""
  present = [source for source in sources if source in results]
  extras = [key for key in ("category_accuracy", "frechet_classifier")
            if present and all(key in results[source] for source in present)]
  rows = tuple((sources[source], tuple(f"{source}.{metric}_{stat}"
                                       for metric in ("preference", "quality", "diversity")
                                       for stat in ("mean", "std"))
                + tuple(f"{source}.{key}" for key in extras))
               for source in present)
  names = {"category_accuracy": "category accuracy", "frechet_classifier": "classifier Fréchet"}
  return [page.Section("Table IV", (
      page.Grid(("preference", "+-", "quality", "+-", "diversity", "+-")
                + tuple(names[key] for key in extras), rows),
      f"Over {results.get('trials')} trials. Preference: mean theta_u . Phi(image) of the "
      f"top-3 (eq. 6). Quality: {results.get('quality_metric')}. Diversity: 1 - mean "
      "pairwise SSIM of the top-3."
      + (" Category accuracy: the share of images the dataset's category classifier assigns "
         "to the category they were made for. Classifier Fréchet: the Fréchet distance to "
         "all real images in that classifier's penultimate features (not FID)."
         if extras else "")))]


def eta_sweep(results: Mapping[str, Any]) -> list[page.Section]:
  """Figure 3: the three metrics of synthesis as eta grows."""
  curves = results.get("curves", ())
  extras = [key for key in ("category_accuracy", "frechet_classifier")
            if curves and all(key in curve for curve in curves)]
  rows = tuple((f"eta = {curve.get('eta'):g}", tuple(
      f"curves.{n}.{metric}_mean" for metric in ("preference", "quality", "diversity"))
      + tuple(f"curves.{n}.{key}" for key in extras))
               for n, curve in enumerate(curves))
  names = {"category_accuracy": "category accuracy", "frechet_classifier": "classifier Fréchet"}
  blocks: list = [page.Grid(("preference", "quality", "diversity")
                            + tuple(names[key] for key in extras), rows),
                  "Trends: " + "; ".join(f"{k} {v}" for k, v in results.get("trend", {}).items())]
  if results.get("figure"):
    blocks.append(page.Figure(results["figure"], "Preference, quality and diversity of "
                              "delta-hat(u, c) against the realism weight eta (the paper's "
                              "Figure 3)."))
  return [page.Section("Realism weight eta (Figure 3)", tuple(blocks))]
