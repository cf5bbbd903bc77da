"""sar-prompt installs as one package, `sar_prompt`; the repository's top-level folders
`trainers/`, `datasets/`, `novel_classes/` and `configs/` become its subpackages, so installing
it never adds top-level `trainers` or `datasets` packages that would shadow a host suite's,
and a normal (non-editable) install carries every file read at run time: configs, class
lists, novel-class lists and the novel-class prompt."""
from setuptools import find_packages, setup

# Repository folders installed as subpackages of sar_prompt (the rest of the package is
# sar_prompt/ itself). Packages are discovered, never listed, so none can be left out.
MAPPED = {"trainers": "sar_prompt.trainers", "datasets": "sar_prompt.datasets",
          "novel_classes": "sar_prompt.novel_classes", "configs": "sar_prompt.configs"}


def discovered_packages():
    packages = ["sar_prompt", *(f"sar_prompt.{p}" for p in find_packages("sar_prompt"))]
    for folder, package in MAPPED.items():
        packages += [package, *(f"{package}.{p}" for p in find_packages(folder))]
    return packages


# mutmut 2 (it mutates files in place, which this layout needs) runs scripts/mutation.sh;
# tests/test_mutation_config.py checks that tooling
TEST_REQUIRES = ["pytest", "pytest-xdist", "hypothesis", "matplotlib", "submitit",
                 "mutmut>=2.5.1,<3"]

setup(
    name="sar-prompt",
    version="0.1.0",
    description="Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a Dassl plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=discovered_packages(),
    package_dir={"sar_prompt": "sar_prompt", **{p: f for f, p in MAPPED.items()}},
    # every data file read at run time, in any package (tests/test_wheel_install.py checks
    # that each file git tracks under a package folder is in the wheel)
    package_data={"": ["*.json", "*.txt", "*.csv", "*.yaml"],
                  "sar_prompt.configs": ["**/*.yaml"],
                  "sar_prompt.world": ["world_clip.pt"],  # the world's pretrained CLIP
                  "sar_prompt.novel": ["prompts/*.txt"]},
    # Dassl is not on PyPI: install it from its repository (see README).
    install_requires=[
        "torch>=1.13",
        "torchvision",
        "openai-clip",
        # openai-clip imports pkg_resources, which setuptools 81 removed: without this pin,
        # `import clip` fails in any script that imports it before sar_prompt.
        "setuptools<81",
        "packaging",
        "yacs",
        "tabulate",
        "tqdm",
        "gdown",
        "openai>=1.0",
    ],
    # `sar-prompt COMMAND ...`: every tool behind one command (also `python -m sar_prompt`).
    entry_points={"console_scripts": ["sar-prompt = sar_prompt.cli:main"]},
    extras_require={
        "plots": ["matplotlib"],            # the plot beside each result table
        "slurm": ["submitit"],              # bench.sh / base2new_all.sh --slurm
        "test": TEST_REQUIRES,
        "dev": TEST_REQUIRES,               # scripts/mutation.sh's name for the same set
    },
)
