"""Installs the STPA / ST-attn reference implementation (packages `stpa`, `st_attn`, `data`, `experiments`).

`experiments` carries the study flagfiles it reads at run time (`experiments/synthetic/*.cfg`, found next to
`experiments/runner.py` by `runner.FLAGFILE_DIR`) and the paper-setting flagfiles, so
`python -m experiments.reproduce --list` works from any directory after `pip install -e .` (or a plain install).
"""

import setuptools

setuptools.setup(
    name="video-attention",
    version="0.1.0",
    description=(
        "Keras 3 reference implementation of Interaction-aware Spatio-temporal Pyramid Attention (Du et al., "
        "ECCV 2018) and Interpretable Spatio-temporal Attention (Meng et al., 2019) for action recognition."
    ),
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["stpa", "stpa.*", "st_attn", "st_attn.*", "data", "data.*", "experiments", "experiments.*"]
    ),
    package_data={
        "experiments": ["synthetic/*.cfg", "stpa/*.cfg", "st_attn/*.cfg", "*.md", "weights/*.h5", "weights/*.json"]
    },
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-datasets",
        "tensorboard",
        "numpy",
        "scipy",  # experiments.statistics: Student's t distribution
        "absl-py",
        "opencv-contrib-python-headless",
        "tqdm",
        "pillow",
        "matplotlib",
    ],
    extras_require={
        "test": ["pytest", "pytest-xdist", "ruff==0.17.6", "scikit-video", "apache-beam>=2.65"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        # python -m data.beam_prepare: the DirectRunner (local processes), Flink, Spark ...
        "beam": ["apache-beam>=2.65"],
        # ... and Google Cloud Dataflow (with gs:// output).
        "dataflow": ["apache-beam[gcp]>=2.65"],
        "convert": ["torch"],
    },
)
