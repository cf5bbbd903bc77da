"""Mutation targets for scripts/mutation.sh, and mutmut's hook that applies them.

A target is a set of files, each mutated whole or only inside some functions, and each with
the fast tests that should kill its mutants. mutmut (2.x, which mutates the files in place,
so the editable install runs each mutant) imports this module as `mutmut_config`: its
`pre_mutation` hook skips mutants outside the target's functions and runs each file's own
tests. The target comes from $SAR_MUTATION_TARGET.

    python scripts/mutation/mutmut_config.py paths TARGET    # the files, comma-separated
    python scripts/mutation/mutmut_config.py runner TARGET   # the tests of all of them
    python scripts/mutation/mutmut_config.py count TARGET    # mutants per file
    python scripts/mutation/mutmut_config.py report bad_survived   # survivors, as lines
"""
import ast
import glob
import os
import shlex
import sys

PYTHON = os.environ.get("SAR_MUTATION_PYTHON", ".venv/bin/python")
PYTEST_ARGS = "-x -q -p no:cacheprovider --assert=plain"
# scripts/mutation.sh serves the runs from a fork server (pytest_server.py), which has the
# heavy imports done already; without one, each mutant's tests start a fresh interpreter
SERVER = os.environ.get("SAR_MUTATION_SERVER", "")
SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pytest_server.py")

# Fast tests for each file, the quickest to fail first (pytest stops at the first failure).
SAR_TRAINER_TESTS = ["tests/test_guards.py", "tests/test_step.py", "tests/test_trainers.py",
                     "tests/test_methods.py"]
DEEP_TESTS = ["tests/test_deep_methods.py", "-k", "not base2new_script"]
MODELING_TESTS = ["tests/test_text_encoder.py", "tests/test_text_pass.py",
                  "tests/test_prompt_learner.py", "tests/test_deep_prompts.py",
                  "tests/test_encoders.py", "tests/test_guards.py", "tests/test_step.py"]


def _first(*tests):
    """MODELING_TESTS with a file's closest tests moved to the front (they fail soonest)."""
    return [*tests, *(t for t in MODELING_TESTS if t not in tests)]


# the rest of sar_prompt/results/: the tables and the numbers in them
RESULTS_TESTS = ["tests/test_results.py", "tests/test_paper_tables.py",
                 "tests/test_sweep_table.py", "tests/test_guards.py", "-k",
                 "not test_guards or results or mean_row"]
TESTS = {
    "sar_prompt/sar.py": ["tests/test_sar.py", "tests/test_guards.py",
                          "tests/test_mutation_guards.py", "-k", "not seed_0"],
    "trainers/sar_variants.py": SAR_TRAINER_TESTS,
    "trainers/base.py": [*SAR_TRAINER_TESTS, "tests/test_precision.py", *DEEP_TESTS],
    "trainers/coop.py": ["tests/test_trainers.py", "tests/test_methods.py"],
    "trainers/kgcoop.py": ["tests/test_trainers.py", "tests/test_methods.py"],
    "trainers/cocoop.py": ["tests/test_methods.py"],
    "trainers/zsclip.py": ["tests/test_methods.py", *DEEP_TESTS],
    "trainers/maple.py": DEEP_TESTS,
    "trainers/promptsrc.py": DEEP_TESTS,
    "trainers/sar_gradient.py": ["tests/test_sar_gradient.py"],
    "sar_prompt/modeling/precision.py": ["tests/test_precision.py", "tests/test_sar_precision.py",
                                         "tests/test_fidelity_fp16.py"],
    "sar_prompt/results/diagnose.py": ["tests/test_diagnose.py", "tests/test_figures.py"],
    "sar_prompt/results/plots.py": ["tests/test_figures.py", "tests/test_results.py"],
    "sar_prompt/results/sweep_plot.py": ["tests/test_sweep_figure.py", "tests/test_figures.py"],
    "sar_prompt/results/paired.py": ["tests/test_paired.py"],
    "sar_prompt/modeling/gpa.py": ["tests/test_gpa.py"],
    "sar_prompt/modeling/tokens.py": ["tests/test_tokens.py", *MODELING_TESTS],
    "sar_prompt/modeling/backbone.py": ["tests/test_backbone.py", *MODELING_TESTS],
    "sar_prompt/modeling/image_encoder.py": _first("tests/test_encoders.py",
                                                   "tests/test_deep_prompts.py"),
    "sar_prompt/modeling/deep_prompt.py": _first("tests/test_deep_prompts.py",
                                                 "tests/test_encoders.py"),
    "sar_prompt/modeling/prompted_clip.py": _first("tests/test_prompted_clip.py",
                                                   "tests/test_prompt_learner.py",
                                                   "tests/test_deep_prompts.py"),
    "sar_prompt/modeling/context_prompt.py": _first("tests/test_prompt_learner.py",
                                                    "tests/test_text_pass.py"),
    "sar_prompt/modeling/bpe.py": ["tests/test_bpe.py", "tests/test_novel_lists.py",
                                   *MODELING_TESTS],
    "sar_prompt/modeling/transfer.py": ["tests/test_transfer.py", *MODELING_TESTS],
    "sar_prompt/modeling/torch_load.py": ["tests/test_checkpoint_safety.py", "tests/test_compat.py",
                                          "tests/test_input_guards.py"],
    "sar_prompt/results/tables_cli.py": ["tests/test_tables_cli.py", *RESULTS_TESTS],
    "sar_prompt/results/records.py": ["tests/test_records.py", *RESULTS_TESTS],
    "sar_prompt/results/seed_tables.py": ["tests/test_seed_tables.py", "tests/test_guards.py",
                                          "-k", "seed or mean_row"],
}

# file -> None (all of it) or the functions ("Class.method" or "function") to mutate
STEPS = {
    "trainers/base.py": ["StepOutput.total",
                         "PromptTuningTrainer.step", "PromptTuningTrainer.logged_this_step",
                         "PromptTuningTrainer.forward_backward"],
    "trainers/kgcoop.py": ["KgCoOp.step"],
    "trainers/promptsrc.py": ["logit_distillation", "PromptSRC.frozen_text_features",
                              "PromptSRC.step"],
    "trainers/sar_variants.py": ["SARMixin.sar_class_features", "SARMixin.novel_in_text_pass",
                        "SARMixin.step"],
}


def _results_files():
    return sorted(p for p in glob.glob("sar_prompt/results/*.py")
                  if not p.endswith(("__init__.py", "__main__.py")))


def _whole(paths):
    return {p: None for p in paths}


def targets():
    trainers = sorted(p for p in glob.glob("trainers/*.py") if not p.endswith("__init__.py"))
    modeling = sorted(p for p in glob.glob("sar_prompt/modeling/*.py")
                      if not p.endswith("__init__.py"))
    found = {
        "sar": _whole(["sar_prompt/sar.py", "trainers/sar_variants.py"]),   # the SAR component
        "steps": STEPS,                                            # the trainers' steps
        "trainers": _whole(trainers),
        "modeling": _whole(modeling),
        "results": _whole(_results_files()),
    }
    found["core"] = {**found["sar"], **{p: None if p in found["sar"] else f
                                        for p, f in STEPS.items()}}
    found["all"] = {**found["sar"], **found["trainers"], **found["modeling"], **found["results"]}
    return found


def target(name):
    """A target by name, or one file (mutated whole)."""
    known = targets()
    if name in known:
        return known[name]
    path = os.path.normpath(name)
    if os.path.isfile(path) and path.endswith(".py"):
        return {path: None}
    raise SystemExit(f"unknown mutation target {name!r}: use one of {', '.join(known)}, "
                     "or the path of a .py file under sar_prompt/ or trainers/")


def tests_for(path):
    if path in TESTS:
        return TESTS[path]
    if path.startswith("sar_prompt/modeling/"):
        return MODELING_TESTS
    if path.startswith("sar_prompt/results/"):
        return RESULTS_TESTS
    raise SystemExit(f"no tests are named for {path} in {__file__} (TESTS)")


def command(tests):
    # Any failure of pytest kills the mutant, also an error at import or collection
    # (mutmut 2 counts only exit status 1 as failed tests).
    pytest = (f"{PYTHON} {shlex.quote(SERVER_SCRIPT)} run {shlex.quote(SERVER)}" if SERVER
              else f"{PYTHON} -m pytest")
    return f"bash -c {shlex.quote(f'{pytest} {PYTEST_ARGS} {shlex.join(tests)} || exit 1')}"


def runner(name):
    """One pytest run over the tests of every file of the target (mutmut's baseline)."""
    files = []
    for path in target(name):
        tests = tests_for(path)
        if "-k" in tests:  # several -k selections do not combine: run the whole files
            tests = tests[:tests.index("-k")]
        files += [t for t in tests if t not in files]
    return command(files)


# Text argparse shows people (--help, usage lines): a mutant there changes nothing a test
# could check short of comparing the text with itself, so such mutants are skipped (and
# left out of the report).
PEOPLES_TEXT = ("help", "description", "epilog", "metavar", "prog", "usage")
_PLAIN = {}


def _without_peoples_text(source):
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in PEOPLES_TEXT:
            node.value = ast.Constant("")
    return ast.dump(tree)


def only_peoples_text(path, source, mutation_id):
    """Whether mutant `mutation_id` of `source` changes only text argparse shows people."""
    from mutmut import Context, mutate

    mutated, _ = mutate(Context(source=source, filename=path, mutation_id=mutation_id))
    if mutated == source:
        return False
    if (path, source) not in _PLAIN:
        _PLAIN[(path, source)] = _without_peoples_text(source)
    try:
        return _without_peoples_text(mutated) == _PLAIN[(path, source)]
    except SyntaxError:
        return False


_SPANS = {}


def function_lines(path, names):
    """0-based line numbers of the bodies of `names` in `path`."""
    key = (path, tuple(names))
    if key not in _SPANS:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        lines, seen = set(), set()
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else [node]
            prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
            for member in members:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qualified = prefix + member.name
                    if qualified in names:
                        seen.add(qualified)
                        lines.update(range(member.lineno - 1, member.end_lineno))
        missing = set(names) - seen
        if missing:
            raise SystemExit(f"{path} has no {', '.join(sorted(missing))}: update STEPS in "
                             f"{__file__}")
        _SPANS[key] = lines
    return _SPANS[key]


def pre_mutation(context):
    """mutmut's hook: mutate only the target's functions, and run the file's own tests."""
    spec = target(os.environ.get("SAR_MUTATION_TARGET", "all"))
    path = os.path.normpath(context.filename)
    if path not in spec:
        context.skip = True
        return
    functions = spec[path]
    # SAR_MUTATION_FROM_LINE=N, SAR_MUTATION_TO_LINE=M: only the mutants on lines N to M
    # (1-based, both included), to go on reading a file's survivors from where an earlier
    # run's reading stopped, or to test again only the lines rewritten since
    line = context.current_line_index + 1
    if not (int(os.environ.get("SAR_MUTATION_FROM_LINE", "1")) <= line
            <= int(os.environ.get("SAR_MUTATION_TO_LINE", str(sys.maxsize)))):
        context.skip = True
        return
    if functions is not None and context.current_line_index not in function_lines(path,
                                                                                  functions):
        context.skip = True
        return
    with open(path, encoding="utf-8") as f:
        source = f.read()
    if only_peoples_text(path, source, context.mutation_id):
        context.skip = True
        return
    context.config.test_command = command(tests_for(path))


def count(name):
    """Mutants mutmut makes in each file of the target (inside its functions, if named)."""
    from mutmut import ALL, Context, mutate

    for path, functions in target(name).items():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        context = Context(source=source, filename=path, mutation_id=ALL)
        mutate(context)
        ids = context.performed_mutation_ids
        if functions is not None:
            ids = [i for i in ids if i.line_number in function_lines(path, functions)]
        print(f"{len(ids):5d}  {path}" + (f" ({', '.join(functions)})" if functions else ""))


def report(status="bad_survived"):
    """Mutants of a status in .mutmut-cache, each as its changed line. Read-only, so safe
    while a run is going on (`mutmut show` is not: it rewrites the cache's line numbers from
    the file on disk, which may hold a mutant then); sources are read from git's HEAD."""
    import sqlite3
    import subprocess

    from mutmut import Context, RelativeMutationID, mutate

    rows = sqlite3.connect(".mutmut-cache").execute(
        "SELECT m.id, f.filename, l.line, l.line_number, m.\"index\" FROM mutant m "
        "JOIN line l ON m.line = l.id JOIN sourcefile f ON l.sourcefile = f.id "
        "WHERE m.status = ? ORDER BY m.id", (status,)).fetchall()
    for pk, path, line, number, index in rows:
        source = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True,
                                text=True, check=True).stdout
        mutation_id = RelativeMutationID(line=line, index=index, line_number=number)
        if only_peoples_text(path, source, mutation_id):  # from a run before they were skipped
            continue
        mutated, _ = mutate(Context(source=source, filename=path, mutation_id=mutation_id))
        # the line that changed: in an expression over several lines, mutmut's line number
        # may be that of another of its lines
        pairs = list(zip(source.split("\n"), mutated.split("\n")))
        changed = next((i for i, (a, b) in enumerate(pairs) if a != b), number)
        old, new = pairs[changed]
        print(f"{pk:4d} {path}:{changed + 1}\n       - {old.strip()}\n       + {new.strip()}")


if __name__ == "__main__":
    what, name = sys.argv[1], sys.argv[2]
    if what == "paths":
        print(",".join(target(name)))
    elif what == "runner":
        print(runner(name))
    elif what == "count":
        count(name)
    elif what == "report":  # here the second argument is a status
        report(name)
    else:
        raise SystemExit(f"unknown command {what!r}: paths, runner or count")
