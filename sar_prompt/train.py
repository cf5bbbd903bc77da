"""Train or evaluate with the same command line as CoOp's train.py:

    sar-prompt train --data DATA --seed 1 --trainer CoOpSAR \
        --dataset-config-file caltech101 --config vit_b16_ctxv1 \
        --output OUT [--eval-only --model-dir DIR --load-epoch N] [KEY VALUE ...]

(`python train.py` in a checkout, and CoOp's spellings --root, --config-file and
--output-dir, work the same.) The configs are files, or the names of the shipped ones, as
`sar-prompt run` takes them: a dataset key, and a config name of the trainer's method.

The config is built as CoOp's train.py builds it (sar_prompt.config.command_line); then the
run folder is claimed for this config (sar_prompt.runs.ownership), and the trainer trains,
or loads a checkpoint and evaluates.
"""
import sys
from pathlib import Path

from sar_prompt.config.command_line import build_parser, check_names, setup_cfg
from sar_prompt.errors import ConfigError, SarPromptError, run_command


def check_eval_output(cfg, args):
    """An evaluation never silently replaces a finished run's results."""
    from sar_prompt.runs.result_file import RESULT_FILE

    existing = Path(cfg.OUTPUT_DIR) / RESULT_FILE
    if existing.exists() and not args.overwrite_results:
        raise ConfigError(
            f"{existing} exists: --output {cfg.OUTPUT_DIR} holds a finished run's results. "
            "Evaluate into another --output, or pass --overwrite-results to replace them.")


def _names_a_file(value):
    return value.endswith((".yaml", ".yml")) or "/" in value or Path(value).exists()


def resolve_config_names(args):
    """--config and --dataset-config-file given as names of shipped configs (vit_b16_ctxv1,
    caltech101), as `sar-prompt run` takes them: replaced by the files' paths."""
    from sar_prompt.runs.protocols import CONFIG_ROOT, dataset_config, find_config, method_of

    if args.dataset_config_file and not _names_a_file(args.dataset_config_file):
        name = args.dataset_config_file
        try:
            args.dataset_config_file = str(dataset_config(name))
        except ConfigError as exc:
            raise ConfigError(f"--dataset-config-file {name}: no such file, nor a shipped "
                              f"dataset config: {exc}") from None
    if args.config_file and not _names_a_file(args.config_file):
        name = args.config_file
        try:
            args.config_file = str(find_config(args.trainer, name)[1])
        except ConfigError:
            method = method_of(args.trainer)
            folder = CONFIG_ROOT / "trainers" / (method.folder if method else "")
            known = sorted({p.stem for p in folder.rglob("*.yaml")})
            raise ConfigError(f"--config {name}: no such file, nor a shipped config of that "
                              f"name{f' for {args.trainer}' if args.trainer else ''}. Give a "
                              f".yaml file, or one of: {', '.join(known)}.") from None


def run(args):
    resolve_config_names(args)  # before Dassl is imported: a wrong name is said at once
    import sar_prompt

    sar_prompt.register()  # patches Dassl, registers trainers and datasets
    from dassl.engine import build_trainer
    from dassl.utils import collect_env_info, set_random_seed, setup_logger
    import torch

    from sar_prompt.dassl_glue import rng
    from sar_prompt.runs import fingerprint
    from sar_prompt.orchestration import preflight
    from sar_prompt.runs import progress
    from sar_prompt.runs import ownership

    quiet = progress.QuietRun() if progress.quiet_requested() else None
    cfg = setup_cfg(args)
    check_names(cfg, args)
    preflight.train_inputs(cfg, args)  # INPUT.SIZE, --model-dir, --load-epoch
    if ownership.claim(cfg, args).finished:  # another config's folder: refused here
        return
    if args.eval_only:
        check_eval_output(cfg, args)
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    setup_logger(cfg.OUTPUT_DIR)
    if quiet:
        quiet.after_logger()
    rng.configure_cuda(torch.cuda.is_available() and cfg.USE_CUDA, rng.deterministic_requested())
    print("** Arguments **")
    for key in sorted(k for k in vars(args) if not k.startswith("_")):  # _: the parser's own
        print(f"{key}: {getattr(args, key)}")
    print("** Config **")
    print(cfg)
    print(f"** System info **\n{collect_env_info()}\n")
    trainer = build_trainer(cfg)
    fingerprint.write(trainer, eval_only=args.eval_only)
    if quiet:
        quiet.attach(trainer)
    if args.eval_only:
        if not args.model_dir and trainer.get_model_names():
            raise ConfigError(
                f"--eval-only without --model-dir would evaluate {cfg.TRAINER.NAME}'s untrained "
                "prompt. Pass --model-dir with a training run's output folder (and --load-epoch "
                "N), or evaluate CLIP zero-shot with --trainer ZeroshotCLIP.")
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return
    if not args.no_train:
        trainer.train()


def main(argv=None):
    """Exit status: 0 done, 2 a mistake in the input (a message says which and how to fix
    it), 130 interrupted, 1 anything unexpected (with its traceback)."""
    args = build_parser().parse_args(argv)

    def command():
        from sar_prompt.runs.ownership import release_claims

        try:
            run(args)
        except ModuleNotFoundError as exc:
            if exc.name != "dassl":
                raise
            raise SarPromptError("Dassl is not installed. Install it from its repository "
                                 "(see docs/install.md), then run again.") from None
        finally:
            release_claims()  # the run folder's lock

    return run_command(command, interrupted="interrupted; every file already written is kept "
                                            "(a training run resumes from its last saved "
                                            "epoch when run again).")


if __name__ == "__main__":
    sys.exit(main())
