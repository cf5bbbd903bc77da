"""Run a protocol of the CoOp family for one trainer: every dataset, seed (and shots).

    sar-prompt run PROTOCOL TRAINER [KEY VALUE ...] [options]

PROTOCOL is base2new, fewshot, xd (cross-dataset transfer) or dg (domain generalisation);
see sar_prompt/runs/protocols.py for the runs each makes. scripts/base2new_all.sh,
scripts/base2new.sh and scripts/bench.sh call this. Trailing KEY VALUE pairs go to every run
and name its config folder (`vit_b16_ctxv1__SAR.WEIGHT=5`, or `<config>__<TAG>` with --tag);
`--sweep KEY V1,V2` runs every value (several --sweep: every combination), each point in its
own folders, and prints one row per point. See docs/runs.md.

Every option has an environment variable, read when the option is not given:
SAR_PROMPT_DATASETS, _SEEDS, _SHOTS, _CONFIG, _DATA, _OUTPUT, _GPUS (or their short names
DATASETS, SEEDS, SHOTS, CFG, DATA, OUTPUT, GPUS: the SAR_PROMPT_ one wins when both are set),
VERBOSE=1, SOURCE, TAG, MOVE_ASIDE=1, SWEEP="KEY=V1,V2;KEY2=V3,V4"; and PROGRESS=1 / 0 turns
the progress bars on / off (default: when stderr is a terminal).
"""
import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from sar_prompt.orchestration import preflight
from sar_prompt.errors import ConfigError, SarPromptError
from sar_prompt.runs.protocols import PROTOCOLS, TRANSFER_SOURCE, Benchmark, protocol_root
from sar_prompt.runs.result_file import last_checkpoint_epoch, read_run
from sar_prompt.vocabulary import env_help, setting, words

DEMO_NOTE = ("== demo: a tiny generated dataset and a tiny RANDOM CLIP. Its accuracies only show "
             "that\n== the pipeline runs end to end; they say nothing about any method.")


def build_parser():
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m sar_prompt.orchestration.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("protocol", choices=PROTOCOLS)
    p.add_argument("trainer", help="a registered trainer (CoOp, CoOpSAR, KgCoOpSAR, ...)")
    p.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config options for every run")
    p.add_argument("--datasets", nargs="+", default=words(setting("datasets")),
                   help=f"datasets (xd/dg: targets) [{env_help('datasets')}; all of the "
                        "protocol's]")
    # seeds, shots and GPUs are read (flag, else environment) and checked in preflight.py
    p.add_argument("--seeds", nargs="+", help=f"[{env_help('seeds')}; 1 2 3]")
    p.add_argument("--shots", nargs="+",
                   help=f"[{env_help('shots')}; 16, few-shot: 1 2 4 8 16]")
    p.add_argument("--config", default=setting("config", ""),
                   help="a config name under configs/trainers/ or a .yaml file "
                        f"[{env_help('config')}; the method's default, see "
                        "sar_prompt/runs/protocols.py]")
    p.add_argument("--data", default=setting("data", "data"),
                   help=f"datasets root [{env_help('data')}; ./data]")
    p.add_argument("--output", default=setting("output", "output"),
                   help=f"results root [{env_help('output')}; ./output]")
    p.add_argument("--source", default=env("SOURCE", TRANSFER_SOURCE),
                   help="xd/dg: the dataset trained on [imagenet]")
    p.add_argument("--gpus",
                   help="GPU ids, e.g. 0,1,2,3: one job per GPU at a time "
                        f"[{env_help('gpus')}; one job at a time on what "
                        "CUDA_VISIBLE_DEVICES shows]")
    p.add_argument("--jobs", default=env("JOBS", ""), metavar="N",
                   help="without GPUs: N jobs at a time on the CPU (each a process of its own; "
                        "for a machine with cores to spare) [$JOBS; 1]")
    p.add_argument("--verbose", action="store_true", default=env("VERBOSE", "") not in ("", "0"),
                   help="show every run's full output [$VERBOSE=1]")
    p.add_argument("--dry-run", action="store_true", help="print the job list and exit")
    p.add_argument("--tag", default=env("TAG", ""),
                   help="name the config folders <config>__TAG instead of by the overrides "
                        "[$TAG]")
    p.add_argument("--move-aside", action="store_true",
                   default=env("MOVE_ASIDE", "") not in ("", "0"),
                   help="a run folder that holds another config's run is renamed to "
                        "<folder>.moved-<UTC time> and the run starts afresh (default: such "
                        "runs are refused as conflicts) [$MOVE_ASIDE=1]")
    p.add_argument("--sweep", nargs=2, action="append", metavar=("KEY", "V1,V2,..."),
                   help="run every value of KEY (repeat: every combination), each point in "
                        "its own folders, then one table row per point [$SWEEP]")
    p.add_argument("--table", choices=("summary", "seeds", "none"), default="summary",
                   help="at the end: the protocol's table (saved with its plot under "
                        "<protocol folder>/tables/), the per-seed table of one dataset, or none")
    p.add_argument("--compare-trainers", type=words, help=argparse.SUPPRESS)  # `run --trainers`
    s = p.add_argument_group("Slurm (submitit)")
    s.add_argument("--slurm", action="store_true", help="submit the jobs as a Slurm job array")
    s.add_argument("--cluster", choices=("slurm", "local", "debug"),
                   help="submitit executor [slurm with --slurm]; local/debug run the "
                        "submission on this machine")
    s.add_argument("--wait", action="store_true", help="wait for the jobs, then print the table")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--constraint")
    s.add_argument("--time", type=int, default=24 * 60, help="minutes per job [1440]")
    s.add_argument("--gpus-per-job", type=int, default=1)
    s.add_argument("--cpus-per-job", type=int, default=8)
    s.add_argument("--mem-gb", type=float)
    s.add_argument("--array-parallelism", type=int, help="at most this many jobs at once")
    s.add_argument("--slurm-folder", help="submitit's logs [<protocol folder>/slurm]")
    return p


def take_sweeps(argv):
    """(the --sweep KEY VALUES pairs, the other words): taken before argparse, which reads a
    value that starts with '-' and is not a plain number (-1,2 or -0.5,1) as an option."""
    sweeps, rest, i = [], [], 0
    while i < len(argv):
        if argv[i] == "--sweep" and i + 2 < len(argv) and not argv[i + 1].startswith("--"):
            sweeps.append([argv[i + 1], argv[i + 2]])
            i += 3
            continue
        if argv[i] == "--":
            rest += argv[i:]
            break
        rest.append(argv[i])
        i += 1
    return sweeps, rest


def parse(argv=None):
    sweeps, argv = take_sweeps(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_intermixed_args(argv)
    args.sweep = (args.sweep or []) + sweeps or None
    odd = [o for o in args.opts if o.startswith("--")]
    if odd:
        raise ConfigError(f"unknown option {odd[0]} (see --help)")
    return preflight.bench_args(args)


def benchmark(args, point=()):
    """The Benchmark of the command line (of one sweep point's KEY VALUE pairs `point`)."""
    bench = Benchmark(protocol=args.protocol, trainer=args.trainer, datasets=args.datasets,
                      seeds=args.seeds, shots=args.shots, config=args.config, data=args.data,
                      output=args.output, opts=tuple(args.opts) + tuple(point),
                      source=args.source, tag=getattr(args, "tag", ""), point=tuple(point))
    if "demo" in bench.datasets:  # the offline demo: its data and tiny CLIP, generated here
        from sar_prompt.orchestration.demo import CLIP_FILE, DEMO_DIR

        weights = Path(args.data).expanduser().resolve() / DEMO_DIR / CLIP_FILE
        bench = replace(bench, extra_opts={"demo": ("MODEL.BACKBONE.PATH", str(weights))})
    if "world" in bench.datasets:  # the synthetic world: its CLIP and 32-pixel input
        from sar_prompt.world.dataset import run_options

        bench = replace(bench, extra_opts={**bench.extra_opts, "world": run_options(args.data)})
    return bench


def run_status(run):
    from sar_prompt.orchestration.sweep import folder_note

    note = folder_note(run)  # busy, or another config's folder
    if note:
        return note
    state = read_run(run.output_dir)
    if state.finished:
        return f"finished (acc {state.accuracy:.2f})"
    if state.status == "broken":
        return "broken: run again"
    if state.status == "failed":
        return "failed before: run again"
    if not run.eval_only and last_checkpoint_epoch(run.output_dir):
        return f"resume from epoch {last_checkpoint_epoch(run.output_dir)}"
    return "to run"


def print_jobs(bench, jobs, settings, gpus, out=None):
    out = out or sys.stdout
    runs = sum(len(j.runs) for j in jobs)
    cpu_slots = gpus and gpus[0] is None
    where = (f"{len(gpus)} jobs at a time on the CPU" if cpu_slots else
             f"one job per GPU from the queue {' '.join(gpus)}" if len(gpus) > 1 else
             f"on GPU {gpus[0]}" if gpus else "one job at a time")
    print(f"{bench.protocol}: {bench.trainer} on {len(bench.datasets)} dataset(s) "
          f"({' '.join(bench.datasets)}), seeds {' '.join(map(str, bench.seeds))}, shots "
          f"{' '.join(map(str, bench.shots))}: {_count(len(jobs), 'job')}, "
          f"{_count(runs, 'run')}, {where}",
          file=out)
    print(f"data {bench.data}, results {bench.root}", file=out)
    for line in preflight.missing_data(bench, jobs):
        print(line, file=out)
    for i, job in enumerate(jobs, 1):
        print(f"job {i}/{len(jobs)}: {job.label}", file=out)
        for run in job.runs:
            load = None
            if run.eval_only and run.train_dir:
                state = read_run(run.train_dir)
                load = state.epoch if state.finished else preflight.planned_load_epoch(job, run)
            command = " ".join(_quote(a) for a in settings.command(run, load))
            print(f"  {run.phase_label:<6}{run_status(run):<26}{command}", file=out)


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _quote(word):
    return shlex.quote(word)


def final_table(bench, args, out=None):
    from sar_prompt import results

    out = out or sys.stdout
    print(file=out)
    if args.table == "seeds":
        name = bench.folder_for(bench.datasets[0], bench.shots[0])  # with its overrides
        from sar_prompt.runs.protocols import trains

        seeds = bench.seeds if trains(bench.trainer) else bench.seeds[:1]  # zero-shot: once
        rows = results.collect(bench.root, bench.datasets[0], bench.trainer, name,
                               bench.shots[0], seeds)
        print(results.format_table(rows, f"base-to-new: {bench.datasets[0]} / {bench.trainer} / "
                                         f"{name} / {bench.shots[0]} shots"), file=out)
        return
    # `run --trainers A B`: the last trainer's table has them all, each in its folders
    benches = {t: replace(bench, trainer=t) for t in args.compare_trainers or [bench.trainer]}
    table = results.build_table(bench.root, bench.protocol, list(benches), bench.datasets,
                                bench.seeds, bench.shots, allow_partial=True, source=bench.source,
                                configs=lambda t, d, k: benches[t].folder_for(d, k))
    print(results.to_markdown(table, with_std=True), file=out)
    for warning in table.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        paths = results.save(table, bench.root / "tables", with_std=True)
    except SarPromptError as exc:  # the runs are kept; only the table could not be written
        print(f"error: {exc}", file=sys.stderr)
        return False
    print(f"table and plot: {', '.join(str(p) for p in paths)}", file=out)
    if table.problems:
        print(f"({len(table.problems)} run(s) not finished: the table averages what there is)",
              file=out)


def main(argv=None):
    from sar_prompt.orchestration.runner import Settings, run_local
    from sar_prompt.orchestration.sweep import sweep_benchmarks

    try:
        args = parse(argv)
        points = sweep_benchmarks(args, benchmark)  # [(label, Benchmark)]; one without a sweep
        bench = points[0][1]
        jobs = [job for _, b in points for job in b.jobs()]
        if not args.dry_run:
            preflight.bench_data(bench, jobs)
            if args.gpus and not (args.slurm or args.cluster):
                preflight.check_gpus_exist(words(args.gpus))
    except SarPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    gpus = words(args.gpus) or [None] * args.jobs  # None: a CPU slot
    # PROGRESS=1 / 0 forces the progress bars on / off (default: when stderr is a terminal)
    settings = Settings(verbose=args.verbose,
                        progress={"1": True, "0": False}.get(os.environ.get("PROGRESS", "")),
                        move_aside=args.move_aside)
    args.points = points if len(points) > 1 or args.sweep else None
    if args.dry_run:
        if args.points:
            print(f"sweep: {len(points)} points: {'; '.join(label for label, _ in points)}")
        try:
            print_jobs(bench, jobs, settings, gpus)
        except SarPromptError as exc:  # a run's config cannot be resolved
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.slurm or args.cluster:
            print(f"submitit ({args.cluster or 'slurm'}): {_slurm_options(args).parameters()}")
        return 0
    if "demo" in bench.datasets:
        from sar_prompt.orchestration.demo import prepare

        print(DEMO_NOTE)
        prepare(bench.data)
    if "world" in bench.datasets:
        from sar_prompt.world.dataset import prepare

        prepare(bench.data)
    try:
        if args.slurm or args.cluster:
            return submit(bench, jobs, settings, args)
        outcomes = run_local(jobs, settings, gpus)
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are kept; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except SarPromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return report(bench, args, outcomes)


def report(bench, args, outcomes, crashed=()):
    from sar_prompt.orchestration.runner import PROBLEMS, summary

    lines = summary(outcomes) if outcomes else []
    for label, error, log in crashed:
        lines.append(f"  CRASHED: {label}: {' '.join(error)} ({log})")
    print()
    print("\n".join(lines))
    if args.table != "none":
        if getattr(args, "points", None):
            from sar_prompt.orchestration.sweep import final_sweep_table

            try:
                final_sweep_table(bench, args.points)
            except SarPromptError as exc:  # the runs are kept; only the table was not written
                print(f"error: {exc}", file=sys.stderr)
                return 2
        elif final_table(bench, args) is False:
            return 2
    bad = any(o.status in PROBLEMS for o in outcomes) or crashed
    return 1 if bad else 0


def _slurm_options(args):
    from sar_prompt.orchestration.slurm import SlurmOptions

    return SlurmOptions(cluster=args.cluster or "slurm", time_min=args.time,
                        gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                        mem_gb=args.mem_gb, partition=args.partition, account=args.account,
                        qos=args.qos, constraint=args.constraint,
                        array_parallelism=args.array_parallelism,
                        name=f"{args.protocol}-{args.trainer}")


def submit(bench, jobs, settings, args):
    from sar_prompt.orchestration.slurm import submit as submit_jobs, wait
    from sar_prompt.orchestration.runner import folder_clash

    todo = [j for j in jobs if not all(read_run(r.output_dir).finished and folder_clash(r) is None
                                       for r in j.runs)]
    if not todo:
        print("every run is finished; nothing to submit.")
        return report(bench, args, [])
    folder = Path(args.slurm_folder or protocol_root(bench.output, bench.protocol, bench.source)
                  / "slurm")
    options = _slurm_options(args)
    settings.progress = False
    handles = submit_jobs(todo, settings, folder, options)
    ids = [h.job_id for h in handles]
    print(f"submitted {len(handles)} job(s) to {options.cluster} ({ids[0]}"
          + (f" ... {ids[-1]}" if len(ids) > 1 else "") + f"); their logs: {folder}")
    if not args.wait and options.cluster == "slurm":  # local / debug run here: always wait
        print(f"when they are done: sar-prompt results {bench.root} --trainer "
              f"{bench.trainer}")
        return 0
    outcomes, crashed = wait(handles, todo)
    return report(bench, args, outcomes, crashed)


if __name__ == "__main__":
    sys.exit(main())
