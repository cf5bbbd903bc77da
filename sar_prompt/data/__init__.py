"""Data tools that do not train anything: the checks the loaders share (`report`,
`layout`, `images`), the data doctor and the downloader.

    python -m sar_prompt.data check DATASET --root DATA [--deep] [--shots 16]
    python -m sar_prompt.data download DATASET --root DATA

DATASET is a key of sar_prompt.catalog (dtd, imagenet, ...) or a registry name
(DescribableTextures). See docs/datasets.md.
"""
