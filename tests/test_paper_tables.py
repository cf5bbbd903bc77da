"""The tables a paper prints, on synthetic run folders: every XSAR - X pair kept, the
LaTeX compiled with pdflatex (where it is installed) into one page-width table, the
--allow-partial rule, published averages never beside a subset's, relabelling and bold
best values."""
import copy
import json
import math
import re
import shutil
import subprocess

import pytest
from pytest import approx

from sar_prompt.catalog import BENCHMARK
from sar_prompt.errors import ConfigError
from sar_prompt.results import (build_table, delta_pairs, main, published, to_latex,
                                to_markdown, trainers_on_disk)
from sar_prompt.results.aggregate import seed_averages
from test_results import fp, write, write_grid
from test_runner_identity import CONFIG, stub_bench  # noqa: F401  (a fixture)

def _tex():
    """pdflatex, when it and the packages the tests use are installed."""
    pdflatex, kpsewhich = shutil.which("pdflatex"), shutil.which("kpsewhich")
    if not (pdflatex and kpsewhich):
        return None
    found = subprocess.run([kpsewhich, "booktabs.sty", "graphicx.sty", "geometry.sty"],
                           capture_output=True, text=True).stdout.split()
    return pdflatex if len(found) == 3 else None


PDFLATEX = _tex()
NO_TEX = ("pdflatex (with booktabs, graphicx, geometry) is not installed: the LaTeX is "
          "checked only for its text here (.ci/run installs texlive-latex-base and "
          "texlive-latex-recommended when it can; apt-get install them to compile it)")


def needs_tex():
    if PDFLATEX is None:
        pytest.skip(NO_TEX)
# a two-column paper's page (CVPR's: 6.875 x 8.875 in of text)
PREAMBLE = ("\\documentclass[twocolumn,10pt]{article}\n"
            "\\usepackage[letterpaper,textwidth=6.875in,textheight=8.875in]{geometry}\n"
            "\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n")
ELEVEN = [d.key for d in BENCHMARK]
FIVE = {"CoOp": (82.0, 63.0), "CoOpSAR": (81.5, 66.0), "KgCoOp": (80.5, 73.0),
        "KgCoOpSAR": (80.0, 74.5), "CoCoOp": (80.0, 71.0)}


def write_eleven(root, trainers):
    """Each trainer's base / new on the 11 benchmark datasets, + the seed, +- a little per
    dataset."""
    for i, dataset in enumerate(ELEVEN):
        for trainer, (b, n) in trainers.items():
            for seed in (1, 2, 3):
                write(root, "train_base", seed, b + seed + i % 3, dataset, trainer)
                write(root, "test_new", seed, n + seed - i % 4, dataset, trainer)


def write_zero_shot(root, datasets, base=69.0, new=74.0):
    for i, dataset in enumerate(datasets):
        for sub, acc in (("train_base", base + i), ("test_new", new + i)):
            write(root, sub, 1, acc, dataset, "ZeroshotCLIP", config="vit_b16")


def compile_latex(folder, tex, name="paper"):
    """pdflatex a two-column paper holding `tex`; (log, natural width and height of its
    tabular, the width it is printed at, text width, text height) in pt."""
    tabular = tex[tex.index("\\begin{tabular}"):tex.index("\\end{tabular}") + 13]
    printed = tex[tex.index("\\resizebox"):tex.index("\\end{tabular}") + 14]
    measure = ("{\\footnotesize\\setlength{\\tabcolsep}{3.5pt}\\setbox0\\hbox{" + tabular
               + "}\\setbox2\\hbox{" + printed + "}\\typeout{SIZE \\the\\wd0\\space"
               "\\the\\dimexpr\\ht0+\\dp0\\relax\\space\\the\\wd2\\space\\the\\textwidth"
               "\\space\\the\\textheight}}\n")
    (folder / f"{name}.tex").write_text(PREAMBLE + measure + tex + "Text.\n\\end{document}\n")
    done = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error",
                           f"{name}.tex"], cwd=folder, capture_output=True, text=True,
                          timeout=180)
    log = (folder / f"{name}.log").read_text(errors="replace")
    assert done.returncode == 0, log[-3000:]
    sizes = re.search(r"SIZE " + r"\s*".join([r"([\d.]+)pt"] * 5), log)
    return (log, *[float(x) for x in sizes.groups()])


def latex_of(capsys, *args):
    assert main([*args, "--format", "latex"]) == 0
    return capsys.readouterr().out


# -- the pairs a SAR paper exists for ---------------------------------------------------------
def test_every_sar_pair_stays_when_zero_shot_clip_is_compared_too(tmp_path, capsys):
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0),
                          "KgCoOp": (79.0, 70.0), "KgCoOpSAR": (78.0, 73.0)})
    write_zero_shot(tmp_path, ("dtd", "eurosat"))
    trainers = ["ZeroshotCLIP", "CoOp", "CoOpSAR", "KgCoOp", "KgCoOpSAR"]
    sar_pairs = [("CoOpSAR", "CoOp"), ("KgCoOpSAR", "KgCoOp")]
    for zero_shot in (False, True):
        table = build_table(tmp_path, "base2new", trainers, zero_shot_deltas=zero_shot)
        assert table.pairs[:2] == sar_pairs
        zs_pairs = [(t, "ZeroshotCLIP") for t in trainers[1:]]
        assert table.pairs[2:] == (zs_pairs if zero_shot else [])
        md = to_markdown(table)
        for t, b in sar_pairs:
            row = next(line for line in md.splitlines() if line.startswith(f"| *Δ {t} − {b}* |"))
            assert row.split("|")[2].strip() not in ("", "-")  # a number: ΔBase included
        assert ("Δ CoOp − ZeroshotCLIP" in md) == zero_shot  # only when asked for
    # the command line: the same rows, ZeroshotCLIP's deltas with --zero-shot-deltas
    for flags, expected in (([], 2), (["--zero-shot-deltas"], 6)):
        assert main([str(tmp_path), "--compare", *trainers, "--format", "markdown",
                     *flags]) == 0
        md = capsys.readouterr().out
        assert md.count("| *Δ ") == expected and "| *Δ CoOpSAR − CoOp* |" in md


def test_delta_pairs_for_every_mix_of_trainers():
    zs = "ZeroshotCLIP"
    # each XSAR with its X; zero-shot pairs only when asked, after them
    assert delta_pairs([zs, "CoOp", "CoOpSAR"]) == [("CoOpSAR", "CoOp")]
    assert delta_pairs([zs, "CoOp", "CoOpSAR"], zero_shot=True) == [
        ("CoOpSAR", "CoOp"), ("CoOp", zs), ("CoOpSAR", zs)]
    # no XSAR - X pair: every trainer against zero-shot CLIP when it is there, else the first;
    # a SAR variant whose method is absent is one of these (not paired with the absent method)
    assert delta_pairs(["CoOp", zs, "KgCoOp"]) == [("CoOp", zs), ("KgCoOp", zs)]
    assert delta_pairs(["CoOp", "MaPLeSAR", "KgCoOp"]) == [("MaPLeSAR", "CoOp"),
                                                           ("KgCoOp", "CoOp")]
    assert delta_pairs(["CoOp"]) == [] and delta_pairs([zs]) == [] and delta_pairs([]) == []


def test_average_rows_of_trainers_with_results_on_fewer_datasets(tmp_path):
    """--allow-partial: each average row is over the datasets that trainer has (its n says
    how many, the HM row's too); a trainer with no complete cell has no average row; the
    per-seed averages behind a delta's std are over the trainer's own datasets."""
    for dataset, offset in (("dtd", 0), ("eurosat", 10)):
        for seed in (1, 2):
            write(tmp_path, "train_base", seed, 70 + offset + seed, dataset, "CoOp")
            write(tmp_path, "test_new", seed, 60 + offset + seed, dataset, "CoOp")
    for seed in (1, 2):
        write(tmp_path, "train_base", seed, 80 + seed, "dtd", "CoOpSAR")
        write(tmp_path, "test_new", seed, 64 + 2 * seed, "dtd", "CoOpSAR")
    write(tmp_path, "train_base", 1, 50.0, "dtd", "KgCoOp")  # no new result: no complete cell
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR", "KgCoOp"],
                        datasets=["dtd", "eurosat"], allow_partial=True)
    rows = {(e.trainer, e.metric): (e.mean, e.n) for e in table.averages}
    assert rows == {
        ("CoOp", "base"): (76.5, 2), ("CoOp", "new"): (66.5, 2),
        ("CoOp", "hm"): (pytest.approx(2 * 76.5 * 66.5 / 143), 2),
        ("CoOpSAR", "base"): (81.5, 1), ("CoOpSAR", "new"): (67.0, 1),
        ("CoOpSAR", "hm"): (pytest.approx(2 * 81.5 * 67.0 / 148.5), 1)}
    per_seed = seed_averages(table, "CoOpSAR", 16)  # dtd's seeds alone
    assert per_seed["base"] == {1: 81.0, 2: 82.0} and per_seed["new"] == {1: 66.0, 2: 68.0}
    assert per_seed["hm"][1] == pytest.approx(2 * 81 * 66 / 147)
    assert seed_averages(table, "CoOp", 16)["base"] == {1: 76.0, 2: 77.0}
    # averages over different datasets: no delta on the average row, and a warning saying why
    assert {e.dataset for e in table.deltas} == {"dtd"}
    assert table.warnings == ["the averages of CoOp and CoOpSAR cover different datasets; "
                              "no delta for the average row."]


def test_the_average_delta_needs_both_averages_over_the_same_datasets(tmp_path):
    """Zero-shot CLIP on dtd alone, listed between CoOp and CoOpSAR (both on dtd and eurosat),
    takes nothing from their average delta; a baseline with no average row gets no
    warning about it (there is nothing to compare)."""
    for dataset in ("dtd", "eurosat"):
        for seed in (1, 2):
            for trainer, base in (("CoOp", 80.0), ("CoOpSAR", 82.0)):
                write(tmp_path, "train_base", seed, base + seed, dataset, trainer)
                write(tmp_path, "test_new", seed, 70.0, dataset, trainer)
    write(tmp_path, "train_base", 1, 60.0, "dtd", "ZeroshotCLIP")
    write(tmp_path, "test_new", 1, 60.0, "dtd", "ZeroshotCLIP")
    table = build_table(tmp_path, "base2new", ["CoOp", "ZeroshotCLIP", "CoOpSAR"],
                        allow_partial=True)
    average = [e for e in table.deltas if e.dataset == "average" and e.metric == "base"]
    assert [(e.trainer, e.mean, e.std) for e in average] == [("CoOpSAR - CoOp", 2.0, 0.0)]
    assert table.warnings == []
    write(tmp_path, "train_base", 1, 50.0, "dtd", "KgCoOp")  # no complete cell anywhere
    for seed in (1, 2):
        write(tmp_path, "train_base", seed, 90.0, "dtd", "KgCoOpSAR")
        write(tmp_path, "test_new", seed, 70.0, "dtd", "KgCoOpSAR")
    table = build_table(tmp_path, "base2new", ["KgCoOp", "KgCoOpSAR"], datasets=["dtd"],
                        allow_partial=True)
    assert table.pairs == [("KgCoOpSAR", "KgCoOp")] and table.warnings == []


def test_delta_rows_are_paired_seed_by_seed_on_every_row(tmp_path):
    """A delta cell's std is that of its per-seed differences: a dataset's own seeds on a
    dataset's row, the seeds' averages over the datasets on the average row, and a zero-shot
    baseline's single evaluation standing for every seed."""
    runs = {("CoOp", "dtd"): (80, 82, 84), ("CoOp", "eurosat"): (90, 82, 84),
            ("CoOpSAR", "dtd"): (81, 81, 86), ("CoOpSAR", "eurosat"): (91, 85, 86)}
    for (trainer, dataset), bases in runs.items():
        for seed, base in enumerate(bases, 1):
            write(tmp_path, "train_base", seed, float(base), dataset, trainer)
            write(tmp_path, "test_new", seed, 70.0, dataset, trainer)
    for dataset, base in (("dtd", 70.0), ("eurosat", 72.0)):
        write(tmp_path, "train_base", 1, base, dataset, "ZeroshotCLIP")
        write(tmp_path, "test_new", 1, 75.0, dataset, "ZeroshotCLIP")
    table = build_table(tmp_path, "base2new", ["ZeroshotCLIP", "CoOp", "CoOpSAR"],
                        zero_shot_deltas=True)
    got = {(e.trainer, e.dataset): (e.mean, e.std, e.n, e.values) for e in table.deltas
           if e.metric == "base"}
    sqrt = math.sqrt
    assert got["CoOpSAR - CoOp", "dtd"] == (approx(2 / 3), approx(sqrt(42 / 27)), 3,
                                             {1: 1.0, 2: -1.0, 3: 2.0})
    assert got["CoOpSAR - CoOp", "eurosat"] == (approx(2.0), approx(sqrt(2 / 3)), 3,
                                                 {1: 1.0, 2: 3.0, 3: 2.0})
    # the average row: per seed, the difference of the averages over dtd and eurosat
    assert got["CoOpSAR - CoOp", "average"] == (approx(4 / 3), approx(sqrt(6 / 27)), 3,
                                                 {1: 1.0, 2: 1.0, 3: 2.0})
    # zero-shot CLIP's one evaluation (dtd 70, eurosat 72: average 71) for every seed
    assert got["CoOp - ZeroshotCLIP", "dtd"] == (12.0, approx(sqrt(8 / 3)), 3,
                                                 {1: 10.0, 2: 12.0, 3: 14.0})
    assert got["CoOp - ZeroshotCLIP", "average"][2:] == (3, {1: 14.0, 2: 11.0, 3: 13.0})
    news = {e.values[1] for e in table.deltas if e.metric == "new" and e.dataset == "dtd"}
    assert news == {0.0, -5.0}  # CoOpSAR - CoOp, and each method - ZeroshotCLIP


def test_a_trained_baseline_with_one_seed_is_paired_on_that_seed_only(tmp_path):
    write(tmp_path, "train_base", 1, 80.0, "dtd", "CoOp")
    write(tmp_path, "test_new", 1, 70.0, "dtd", "CoOp")
    for seed in (1, 2, 3):
        write(tmp_path, "train_base", seed, 80.0 + seed, "dtd", "CoOpSAR")
        write(tmp_path, "test_new", seed, 70.0, "dtd", "CoOpSAR")
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], seeds=[1, 2, 3],
                        allow_partial=True)
    (delta,) = [e for e in table.deltas if e.dataset == "dtd" and e.metric == "base"]
    assert (delta.n, delta.std, delta.values) == (1, None, {1: 1.0})
    # without --allow-partial the missing seeds are problems, and nothing is averaged
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], seeds=[1, 2, 3])
    assert table.problems and table.averages == [] and table.deltas == []


def test_no_runs_of_the_trainers_says_what_is_there_or_what_was_expected(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_table(tmp_path, "xd", ["CoOp", "CoOpSAR"])
    assert str(error.value) == (
        f"no runs of CoOp, CoOpSAR under {tmp_path} for the xd protocol (no <phase>/<dataset>/"
        "shots_<K>/<trainer>/<config>/seed<N> folder there; expected datasets such as "
        "caltech101, oxford_pets, stanford_cars, ...).")
    write(tmp_path, "train_base", 1, 80.0, "eurosat", "KgCoOp")
    write(tmp_path, "train_base", 1, 80.0, "dtd", "CoOp")
    with pytest.raises(ConfigError) as error:
        build_table(tmp_path, "base2new", ["MaPLe", "CoOpSAR"])
    assert str(error.value) == (f"no runs of MaPLe, CoOpSAR under {tmp_path} for the base2new "
                                "protocol (runs there: CoOp, KgCoOp on dtd, eurosat).")


def test_the_shots_of_a_table_default_to_those_on_disk(tmp_path):
    """Few-shot: every shots on disk; base-to-new: 16 when there, else the most common."""
    for shots, seeds in ((1, [1]), (4, [1, 2])):
        for seed in seeds:
            write(tmp_path / "fewshot", "train_all", seed, 50.0, "dtd", "CoOp", shots=shots)
            write(tmp_path / "base2new", "train_base", seed, 80.0, "dtd", "CoOp", shots=shots)
            write(tmp_path / "base2new", "test_new", seed, 70.0, "dtd", "CoOp", shots=shots)
    assert build_table(tmp_path / "fewshot", "fewshot", ["CoOp"]).shots == [1, 4]
    assert build_table(tmp_path / "base2new", "base2new", ["CoOp"]).shots == [4]


def test_a_zero_shot_table_takes_the_first_seed_on_disk(tmp_path):
    """Zero-shot CLIP is evaluated once: a table of it alone takes the first seed folder
    there (seeds 2 and 3 on eurosat: 2), and names that seed where nothing is on disk."""
    for seed in (2, 3):
        write(tmp_path, "train_base", seed, 70.0 + seed, "eurosat", "ZeroshotCLIP")
        write(tmp_path, "test_new", seed, 75.0, "eurosat", "ZeroshotCLIP")
    table = build_table(tmp_path, "base2new", ["ZeroshotCLIP"], datasets=["dtd", "eurosat"])
    assert table.seeds == [2] and table.source == ""
    assert [p["path"].rsplit("/", 2)[1:] for p in table.problems] == [
        ["vit_b16", "seed2"], ["vit_b16", "seed2"]]  # dtd's base and new
    assert [p["run"] for p in table.problems] == ["dtd ZeroshotCLIP zero-shot base",
                                                  "dtd ZeroshotCLIP zero-shot new"]
    assert {e.fingerprint for e in table.entries} == {""}  # no fingerprint, no group
    eurosat = {e.metric: e.values for e in table.entries if e.dataset == "eurosat"}
    assert eurosat["base"] == {2: 72.0} and eurosat["new"] == {2: 75.0}


def test_a_table_over_several_shots_names_each_cells_config_by_dataset_and_shots(tmp_path):
    for shots in (1, 4):
        write(tmp_path, "train_all", 1, 50.0, "dtd", "CoOp", shots=shots)
    table = build_table(tmp_path, "fewshot", ["CoOp"])
    assert table.configs == {"CoOp": {"dtd@1": "cfg", "dtd@4": "cfg"}}
    assert build_table(tmp_path, "fewshot", ["CoOp"], shots=[4]).configs == {
        "CoOp": {"dtd": "cfg"}}
    missing = build_table(tmp_path, "fewshot", ["CoOp"], seeds=[1, 2]).problems
    assert [p["run"] for p in missing] == ["dtd CoOp 1-shot seed 2 accuracy",
                                           "dtd CoOp 4-shot seed 2 accuracy"]


def test_a_result_of_another_seed_or_shots_is_never_counted(tmp_path):
    """results.json must agree with its folder (a copied file is another run's result)."""
    write(tmp_path, "train_all", 1, 50.0, "dtd", "CoOp", shots=4)
    moved = write(tmp_path, "train_all", 2, 60.0, "dtd", "CoOp", shots=4)
    (moved / "results.json").write_text(json.dumps({"accuracy": 60.0, "seed": 3}))
    other = write(tmp_path, "train_all", 3, 70.0, "dtd", "CoOp", shots=4)
    (other / "results.json").write_text(json.dumps({"accuracy": 70.0, "seed": 3,
                                                    "num_shots": 16}))
    table = build_table(tmp_path, "fewshot", ["CoOp"], seeds=[1, 2, 3], allow_partial=True)
    assert [e.values for e in table.entries] == [{1: 50.0}]
    assert [p["status"] for p in table.problems] == ["broken", "broken"]
    assert "says seed 3, but its run folder is for 2" in table.problems[0]["detail"]
    assert "says num_shots 16, but its run folder is for 4" in table.problems[1]["detail"]


def test_a_fingerprint_naming_a_key_twice_is_a_problem_and_never_averaged(tmp_path):
    for seed in (1, 2):
        write(tmp_path, "train_all", seed, 50.0 + seed, "dtd", "CoOp", shots=4)
    refused = write(tmp_path, "train_all", 3, 99.0, "dtd", "CoOp", shots=4)
    (refused / "fingerprint.json").write_text('{"schema": 1, "schema": 2}')
    table = build_table(tmp_path, "fewshot", ["CoOp"], seeds=[3, 1, 2], allow_partial=True)
    assert [e.values for e in table.entries] == [{1: 51.0, 2: 52.0}]  # the seeds after it too
    (problem,) = table.problems
    detail = problem.pop("detail")
    assert problem == {"run": "dtd CoOp 4-shot seed 3 accuracy", "status": "broken",
                       "path": str(refused), "log": None, "on_disk": ""}
    assert "fingerprint.json" in detail and "schema" in detail
    # base-to-new: the refused base run does not hide a problem of the same seed's new run
    refused = write(tmp_path, "train_base", 1, 80.0, "dtd", "CoOp")
    (refused / "fingerprint.json").write_text('{"schema": 1, "schema": 2}')
    table = build_table(tmp_path, "base2new", ["CoOp"], seeds=[1], allow_partial=True)
    assert [(p["run"], p["status"]) for p in table.problems] == [
        ("dtd CoOp seed 1 base", "broken"), ("dtd CoOp seed 1 new", "absent")]


def test_fingerprint_warnings_of_every_cell_are_kept_and_runs_without_one_group_apart(
        tmp_path):
    for seed, torch in ((1, "2.1"), (2, "2.2")):  # dtd's seeds ran with two torch versions
        for phase, acc in (("train_base", 80.0), ("test_new", 70.0)):
            write(tmp_path, phase, seed, acc, "dtd", "CoOp", fp=fp(torch=torch))
            write(tmp_path, phase, seed, acc, "eurosat", "CoOp")  # no fingerprint
    table = build_table(tmp_path, "base2new", ["CoOp"])
    assert [w.split(":")[0] for w in table.warnings] == ["dtd / CoOp"]
    assert "differ(s) in packages.torch" in table.warnings[0]
    write(tmp_path, "train_base", 3, 80.0, "dtd", "CoOp")  # a seed without fingerprints
    write(tmp_path, "test_new", 3, 70.0, "dtd", "CoOp")
    table = build_table(tmp_path, "base2new", ["CoOp"], seeds=[1, 2, 3])
    assert ("dtd / CoOp: 2 run(s) have no fingerprint.json (written before fingerprints "
            "existed?): dtd CoOp seed 3 base, dtd CoOp seed 3 new") in table.warnings
    grouped = build_table(tmp_path, "base2new", ["CoOp"], group_by_fingerprint=True,
                          seeds=[1, 2])
    groups = {(e.dataset, e.fingerprint) for e in grouped.entries}
    assert len(groups) == 3 and ("eurosat", "") in groups
    assert {g for d, g in groups if d == "dtd"}.isdisjoint({""})


def test_a_fingerprint_warning_names_six_differences_then_counts_the_rest(tmp_path):
    def differing(count):
        """The common fingerprint with its first `count` of 8 keys changed."""
        changed = copy.deepcopy(common)
        edits = [("config", "OPTIM", "LR", 0.1), ("data", "split_sha256", "t"),
                 ("device", "name", "CPU"), ("device", "type", "cpu"), ("git", "dirty", True),
                 ("git", "revision", "r2"), ("packages", "torch", "1.0"), ("precision", "fp32")]
        for *path, value in edits[:count]:
            target = changed
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return changed

    common = fp()  # seeds 1, 2 and 7: the reference (the most common fingerprint)
    runs = {3: differing(8), 4: differing(7), 5: differing(8), 6: differing(6)}
    for seed in (1, 2, 7):
        runs[seed] = common
    for seed, fingerprint in runs.items():
        write(tmp_path, "train_all", seed, 50.0, "dtd", "CoOp", fp=fingerprint, shots=4)
    table = build_table(tmp_path, "fewshot", ["CoOp"], seeds=[3, 4, 5, 6, 1, 2, 7])
    six = ("config.OPTIM.LR, data.split_sha256, device.name, device.type, git.dirty, "
           "git.revision")
    assert table.warnings == [
        "dtd / CoOp: the runs averaged have 4 different fingerprints: "
        f"dtd CoOp 4-shot seed 3 accuracy, dtd CoOp 4-shot seed 5 accuracy differ(s) in {six} "
        f"(+2 more); dtd CoOp 4-shot seed 4 accuracy differ(s) in {six} (+1 more); "
        f"dtd CoOp 4-shot seed 6 accuracy differ(s) in {six}. Compare their "
        "fingerprint.json, or see each group with --group-by-fingerprint."]


def test_runs_of_two_configs_and_no_default_are_refused_naming_them(tmp_path):
    for config in ("lr_a", "lr_b"):
        write(tmp_path, "train_base", 1, 80.0, "dtd", "CoOp", config=config)
        write(tmp_path, "test_new", 1, 70.0, "dtd", "CoOp", config=config)
    with pytest.raises(ConfigError) as error:
        build_table(tmp_path, "base2new", ["CoOp"])
    folder = tmp_path / "train_base" / "dtd" / "shots_16" / "CoOp"
    assert str(error.value) == (f"{folder} holds runs of several configs (lr_a, lr_b); choose "
                                "one with --config.")
    assert build_table(tmp_path, "base2new", ["CoOp"], config="lr_b").configs == {
        "CoOp": {"dtd": "lr_b"}}



def test_the_trainers_on_disk_are_those_with_a_phase_of_the_protocol(tmp_path):
    for phase, trainer in (("train_base", "KgCoOp"), ("test_new", "CoOp"),
                           ("train_all", "MaPLe"), ("test_all", "ZeroshotCLIP")):
        write(tmp_path, phase, 1, 50.0, "dtd", trainer)
    assert trainers_on_disk(tmp_path, "base2new") == ["CoOp", "KgCoOp"]
    assert trainers_on_disk(tmp_path, "fewshot") == ["MaPLe"]
    assert trainers_on_disk(tmp_path, "xd") == ["MaPLe", "ZeroshotCLIP"]


def test_a_method_without_a_default_config_needs_runs_or_config(tmp_path):
    write(tmp_path, "train_base", 1, 80.0, "dtd", "MyPrompts", config="mine")
    write(tmp_path, "test_new", 1, 70.0, "dtd", "MyPrompts", config="mine")
    assert build_table(tmp_path, "base2new", ["MyPrompts"]).configs == {
        "MyPrompts": {"dtd": "mine"}}
    with pytest.raises(ConfigError) as error:
        build_table(tmp_path, "base2new", ["MyPrompts"], datasets=["dtd", "eurosat"])
    folder = tmp_path / "train_base" / "eurosat" / "shots_16" / "MyPrompts"
    assert str(error.value) == (f"MyPrompts has no default config and no runs in {folder}; "
                                "give --config.")


def test_the_plain_config_of_a_sweep_is_the_default_but_not_beside_another_sweep(tmp_path):
    def runs(root, config):
        write(root, "train_base", 1, 80.0, "dtd", "CoOp", config=config)
        write(root, "test_new", 1, 70.0, "dtd", "CoOp", config=config)

    only_sweep = tmp_path / "a"
    runs(only_sweep, "lr_a__OPTIM.LR=0.1")  # one folder only, a sweep point: it is the table
    assert build_table(only_sweep, "base2new", ["CoOp"]).configs == {
        "CoOp": {"dtd": "lr_a__OPTIM.LR=0.1"}}
    sweep = tmp_path / "b"
    for config in ("lr_a", "lr_a__OPTIM.LR=0.1"):  # a sweep beside its plain config
        runs(sweep, config)
    assert build_table(sweep, "base2new", ["CoOp"]).configs == {"CoOp": {"dtd": "lr_a"}}
    mixed = tmp_path / "c"
    for config in ("lr_a", "lr_b__OPTIM.LR=0.1"):  # a plain config and another's sweep
        runs(mixed, config)
    with pytest.raises(Exception, match="holds runs of several configs"):
        build_table(mixed, "base2new", ["CoOp"])


def test_a_published_average_is_compared_only_with_an_eleven_dataset_average(tmp_path):
    path = tmp_path / "published.csv"
    header = "method,trainer,dataset,base,new,hm,source,note\n"
    path.write_text(header + "CoOp,CoOp,dtd,80.0,60.0,,https://example.org/paper,\n")
    write_grid(tmp_path / "subset", {"CoOp": (80.0, 60.0)}, datasets=("dtd",), seeds=(1,))
    subset = build_table(tmp_path / "subset", "base2new", ["CoOp"])
    assert published.withheld_averages(subset, published.load(path)) == []  # none published
    path.write_text(header + "CoOp,CoOp,average,50.0,,,https://example.org/paper,\n"
                    "CoOp,CoOp,dtd,80.0,60.0,,https://example.org/paper,\n")
    rows = published.load(path)
    assert published.withheld_averages(subset, rows) == ["CoOp"]
    assert [(e.dataset, e.metric) for e in published.entries(subset, rows)] == [
        ("dtd", "base"), ("dtd", "new")]  # the average is not beside a subset's
    write_grid(tmp_path / "all", {"CoOp": (60.0, 40.0)}, datasets=[d.key for d in BENCHMARK],
               seeds=(1,))
    full = build_table(tmp_path / "all", "base2new", ["CoOp"])
    assert published.withheld_averages(full, rows) == []
    found, notes, compared = published.flags(full, published.entries(full, rows), 2.0)
    # the 11-dataset average base (60 + 1 + 2 * i averaged over i = 0..10: 71) vs 50
    assert ("CoOp", "average", "base", 71.0, 50.0) in found and not notes

    # a cell with no complete seed (eurosat: base only) is not compared, dtd's two are
    partial = tmp_path / "partial"
    write_grid(partial, {"CoOp": (60.0, 40.0)}, datasets=("dtd",), seeds=(1,))
    write(partial, "train_base", 1, 60.0, "eurosat", "CoOp")
    path.write_text(header + "CoOp,CoOp,eurosat,60.0,40.0,,https://example.org/paper,\n"
                    "CoOp,CoOp,dtd,63.0,41.0,,https://example.org/paper,\n")
    table = build_table(partial, "base2new", ["CoOp"], allow_partial=True)
    rows = published.load(path)
    # dtd base: 61 reproduced, 63 published: exactly the tolerance, not over it
    assert published.flags(table, published.entries(table, rows), 2.0) == ([], [], 2)
    _, notes, _ = published.flags(subset, [], 2.0, withheld=["CoOp", "KgCoOp"])
    assert notes == ["the published averages (CoOp, KgCoOp) cover the 11 benchmark datasets; "
                     "this table's average row is over others (its datasets: 1), so it is "
                     "neither shown beside them nor compared with them."]


def test_the_published_check_in_words():
    found = [("CoOp", "average", "base", 71.0, 50.0), ("CoOp", "dtd", "new", 62.0, 64.5)]
    assert published.flags_text(found, ["one note"], 5, 2.0) == (
        "2 reproduced number(s) more than 2 points from the published ones (check data, "
        "weights and config):\n"
        "  CoOp on Average base: 71.00 reproduced vs 50.00 published (+21.00)\n"
        "  CoOp on DTD new: 62.00 reproduced vs 64.50 published (-2.50)\n"
        "note: one note")
    assert published.flags_text([], [], 0, 2.0) == (
        "no reproduced baseline has a published number to compare with (the published file "
        "gives the averages over the 11 datasets only).")
    assert published.flags_text([], [], 3, 1.5) == ("all 3 reproduced number(s) with a published one "
                                          "are within 1.5 points of it.")


def test_an_unknown_protocol_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as error:
        build_table(tmp_path, "base-to-new", ["CoOp"])
    assert str(error.value) == ("unknown protocol 'base-to-new'; use one of base2new, fewshot, "
                                "xd, dg.")


def test_two_trainers_on_disk_make_one_table_with_their_pair(tmp_path, capsys):
    write_grid(tmp_path / "base2new", {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)})
    assert main([str(tmp_path / "base2new")]) == 0  # no --trainer, no --compare
    out = capsys.readouterr().out
    assert [line.split("  ")[0] for line in out.splitlines()
            if line.startswith(("CoOp", "Δ"))][:3] == ["CoOp", "CoOpSAR", "Δ CoOpSAR − CoOp"]


# -- the numbers of a cell ---------------------------------------------------------------------
def test_allow_partial_takes_base_new_and_hm_over_the_same_seeds(tmp_path, capsys):
    """Seed 3 has a base result and no new one: the cell is over seeds 1 and 2 for Base,
    New and HM alike, and says so (2/3); its Base is 81.00, not the 82.00 of seeds 1-3."""
    for seed, base in ((1, 80.0), (2, 82.0), (3, 84.0)):
        write(tmp_path, "train_base", seed, base, "dtd", "CoOp")
    for seed, new in ((1, 60.0), (2, 62.0)):
        write(tmp_path, "test_new", seed, new, "dtd", "CoOp")
    table = build_table(tmp_path, "base2new", ["CoOp"], config="cfg", allow_partial=True)
    cell = {e.metric: e for e in table.entries}
    assert cell["base"].mean == 81.0 and cell["new"].mean == 61.0
    assert set(cell["base"].values) == set(cell["new"].values) == set(cell["hm"].values) \
        == {1, 2}
    assert cell["hm"].mean == pytest.approx(2 * 81 * 61 / 142)
    assert main([str(tmp_path), "--trainer", "CoOp", "--config", "cfg", "--allow-partial",
                 "--format", "markdown", "--std"]) == 0
    out = capsys.readouterr().out
    assert "| CoOp | 81.00 ± 1.00 (2/3) | 61.00 ± 1.00 (2/3) |" in out
    assert "Base, New and HM all over the seeds with both" in out


# -- published numbers --------------------------------------------------------------------------
def test_published_averages_are_never_put_beside_a_subsets_average(tmp_path, capsys):
    grid = {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)}
    write_grid(tmp_path / "some", grid, datasets=("dtd", "eurosat"))
    args = ["--compare", "CoOp", "CoOpSAR", "--published", "--format", "markdown"]
    assert main([str(tmp_path / "some"), *args]) == 0
    out, err = capsys.readouterr()
    assert "(published)" not in out and "82.69" not in out  # CoOp's 11-dataset average
    assert "neither shown beside them nor compared with them" in err
    write_eleven(tmp_path / "all", grid)
    assert main([str(tmp_path / "all"), *args]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("| *CoOp (published)*"))
    assert row.split("|")[-4:-1] == [" 82.69 ", " 63.22 ", " 71.66 "]  # the average only
    assert row.count(" - ") == 3 * 11
    # a trainer whose average misses one of the 11 (--allow-partial) gets none either
    shutil.rmtree(tmp_path / "all" / "test_new" / "ucf101" / "shots_16" / "CoOp")
    assert main([str(tmp_path / "all"), *args, "--allow-partial"]) == 0
    assert "CoOp (published)" not in capsys.readouterr().out


# -- what a paper's table shows -----------------------------------------------------------------
def test_labels_bold_best_values_and_the_latex_label(tmp_path, capsys):
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)})
    out = latex_of(capsys, str(tmp_path), "--label", "CoOpSAR=CoOp + SAR", "--latex-label",
                   "tab:main")
    assert "\nCoOp + SAR & " in out and "$\\Delta$ CoOp + SAR $-$ CoOp" in out
    assert "\\label{tab:main}" in out
    dtd = [line for line in out.splitlines() if line.startswith(("CoOp &", "CoOp + SAR &"))]
    # DTD: CoOp's base (82) is the best, CoOp + SAR's new and HM
    assert dtd[0].split(" & ")[1] == "\\textbf{82.00}" and "textbf" not in dtd[0].split(" & ")[2]
    assert dtd[1].split(" & ")[2] == "\\textbf{68.00}"
    assert main([str(tmp_path), "--format", "markdown"]) == 0
    assert "| CoOp | **82.00** | 62.00 |" in capsys.readouterr().out
    for bad, message in ((["--label", "KgCoOp=Kg"], "KgCoOp is not in the table"),
                         (["--label", "CoOpSAR"], "write TRAINER=TEXT"),
                         (["--latex-label", "tab:{x}"],
                          "LaTeX label 'tab:{x}': use letters, digits and : . _ / + - only "
                          "(e.g. tab:base2new).")):
        assert main([str(tmp_path), *bad]) == 2
        assert message in capsys.readouterr().err


def test_latex_with_special_characters_std_published_and_a_tag_compiles(tmp_path, capsys):
    """Dataset names, a label and a config tag with _ & % # $ { } (the label \\ ~ ^ too),
    --std and --published (whose caption names sar_prompt/published/base2new.csv)."""
    runs = tmp_path / "runs"
    names = ("my_set&co", "50%#1", "{$x$}")
    write_grid(runs, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)}, datasets=names)
    for d in runs.glob("*/*/shots_16/*/cfg"):
        d.rename(d.with_name("vit_b16_ctxv1__my_tag"))
    published_file = tmp_path / "published.csv"
    published_file.write_text("method,trainer,dataset,base,new,hm,source,note\n"
                              "CoOp,CoOp,my_set&co,82.5,61.0,70.1,https://example.org/a_b%#,\n")
    tex = latex_of(capsys, str(runs), "--std", "--published", "--published-file",
                   str(published_file), "--label", "CoOpSAR=CoOp & SAR_{1} ~\\^", "--config",
                   "vit_b16_ctxv1__my_tag")
    assert "my\\_set\\&co" in tex and "50\\%\\#1" in tex and "\\{\\$x\\$\\}" in tex
    assert "sar\\_prompt/published/base2new.csv" in tex and "(published)" in tex
    assert ("CoOp \\& SAR\\_\\{1\\} \\textasciitilde{}\\textbackslash{}\\textasciicircum{}"
            in tex)
    needs_tex()
    log = compile_latex(tmp_path, tex)[0]
    assert "Overfull" not in log and "Missing $" not in log


def test_latex_escapes_every_special_character_and_sets_the_symbols_as_math():
    from sar_prompt.results.latex import escape

    assert escape("\\&%#_{}$~^") == ("\\textbackslash{}\\&\\%\\#\\_\\{\\}\\$"
                                   "\\textasciitilde{}\\textasciicircum{}")
    assert escape("Δ a − b ± 1") == "$\\Delta$ a $-$ b $\\pm$ 1"
    assert escape(1.5) == "1.5"


def test_each_kind_of_latex_cell():
    from sar_prompt.results.formats import Cell
    from sar_prompt.results.latex import _number

    pm = "\\textsubscript{$\\pm$0.00}"
    assert _number(Cell(), False) == "--"
    assert _number(Cell(), True) == "--\\phantom{" + pm + "}"  # the means line up
    assert _number(Cell(82.104), False) == "82.10"
    assert _number(Cell(82.104), True) == "82.10\\phantom{" + pm + "}"
    assert _number(Cell(-1.5, signed=True), False) == "$-$1.50"
    assert _number(Cell(1.5, signed=True), False) == "+1.50"
    assert _number(Cell(82.1, 0.424, best=True), True) == (
        "\\textbf{82.10}\\textsubscript{$\\pm$0.42}")
    assert _number(Cell(82.1, mark="(2/3)"), True) == (
        "82.10\\phantom{" + pm + "}\\textsuperscript{(2/3)}")
    assert _number(Cell(82.1, 0.5, mark="(2/3)"), False) == (
        "82.10\\textsubscript{$\\pm$0.50}\\textsuperscript{(2/3)}")


def test_five_methods_and_zero_shot_on_eleven_datasets_fit_one_page_width_table(tmp_path,
                                                                                 capsys):
    """The paper's main table: --std and --published, every XSAR - X pair with ΔBase, bold
    best values, one table* no wider than the text (scaled down by at most 15%) and no
    taller than the page."""
    write_eleven(tmp_path, FIVE)
    write_zero_shot(tmp_path, ELEVEN)
    tex = latex_of(capsys, str(tmp_path), "--compare", "ZeroshotCLIP", *FIVE, "--std",
                   "--published")
    assert tex.count("\\begin{table*}") == tex.count("\\begin{tabular}") == 1
    blocks = tex.count("\\midrule[\\heavyrulewidth]") + 1
    for pair in ("CoOpSAR $-$ CoOp", "KgCoOpSAR $-$ KgCoOp"):
        rows = [line for line in tex.splitlines() if f"$\\Delta$ {pair}" in line]
        assert len(rows) == blocks  # in every block
        assert all("& --" not in row and "&  &" not in row for row in rows)  # ΔBase too
    assert tex.count("{CoOp (published)}") == 1 and "69.34" in tex  # the average's block
    assert "\\textbf{" in tex and "\\label{tab:base2new}" in tex
    needs_tex()
    log, width, height, printed, text_width, text_height = compile_latex(tmp_path, tex)
    assert "Overfull" not in log and "Float too large" not in log
    assert width <= 1.15 * text_width and height <= text_height
    assert printed == pytest.approx(min(width, text_width), abs=0.1)


def test_a_small_table_keeps_its_size(tmp_path, capsys):
    needs_tex()
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)}, datasets=("dtd",))
    tex = to_latex(build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"]), with_std=True)
    log, width, _, printed, text_width, _ = compile_latex(tmp_path, tex)
    assert width < 0.75 * text_width and printed == width  # not scaled up to the width
    assert "Overfull" not in log


def test_run_with_several_trainers_prints_one_table_with_their_pairs(tmp_path, stub_bench,
                                                                     capsys, monkeypatch):
    from sar_prompt import cli
    from sar_prompt.orchestration import bench

    monkeypatch.setattr(bench, "main", lambda argv, main=bench.main: main(
        [*argv, "--config", str(CONFIG), "--data", str(tmp_path / "data")]))
    (tmp_path / "data").mkdir()
    assert cli.main(["run", "base2new", "--trainers", "CoOp", "KgCoOp", "KgCoOpSAR",
                     "--datasets", "eurosat", "--seeds", "1", "--output",
                     str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert out.count("### base-to-new") == 1  # one table, not one per trainer
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert rows[1:5] == ["CoOp", "KgCoOp", "KgCoOpSAR", "*Δ KgCoOpSAR − KgCoOp*"]
    assert "has no KgCoOp beside it" not in err


@pytest.mark.parametrize("with_std, groups_per_block, partial",
                         [(False, None, False), (True, None, False), (True, 1, False),
                          (False, 12, False), (True, 3, True), (False, 1, True)])
def test_the_size_estimate_the_layout_is_chosen_by_is_pdflatexs(
        tmp_path, with_std, groups_per_block, partial):
    """The layout is chosen from estimated widths and heights (latex.py's constants for
    Computer Modern at footnotesize): one block to twelve, with and without stds, bold and
    italic rows, seed-count marks and missing cells, they are within 3% (widths) and 2%
    (heights) of what pdflatex typesets."""
    from sar_prompt.results import formats, latex

    needs_tex()
    write_eleven(tmp_path, FIVE)
    write_zero_shot(tmp_path, ELEVEN)
    if partial:  # CoOp with 2 of 3 seeds on most datasets, CoCoOp without new on two
        for dataset in ELEVEN[2:]:
            shutil.rmtree(tmp_path / "train_base" / dataset / "shots_16" / "CoOp" / "cfg"
                          / "seed3")
        for dataset in ELEVEN[:2]:
            shutil.rmtree(tmp_path / "test_new" / dataset / "shots_16" / "CoCoOp")
    g = formats.grid(build_table(tmp_path, "base2new", ["ZeroshotCLIP", *FIVE],
                                 allow_partial=partial), with_std=with_std)
    marks = [c.mark for r in g.rows for c in r.cells if c.mark]
    missing = [c for r in g.rows if r.kind == "method" for c in r.cells if c.mean is None]
    assert bool(marks) == bool(missing) == partial
    assert_size_estimate(tmp_path, g, groups_per_block)


def assert_size_estimate(folder, g, groups_per_block):
    from sar_prompt.results import latex

    layout = (latex.blocks(len(g.groups), -(-len(g.groups) // groups_per_block))
              if groups_per_block else latex.choose_layout(g))
    _, width, height, *_ = compile_latex(folder, latex.grid_latex(g, groups_per_block))
    estimated_width, estimated_height = latex._size(g, layout)
    assert estimated_width == approx(width, rel=0.03)
    assert estimated_height == approx(height, rel=0.02)  # a superscript mark adds ~0.7 pt


@pytest.mark.parametrize("groups_per_block", [None, 4])
def test_the_size_estimate_with_titles_wider_than_their_one_column(tmp_path, groups_per_block):
    """Cross-dataset: one number under each dataset's name, so the names set the widths."""
    from sar_prompt.results import formats

    needs_tex()
    for i, dataset in enumerate(ELEVEN):
        for trainer in ("CoOp", "CoOpSAR"):
            for seed in (1, 2, 3):
                sub = "train_all" if dataset == "imagenet" else "test_all"
                write(tmp_path, sub, seed, 60.0 + i + seed, dataset, trainer)
    g = formats.grid(build_table(tmp_path, "xd", ["CoOp", "CoOpSAR"]), with_std=True)
    assert all(len(subs) == 1 for _, subs in g.groups)
    assert_size_estimate(tmp_path, g, groups_per_block)


@pytest.mark.parametrize("groups_per_block", [1, 2])
def test_the_size_estimate_with_a_title_wider_than_base_new_and_hm(tmp_path, groups_per_block):
    """A custom dataset's long name over three columns: LaTeX widens them to hold it."""
    from sar_prompt.results import formats

    needs_tex()
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)}, datasets=("dtd",))
    g = formats.grid(build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"]))
    g.groups[0] = ("Describable Textures, our own larger split", g.groups[0][1])
    assert [len(subs) for _, subs in g.groups] == [3, 3]
    assert_size_estimate(tmp_path, g, groups_per_block)


def test_the_whole_latex_of_a_two_block_table(tmp_path):
    """Every line: the preamble, a block per column group under a heavy rule, stds as
    subscripts (~ below; invisible where a row has none: @), bold best values, a little space
    before a method after the delta rows, a rule above the zero-shot deltas; no caption or
    label unless asked for, and then at the end."""
    from sar_prompt.results import formats, latex

    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0),
                          "KgCoOp": (78.0, 70.0)}, datasets=("dtd",))
    write_zero_shot(tmp_path, ("dtd",))
    table = build_table(tmp_path, "base2new", ["ZeroshotCLIP", "CoOp", "CoOpSAR", "KgCoOp"],
                        zero_shot_deltas=True)
    g = formats.grid(table, with_std=True)
    expected = [
        r'% base-to-new generalisation: ZeroshotCLIP vit_b16; CoOp cfg; CoOpSAR cfg; KgCoOp cfg; '
        r'shots 16; seeds 1 2 3',
        r'% requires \usepackage{booktabs} and \usepackage{graphicx}',
        r'\begin{table*}[t]',
        r'\centering',
        r'\footnotesize',
        r'\setlength{\tabcolsep}{3.5pt}',
        r'% scaled down only if wider than the text',
        r'\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%',
        r'\begin{tabular}{lrrr}',
        r'\toprule',
        r' & \multicolumn{3}{c}{DTD} \\',
        r'\cmidrule(lr){2-4}',
        r'Method & Base & New & HM \\',
        r'\midrule',
        r'ZeroshotCLIP (zero-shot) & 69.00@ & \textbf{74.00}@ & 71.41@ \\',
        r'CoOp & \textbf{82.00}~0.82 & 62.00~0.82 & 70.61~0.83 \\',
        r'CoOpSAR & 81.00~0.82 & 68.00~0.82 & 73.93~0.82 \\',
        r'\quad\textit{$\Delta$ CoOpSAR $-$ CoOp} & $-$1.00@ & +6.00@ & +3.32@ \\',
        r'\addlinespace[2pt]',
        r'KgCoOp & 80.00~0.82 & 72.00~0.82 & \textbf{75.79}~0.82 \\',
        r'\cmidrule(lr){1-4}',
        r'\quad\textit{$\Delta$ CoOp $-$ ZeroshotCLIP} & +13.00@ & $-$12.00@ & $-$0.80@ \\',
        r'\quad\textit{$\Delta$ CoOpSAR $-$ ZeroshotCLIP} & +12.00@ & $-$6.00@ & +2.52@ \\',
        r'\quad\textit{$\Delta$ KgCoOp $-$ ZeroshotCLIP} & +11.00@ & $-$2.00@ & +4.38@ \\',
        r'\midrule[\heavyrulewidth]',
        r' & \multicolumn{3}{c}{Average} \\',
        r'\cmidrule(lr){2-4}',
        r'Method & Base & New & HM \\',
        r'\midrule',
        r'ZeroshotCLIP (zero-shot) & 69.00 & \textbf{74.00} & 71.41 \\',
        r'CoOp & \textbf{82.00} & 62.00 & 70.61 \\',
        r'CoOpSAR & 81.00 & 68.00 & 73.93 \\',
        r'\quad\textit{$\Delta$ CoOpSAR $-$ CoOp} & $-$1.00 & +6.00 & +3.32 \\',
        r'\addlinespace[2pt]',
        r'KgCoOp & 80.00 & 72.00 & \textbf{75.79} \\',
        r'\cmidrule(lr){1-4}',
        r'\quad\textit{$\Delta$ CoOp $-$ ZeroshotCLIP} & +13.00 & $-$12.00 & $-$0.80 \\',
        r'\quad\textit{$\Delta$ CoOpSAR $-$ ZeroshotCLIP} & +12.00 & $-$6.00 & +2.52 \\',
        r'\quad\textit{$\Delta$ KgCoOp $-$ ZeroshotCLIP} & +11.00 & $-$2.00 & +4.38 \\',
        r'\bottomrule',
        r'\end{tabular}}',
        r'\end{table*}',
        r'',
    ]
    phantom = "\\phantom{\\textsubscript{$\\pm$0.00}}"
    expected = [re.sub(r"~(\d\.\d\d)", r"\\textsubscript{$\\pm$\1}", line.replace("@", phantom))
                for line in expected]
    assert latex.grid_latex(g, groups_per_block=1, caption=False).split("\n") == expected
    with_caption = latex.grid_latex(g, groups_per_block=1, label="tab:x").split("\n")
    assert with_caption[-4] == (
        r"\caption{HM: harmonic mean of the mean base and mean new accuracy ($\pm$ std of the "
        r"per-seed HMs); Average: mean over datasets, its HM from the averaged base and new. "
        r"Mean over seeds 1 2 3 $\pm$ population std. ZeroshotCLIP (zero-shot): one evaluation "
        r"per dataset (nothing is trained, so no seeds and no std). $\Delta$ rows: each method "
        r"minus its baseline, in points. Bold: the best method in each column.}")
    assert with_caption[-3:] == ["\\label{tab:x}", "\\end{table*}", ""]
    assert with_caption[:-4] == latex.grid_latex(g, groups_per_block=1, caption=False).split(
        "\n")[:-2]
    # both groups in one block: their titles, each over its own columns
    one_block = latex.grid_latex(g, groups_per_block=2).split("\n")
    assert one_block[10:13] == [
        r" & \multicolumn{3}{c}{DTD} & \multicolumn{3}{c}{Average} \\",
        r"\cmidrule(lr){2-4} \cmidrule(lr){5-7}",
        r"Method & Base & New & HM & Base & New & HM \\"]


def test_the_header_of_a_table_with_one_number_per_dataset(tmp_path):
    from sar_prompt.results import formats, latex

    for dataset, sub in (("imagenet", "train_all"), ("dtd", "test_all"), ("eurosat", "test_all")):
        write(tmp_path, sub, 1, 70.0, dataset, "CoOp")
    g = formats.grid(build_table(tmp_path, "xd", ["CoOp"]))
    lines = latex.grid_latex(g, groups_per_block=4).split("\n")
    assert lines[10:12] == [
        r"Method & \multicolumn{1}{c}{ImageNet (source)} & \multicolumn{1}{c}{DTD} & "
        r"\multicolumn{1}{c}{EuroSAT} & \multicolumn{1}{c}{Average} \\", r"\midrule"]


def test_the_size_estimate_of_a_table_whose_groups_differ_in_width(tmp_path):
    """Each group's columns are sized by their own cells: here DTD's with seed-count marks
    (one seed of three) beside EuroSAT's and UCF101's plain numbers."""
    from sar_prompt.results import formats

    needs_tex()
    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)},
               datasets=("dtd", "eurosat", "ucf101"))
    for sub in ("train_base", "test_new"):
        for seed in ("seed2", "seed3"):
            shutil.rmtree(tmp_path / sub / "dtd" / "shots_16" / "CoOp" / "cfg" / seed)
    g = formats.grid(build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], allow_partial=True))
    marked = [i for i, (title, _) in enumerate(g.groups)
              for r in g.rows for c in r.cells[3 * i:3 * i + 3] if c.mark]
    assert set(marked) == {0}  # DTD's only
    assert_size_estimate(tmp_path, g, None)


def test_a_method_with_nothing_in_a_block_keeps_its_row_there(tmp_path):
    from sar_prompt.results import formats, latex

    write_grid(tmp_path, {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)},
               datasets=("dtd", "eurosat"))
    shutil.rmtree(tmp_path / "train_base" / "eurosat" / "shots_16" / "CoOpSAR")
    shutil.rmtree(tmp_path / "test_new" / "eurosat" / "shots_16" / "CoOpSAR")
    g = formats.grid(build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], allow_partial=True))
    eurosat_block = latex.grid_latex(g, groups_per_block=1).split("\\midrule[\\heavyrulewidth]")[1]
    assert "\nCoOpSAR & -- & -- & -- \\\\\n" in eurosat_block
