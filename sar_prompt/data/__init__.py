"""Everything about datasets on disk, without Dassl: where each dataset's files are and how
they are read and checked (`files`, `layouts`, `records`, `layout`, `images`, `report`),
the data doctor and the download helper. The Dassl datasets (`sar_prompt.datasets`) load
through these; nothing here imports them.

    sar-prompt data check DATASET --data DATA [--deep] [--shots 16]
    sar-prompt data download DATASET --data DATA

DATASET is a key of sar_prompt.catalog (dtd, imagenet, ...) or a registry name
(DescribableTextures). See docs/datasets.md.
"""
