"""dvbpr-tf: Visually-aware fashion recommendation and design (Kang et al., ICDM 2017) in TF2."""

import setuptools

# The dataset builders live in the top-level folder `datasets/` (one folder per builder, as the
# TensorFlow Datasets convention wants) but are installed under the import name
# `dvbpr_tf_datasets`, so that nothing of ours shadows the Hugging Face `datasets` package.
# `datasets/` itself deliberately has no `__init__.py`.
_BUILDER_PACKAGES = [
    "common", "fashion_mnist_shoppers", "dvbpr_authors", "hm_fashion", "fashion_catalog"]

setuptools.setup(
    name="dvbpr-tf",
    version="0.1.0",
    description=(
        "TensorFlow 2 reproduction of 'Visually-Aware Fashion Recommendation and Design with "
        "Generative Image Models' (Kang, Fang, Wang, McAuley, ICDM 2017)."
    ),
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(
        include=["dvbpr_tf", "dvbpr_tf.*", "experiments", "benchmarks"])
    + ["dvbpr_tf_datasets"]
    + [f"dvbpr_tf_datasets.{name}" for name in _BUILDER_PACKAGES],
    package_dir={"dvbpr_tf_datasets": "datasets"},
    package_data={
        "dvbpr_tf_datasets": ["*/README.md", "*/CITATIONS.bib", "*/checksums.tsv", "*/dummy_data/**/*"],
    },
    # Versions seen working together on Python 3.11 (2026-11): TF 2.21.0 (Keras 3.15),
    # TFDS 4.9.10, NumPy 2.4, Pillow 13, scikit-image 0.26, absl-py 2.5.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-datasets==4.9.10",
        "importlib_resources>=6",  # TFDS 4.9.10 imports it on Python 3.11 without declaring it.
        "numpy>=2.0,<3",
        "pillow>=10",
        "scikit-image>=0.22",
        "absl-py>=2.1",
        "tensorboard>=2.21,<2.22",  # TF 2.21 no longer depends on it; `tensorboard --logdir`.

    ],
    # dill: imported by tfds.testing.
    # peers: the libraries of benchmarks/peers_bench.py (the Table III cross-check). Cornac
    # installs from its wheel; LightFM's maintained fork `lightfm-next` ships a wheel that
    # needs a newer glibc than Debian 12's, so pip builds it from its source distribution
    # (a C compiler and the Python headers: apt-get install build-essential python3-dev).
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3", "hypothesis>=6", "dill"],
                    "peers": ["cornac==3.0.1", "lightfm-next==1.18.7"]},
    entry_points={"console_scripts": ["dvbpr-tf=experiments.main:run"]},
)
