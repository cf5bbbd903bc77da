"""How far a trained prompt moved the classes' similarity structure from the hand-crafted
prompt's: SAR's own diagnostic, for any trained run (a method or its SAR variant).

    sar-prompt diagnose RUN_DIR [--output DIR] [--data ROOT] [--k 5] [--epoch N] [--difference]

RUN_DIR is a training run folder (fingerprint.json and prompt_learner/ checkpoints). The
trainer is rebuilt from the run's fingerprint config (the dataset root it names, or
--data), its checkpoint loaded (the last epoch saved, or --epoch), and for three sets of
classes, the run's base classes, its new classes (the dataset's other half) and the novel
list SAR reads, the cosine similarities of their text features under the learned prompt
are compared with those under the hand-crafted prompt:

- SAR loss: sar_prompt.sar's loss between the two similarity matrices, with the run's
  TRAINER.SAR settings (LOSS, TEMPERATURE, EXCLUDE_SELF);
- Spearman: the rank correlation of each class's similarities to the other classes under
  the two prompts, averaged over classes (1: the order of neighbours is unchanged);
- kNN kept: of each class's k nearest classes under the hand-crafted prompt, the share
  still among its k nearest under the learned prompt, averaged (1: all kept).

A prompt that leaves the structure as the hand-crafted prompt has it gives loss 0,
Spearman 1 and every neighbour kept. Run it on X and XSAR of the same dataset to see what SAR
changed. Writes diagnose.json and the similarity heatmaps (learned beside hand-crafted, the
base and new blocks labelled; --difference adds their difference; .pdf and .png) into
--output (default RUN_DIR/diagnose). For an image-conditioned method
(CoCoOp) the learned features are the context's alone (the meta-net's image token off).
"""
import argparse
import math
import sys
from pathlib import Path

from sar_prompt.errors import ConfigError, run_command

GROUPS = ("base", "new", "novel")


# -- the measures (pure functions of two feature matrices) ----------------------------------
def _ranks(rows):
    """Ranks (0 = smallest) of each row's entries; ties are broken by position."""
    return rows.argsort(dim=1).argsort(dim=1).float()


def drift(learned, handcrafted, k=5, loss="kl", temperature=0.01, exclude_self=True):
    """Measures of how the similarity structure of normalised features `learned` (N, E)
    departs from that of `handcrafted` (N, E), the same N classes in the same order."""
    from sar_prompt.sar import off_diagonal, similarity_alignment_loss

    learned, handcrafted = learned.float(), handcrafted.float()
    n = learned.shape[0]
    s_learned, s_hand = learned @ learned.t(), handcrafted @ handcrafted.t()
    out = {"classes": n, "sar_loss": None, "spearman": None, "knn_kept": None, "k": 0}
    if n < 2:
        return out
    out["sar_loss"] = float(similarity_alignment_loss(s_learned, s_hand, loss, temperature,
                                                      exclude_self))
    rows_l, rows_h = off_diagonal(s_learned), off_diagonal(s_hand)
    if n >= 3:
        rl, rh = _ranks(rows_l), _ranks(rows_h)
        rl, rh = rl - rl.mean(dim=1, keepdim=True), rh - rh.mean(dim=1, keepdim=True)
        rho = (rl * rh).sum(dim=1) / (rl.norm(dim=1) * rh.norm(dim=1))
        out["spearman"] = float(rho.mean())
    k_eff = min(k, n - 1)
    near_l = rows_l.topk(k_eff, dim=1).indices
    near_h = rows_h.topk(k_eff, dim=1).indices
    kept = (near_l[:, :, None] == near_h[:, None, :]).any(dim=2).float().sum(dim=1)
    out["knn_kept"] = float(kept.mean() / k_eff)
    out["k"] = k_eff
    return out


# -- rebuilding a run ------------------------------------------------------------------------
def read_fingerprint(run_dir):
    from sar_prompt.runs import fingerprint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give a training run's folder (the one "
                          "that holds fingerprint.json and prompt_learner/).")
    try:
        fp = fingerprint.read(run_dir, strict=True)
    except fingerprint.FingerprintUnreadable as exc:
        raise ConfigError(f"{exc}. diagnose rebuilds the trainer from it, so it cannot "
                          "diagnose this run; point at a training run whose "
                          f"{fingerprint.FILE} is intact.") from None
    if fp is None or not isinstance(fp.get("config"), dict):
        what = "is missing" if fp is None else "holds no config"
        raise ConfigError(f"{run_dir / fingerprint.FILE} {what}: diagnose rebuilds the trainer "
                          "from it. Point at a run trained with this version of sar-prompt.")
    if (fp.get("run") or {}).get("eval_only"):
        raise ConfigError(f"{run_dir} is an evaluation run (eval_only in its fingerprint); "
                          "give the training run it loaded (its train_base/ twin).")
    return fp


def build_trainer(fp, output_dir, data_root=None):
    """The run's trainer, rebuilt from its fingerprint config on all of its dataset's
    classes (the checkpoint's class-dependent tensors are rebuilt for them)."""
    from dassl.config import get_cfg_default
    from dassl.engine import build_trainer as dassl_build_trainer
    from dassl.utils import set_random_seed
    from yacs.config import CfgNode

    from sar_prompt.config import extend_cfg
    from sar_prompt.dassl_glue.registration import register

    register()
    cfg = get_cfg_default()
    extend_cfg(cfg)
    try:
        cfg.merge_from_other_cfg(CfgNode(fp["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"the run's fingerprint config does not fit this version's config "
                          f"({exc}); diagnose it with the sar-prompt version that trained it "
                          f"(fingerprint git revision: {(fp.get('git') or {}).get('revision')})."
                          ) from None
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    cfg.RESUME = ""
    cfg.MODEL.INIT_WEIGHTS = ""
    if data_root:
        cfg.DATASET.ROOT = str(Path(data_root).expanduser().resolve())
    if not Path(cfg.DATASET.ROOT).is_dir():
        raise ConfigError(f"the run's dataset root {cfg.DATASET.ROOT} is not here; give the "
                          "folder that holds the datasets with --data.")
    cfg.freeze()
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    trainer = dassl_build_trainer(cfg)
    if not trainer.get_model_names():
        raise ConfigError(f"{cfg.TRAINER.NAME} learns no prompt: there is nothing to diagnose.")
    return trainer


def novel_names(trainer, exclude):
    """SAR's novel list for the run's dataset (the run's own list for a SAR variant)."""
    from sar_prompt import novel
    from sar_prompt.catalog import by_key, novel_key_for

    novel_list = getattr(trainer, "novel_list", None)
    if novel_list is None:
        cfg = trainer.cfg
        key = novel_key_for(cfg.DATASET.NAME)
        path = cfg.TRAINER.SAR.NOVEL_FILE or novel.default_path(key)
        novel_list = novel.load(path, key, by_key(key).name if by_key(key) else
                                cfg.DATASET.NAME)
    taken = {novel.normalized(n) for n in exclude}
    return [n for n in novel_list.names if novel.normalized(n) not in taken]


def features(trainer, names, label):
    """(learned, hand-crafted) normalised text features of `names`."""
    import torch

    model = trainer.model
    model.eval()
    with torch.no_grad():
        tokens = model.prompt_learner.class_tokens(names, source=f"{label} in the learnable "
                                                               "prompt").to(trainer.device)
        learned = model.class_text_features(tokens)
        hand = trainer.handcrafted_features(list(names), label)
    return learned.float().cpu(), hand.float().cpu()


def diagnose(run_dir, output=None, data_root=None, k=5, epoch=None):
    """Measure a run; returns the report (also written to OUTPUT/diagnose.json) and the
    similarity matrices per group."""
    from sar_prompt.runs.result_file import last_checkpoint_epoch

    run_dir = Path(run_dir).resolve()
    fp = read_fingerprint(run_dir)
    output = Path(output or run_dir / "diagnose")
    trainer = build_trainer(fp, output, data_root)
    epoch = epoch or last_checkpoint_epoch(run_dir)
    if epoch is None:
        raise ConfigError(f"{run_dir} holds no saved checkpoint (prompt_learner/model.pth.tar-N)"
                          ": did its training finish an epoch?")
    trainer.load_model(str(run_dir), epoch=epoch)
    classnames = list(trainer.dm.dataset.classnames)
    half = math.ceil(len(classnames) / 2)  # the CoOp family's base / new split
    subsample = (fp.get("run") or {}).get("subsample_classes") or "base"
    if subsample == "all":
        groups = {"base": classnames}
    else:
        trained, other = (classnames[:half], classnames[half:]) if subsample == "base" else \
            (classnames[half:], classnames[:half])
        groups = {"base": trained, "new": other}
    groups["novel"] = novel_names(trainer, classnames)
    sar = trainer.cfg.TRAINER.SAR
    report = {"run": str(run_dir), "trainer": trainer.cfg.TRAINER.NAME,
              "dataset": trainer.cfg.DATASET.NAME, "seed": trainer.cfg.SEED,
              "checkpoint": getattr(trainer, "loaded_checkpoint", None), "k": k,
              "sar_settings": {"loss": sar.LOSS, "temperature": sar.TEMPERATURE,
                               "exclude_self": sar.EXCLUDE_SELF},
              "groups": {}}
    matrices = {}
    for group, names in groups.items():
        if not names:
            continue
        learned, hand = features(trainer, names, f"{group} classes")
        report["groups"][group] = drift(learned, hand, k, sar.LOSS, sar.TEMPERATURE,
                                        sar.EXCLUDE_SELF)
        matrices[group] = (names, (learned @ learned.t()).numpy(), (hand @ hand.t()).numpy())
    joint = groups["base"] + groups.get("new", [])
    learned, hand = features(trainer, joint, "dataset classes")
    matrices["_joint"] = (joint, (learned @ learned.t()).numpy(), (hand @ hand.t()).numpy())
    return report, matrices, output


def table_text(report):
    lines = [f"{report['trainer']} on {report['dataset']} (seed {report['seed']}), "
             f"checkpoint epoch {(report['checkpoint'] or {}).get('epoch')}: learned vs "
             "hand-crafted prompt",
             f"{'classes':<10}{'n':>6}{'SAR loss':>12}{'Spearman':>11}"
             f"{'kNN kept':>11}"]

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    for group, m in report["groups"].items():
        lines.append(f"{group:<10}{m['classes']:>6}{fmt(m['sar_loss'], '.4f'):>12}"
                     f"{fmt(m['spearman'], '.3f'):>11}{fmt(m['knn_kept'], '.3f'):>11}")
    lines.append(f"(SAR loss: {report['sar_settings']['loss']}, temperature "
                 f"{report['sar_settings']['temperature']}; kNN kept: share of each class's "
                 f"{report['k']} nearest hand-crafted neighbours still among its learned ones)")
    return "\n".join(lines)


def _block_ticks(ax, axis, blocks):
    """Ticks at the middle of each block of classes, labelled with its name."""
    centres = [(a + b - 1) / 2 for _, a, b in blocks]
    names = [name for name, _, _ in blocks]
    if axis == "x":
        ax.set_xticks(centres)
        ax.set_xticklabels(names)
    else:
        ax.set_yticks(centres)
        ax.set_yticklabels(names, rotation=90, va="center")
    ax.tick_params(axis=axis, length=0)


def plot_heatmaps(matrices, stem, title="", difference=False):
    """Hand-crafted beside learned similarities of the base and new classes (one shared
    colour scale), their base and new blocks labelled and ruled; `difference`: a third
    panel, learned minus hand-crafted (a diverging scale centred on 0). stem.pdf, .png."""
    import numpy as np

    from sar_prompt.results.plots import COLUMN_WIDTH, STYLE, _pyplot, _save

    plt = _pyplot()
    names, learned, hand = matrices["_joint"]
    learned, hand = np.asarray(learned), np.asarray(hand)
    low = float(min(learned.min(), hand.min()))
    n = len(names)
    split = len(matrices["base"][0]) if "base" in matrices and "new" in matrices else None
    blocks = [("base", 0, split), ("new", split, n)] if split else [("base", 0, n)]
    show_names = n <= 12
    panels = [(hand, "hand-crafted"), (learned, "learned")]
    if difference:
        panels.append((learned - hand, "difference"))
    # one column; with the difference, the width of a two-column page
    size = (2 * COLUMN_WIDTH, 2.6) if difference else (COLUMN_WIDTH, 2.2 if show_names else 1.9)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=size,
                                 sharey=True, squeeze=False, layout="constrained")
        axes = list(axes[0])
        for ax, (matrix, label) in zip(axes, panels):
            diff = label == "difference"
            reach = float(np.abs(matrix).max()) or 1e-6
            image = ax.imshow(matrix, cmap="RdBu_r" if diff else "viridis",
                              vmin=-reach if diff else low, vmax=reach if diff else 1.0,
                              interpolation="nearest")
            if diff:
                fig.colorbar(image, ax=ax, shrink=0.8, label="learned − hand-crafted")
            else:
                similarity = image
            ax.set_title(label if diff else f"{label} prompt", pad=2)
            if split:
                for line in (ax.axhline, ax.axvline):
                    line(split - 0.5, color="white" if not diff else "0.3", lw=0.8)
            if show_names:  # the class names below, the blocks' names above
                ax.set_xticks(range(n))
                ax.set_xticklabels(names, rotation=90)
                top = ax.secondary_xaxis("top")
                _block_ticks(top, "x", blocks)
                ax.set_title(ax.get_title(), pad=10)
            else:
                _block_ticks(ax, "x", blocks)
        if show_names:
            axes[0].set_yticks(range(n))
            axes[0].set_yticklabels(names)
        else:
            _block_ticks(axes[0], "y", blocks)
        for ax in axes[1:]:
            ax.tick_params(axis="y", length=0)
        fig.colorbar(similarity, ax=axes[:2], shrink=0.8, label="cosine similarity")
        if title:  # a small line above the panels (a paper's caption says the rest)
            fig.suptitle(title, x=0.01, ha="left", fontsize=STYLE["font.size"])
        paths = _save(fig, plt, stem)
    return [p for p in paths if p.suffix in (".pdf", ".png")]


def run(args):
    from sar_prompt.io import atomic_write_json, atomic_write_text

    report, matrices, output = diagnose(args.run_dir, args.output, args.data, args.k, args.epoch)
    text = table_text(report)
    print(text)
    atomic_write_json(output / "diagnose.json", report)
    atomic_write_text(output / "diagnose.txt", text + "\n")
    written = [output / "diagnose.json", output / "diagnose.txt"]
    written += plot_heatmaps(matrices, output / "similarity",
                             f"{report['trainer']} / {report['dataset']}", args.difference)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="python -m sar_prompt.results.diagnose", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="a training run folder (fingerprint.json, prompt_learner/)")
    p.add_argument("--output", help="where to write the table, JSON and figure "
                                    "[RUN_DIR/diagnose]")
    p.add_argument("--data", help="datasets root [the one in the run's fingerprint]")
    p.add_argument("--k", type=int, default=5, help="nearest neighbours compared [5]")
    p.add_argument("--epoch", type=int, help="checkpoint epoch [the last saved]")
    p.add_argument("--difference", action="store_true",
                   help="the figure with a third panel: learned minus hand-crafted")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.k < 1:
        print(f"error: --k is {args.k}; give 1 or more.", file=sys.stderr)
        return 2
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
