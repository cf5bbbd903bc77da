"""sar-prompt installs as one package, `sar_prompt`; the repository's top-level folders
`trainers/`, `datasets/`, `novel_classes/` and `configs/` become its subpackages, so installing
it never adds top-level `trainers` or `datasets` packages that would shadow a host suite's,
and a normal (non-editable) install carries every file read at run time: configs, class
lists, novel-class lists and the novel-class prompt."""
from setuptools import setup

setup(
    name="sar-prompt",
    version="0.1.0",
    description="Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a Dassl plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=[
        "sar_prompt",
        "sar_prompt.modeling",
        "sar_prompt.results",
        "sar_prompt.published",
        "sar_prompt.novel",
        "sar_prompt.classnames",
        "sar_prompt.data",
        "sar_prompt.world",
        "sar_prompt.trainers",
        "sar_prompt.datasets",
        "sar_prompt.novel_classes",
        "sar_prompt.configs",
    ],
    package_dir={
        "sar_prompt": "sar_prompt",
        "sar_prompt.trainers": "trainers",
        "sar_prompt.datasets": "datasets",
        "sar_prompt.novel_classes": "novel_classes",
        "sar_prompt.configs": "configs",
    },
    package_data={"sar_prompt.novel_classes": ["*.json"], "sar_prompt.classnames": ["*.txt"],
                  "sar_prompt.published": ["*.csv"],
                  "sar_prompt.world": ["world_clip.pt"],  # the world's pretrained CLIP
                  "sar_prompt.novel": ["prompts/*.txt"],
                  "sar_prompt.configs": ["datasets/*.yaml", "trainers/*.yaml",
                                         "trainers/*/*.yaml"]},
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
        "test": ["pytest", "pytest-xdist", "hypothesis", "matplotlib", "submitit"],
        # scripts/mutation.sh: mutmut 2 mutates files in place, which this layout needs
        "dev": ["pytest", "pytest-xdist", "hypothesis", "matplotlib", "submitit", "mutmut>=2.5.1,<3"],
    },
)
