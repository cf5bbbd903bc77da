"""Result tables, read from each run folder's results.json (see sar_prompt/runs/result_file.py).

    sar-prompt results OUTPUT                      # whatever is there
    sar-prompt results OUTPUT/base2new --trainer CoOpSAR
    sar-prompt results OUTPUT/base2new --compare CoOp CoOpSAR KgCoOp KgCoOpSAR \\
        [--std] [--format latex] [--save DIR]
    sar-prompt results OUTPUT/base2new --compare ZeroshotCLIP CoOp --published
    sar-prompt results OUTPUT/fewshot --trainer CoOp
    sar-prompt results OUTPUT/transfer/from_imagenet --protocol dg --trainer CoOp
    sar-prompt results OUTPUT/base2new/train_base/dtd/shots_16/CoOp/vit_b16_ctxv1
        # any folder of seed*/ runs: per seed and mean +- std
    sar-prompt results OUTPUT/base2new --per-seed caltech101 --trainer CoOpSAR \\
        --config vit_b16_ctxv1          # one dataset, seed by seed

The results folder is ROOT or --output (else $SAR_PROMPT_OUTPUT or $OUTPUT, else ./output);
--trainers T picks one trainer, --trainers T1 T2 ... compares them (as --compare).

Datasets, trainers, configs, shots and seeds default to those found on disk (any dataset
name, the demo's included). The table is the paper's: methods as rows, datasets (the
reference tables' order, then the average) as column groups of Base / New / HM, the mean
over seeds (--std adds the population std, as CoOp's parse_test_res.py). HM is the harmonic
mean of the mean base and mean new accuracies, as the CoOp family reports it (its std is
that of the per-seed HMs), and the average row's HM is the harmonic mean of the averaged
base and averaged new accuracies, not the mean of the per-dataset HMs. With --compare (or
several trainers on disk), each XSAR gets a row of Base, New and HM deltas against its X
(--zero-shot-deltas: each method one against ZeroshotCLIP too), the best of each column
bold (LaTeX, markdown), --label T=TEXT renaming rows; ZeroshotCLIP is evaluated once per
dataset (no seeds, no std). A seed set that is not complete (a run missing, interrupted,
failed, or with a broken results.json) is refused, every such run named with what is on
disk, unless --allow-partial; cells averaged over fewer seeds are marked (n/N), their Base,
New and HM all over the seeds with both. Runs whose fingerprints differ are reported (see
fingerprint.py). --sweep tabulates a sweep's points, --point compares at one of them.

The package: `records` collects the runs on disk, `aggregate` turns them into a Table (pure
arithmetic), `formats` renders it (text, markdown, LaTeX, CSV long and wide, JSON),
`published` holds the published baselines, `tables_cli` is the command line; `latex` the
LaTeX layout, `seed_tables` the per-seed tables the scripts print, `sweep_table` a sweep's
table, `plots` and `sweep_plot` the figures, `diagnose` a run's similarity structure.
"""
from sar_prompt.results.aggregate import (AVERAGE, METRICS, Entry, Table, build_table,  # noqa: F401
                                          delta_pairs, harmonic_mean, trainers_on_disk)
from sar_prompt.results.tables_cli import build_parser, main, resolve_root  # noqa: F401
from sar_prompt.results.formats import (FORMATS, RENDER, problems_text, render, save,  # noqa: F401
                                        title_of, to_csv, to_csv_wide, to_json, to_latex,
                                        to_markdown, to_text)
from sar_prompt.results.records import collect, run_dirs  # noqa: F401
from sar_prompt.results.seed_tables import format_seed_runs, format_table  # noqa: F401
