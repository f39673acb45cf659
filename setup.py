"""featnet_tf: FeatNet (WWW'22) and CTR baselines on TensorFlow, Beam and TF Serving."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


def requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    development = {"pytest", "ruff"}  # the `test` extra
    return [
        line.strip() for line in lines if line.strip() and not line.startswith("#") and line.strip() not in development
    ]


setup(
    name="featnet_tf",
    version="0.1.0",
    description="FeatNet and CTR baselines: Beam preprocessing, tf_keras training, TF Serving export",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["featnet_tf", "featnet_tf.*", "pipelines", "pipelines.*", "serving", "serving.*", "tfbase", "demo"]
    ),
    install_requires=requirements(),
    extras_require={"test": ["pytest", "ruff"]},
    license="Apache-2.0",
)
