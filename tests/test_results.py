"""Result tables on synthetic run folders: the arithmetic against hand-computed values,
incomplete seed sets (missing, truncated results.json, failed run), --compare, the output
formats and the plot, and fingerprints."""
import csv
import statistics
import io
import json
import re

import pytest

from sar_prompt.runs import fingerprint
from sar_prompt.runs.protocols import run_dir
from sar_prompt.results import build_table, collect, format_table, harmonic_mean, main

# base / new accuracies per seed; the table's numbers below are computed by hand from these
RUNS = {"eurosat": {1: (80.0, 60.0), 2: (82.0, 63.0), 3: (84.0, 66.0)},
        "dtd": {1: (70.0, 40.0), 2: (70.0, 40.0), 3: (70.0, 40.0)}}


def write(root, sub, seed, acc, dataset="caltech101", trainer="CoOpSAR", config="cfg",
          fp=None, shots=16):
    d = root / sub / dataset / f"shots_{shots}" / trainer / config / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"accuracy": acc, "seed": seed}))
    if fp is not None:
        (d / "fingerprint.json").write_text(json.dumps(fp))
    return d


def fp(torch="2.14.1", fewshot="abc"):
    return {"schema": fingerprint.SCHEMA, "config": {"OPTIM": {"LR": 0.002}, "SEED": 1},
            "packages": {"torch": torch}, "git": {"revision": "r1", "dirty": False},
            "device": {"type": "cuda", "name": "GPU"}, "precision": "fp16",
            "data": {"split_sha256": "s", "fewshot_sha256": fewshot}}


def write_benchmark(root, trainer="CoOpSAR", delta=0.0, skip=(), fps=None):
    for dataset, seeds in RUNS.items():
        for seed, (b, n) in seeds.items():
            if (dataset, seed) in skip:
                continue
            f = (fps or {}).get((dataset, seed), fp())
            write(root, "train_base", seed, b, dataset, trainer, fp=f)
            write(root, "test_new", seed, n + delta, dataset, trainer, fp=f)


def test_harmonic_mean():
    assert harmonic_mean(80.0, 60.0) == 2 * 80 * 60 / 140
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_table_mean_std_and_hm_of_means(tmp_path, capsys):
    for seed, (b, n) in {1: (90.0, 70.0), 2: (92.0, 74.0)}.items():
        write(tmp_path, "train_base", seed, b)
        write(tmp_path, "test_new", seed, n)
    rows = collect(tmp_path, "caltech101", "CoOpSAR", "cfg", 16, [1, 2])
    assert rows == [(1, 90.0, 70.0), (2, 92.0, 74.0)]
    table = format_table(rows)
    assert "91.00 +- 1.00" in table and "72.00 +- 2.00" in table
    assert f"{harmonic_mean(91.0, 72.0):.2f}" in table.splitlines()[3]
    assert main([str(tmp_path), "--dataset", "caltech101", "--trainer", "CoOpSAR",
                 "--config", "cfg", "--seeds", "1", "2"]) == 0


def test_missing_seed_is_reported(tmp_path, capsys):
    write(tmp_path, "train_base", 1, 90.0)
    code = main([str(tmp_path), "--dataset", "caltech101", "--trainer", "CoOpSAR",
                 "--config", "cfg", "--seeds", "1"])
    out = capsys.readouterr()
    assert code == 1 and "missing results for seed(s) 1" in out.err
    assert "no seed has both" in out.out and "absent:" in out.err


def test_benchmark_table_against_hand_computed_values(tmp_path, capsys):
    write_benchmark(tmp_path)
    table = build_table(tmp_path, "base2new", ["CoOpSAR"], seeds=[1, 2, 3], config="cfg")
    assert table.complete
    assert table.datasets == ["dtd", "eurosat"]  # the reference tables' order, not RUNS'
    get = {(e.dataset, e.metric): e for e in table.entries + table.averages}
    # EuroSAT: base 80 82 84 -> 82 +- sqrt(8/3); new 60 63 66 -> 63 +- sqrt(6)
    assert get["eurosat", "base"].mean == pytest.approx(82.0)
    assert get["eurosat", "base"].std == pytest.approx((8 / 3) ** 0.5)
    assert get["eurosat", "new"].std == pytest.approx(6 ** 0.5)
    assert get["eurosat", "hm"].mean == pytest.approx(2 * 82 * 63 / 145)       # 71.2552
    assert get["dtd", "hm"].mean == pytest.approx(2 * 70 * 40 / 110)           # 50.9091
    # the average row: HM of the averaged base (76) and new (51.5) = 61.3961, not the mean
    # of the per-dataset HMs (61.0822)
    assert get["average", "base"].mean == pytest.approx(76.0)
    assert get["average", "new"].mean == pytest.approx(51.5)
    assert get["average", "hm"].mean == pytest.approx(2 * 76 * 51.5 / 127.5)
    assert main([str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg", "--format",
                 "markdown"]) == 0
    out = capsys.readouterr().out
    # methods as rows, datasets as Base / New / HM column groups, the average last
    assert "| Method | DTD Base | DTD New | DTD HM | EuroSAT Base | EuroSAT New | EuroSAT HM | " \
           "Average Base | Average New | Average HM |" in out
    assert "| CoOpSAR | 70.00 | 40.00 | 50.91 | 82.00 | 63.00 | 71.26 | 76.00 | 51.50 | 61.40 |" in out
    assert main([str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg", "--format",
                 "markdown", "--std"]) == 0
    assert "| 82.00 ± 1.63 | 63.00 ± 2.45 | 71.26 ± " in capsys.readouterr().out


@pytest.mark.parametrize("damage, status", [
    ("missing", "absent"), ("truncated", "broken"), ("failed", "failed"),
    ("wrong seed", "broken")])
def test_incomplete_seed_sets_are_refused_and_named(tmp_path, capsys, damage, status):
    write_benchmark(tmp_path, skip={("dtd", 2)} if damage == "missing" else ())
    bad = run_dir(tmp_path, "test_new", "dtd", 16, "CoOpSAR", "cfg", 2)
    if damage == "truncated":
        (bad / "results.json").write_text('{"accuracy": 40.')
    elif damage == "failed":
        (bad / "results.json").unlink()
        (bad / "failed.json").write_text('{"exit_code": 1, "when": "t"}')
        (bad / "log.txt").write_text("RuntimeError\n")
    elif damage == "wrong seed":
        (bad / "results.json").write_text('{"accuracy": 40.0, "seed": 3}')
    args = [str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{status:<11} dtd CoOpSAR seed 2 new: {bad}" in err and "--allow-partial" in err
    if damage == "failed":
        assert f"log: {bad / 'log.txt'}" in err
    assert main(args + ["--allow-partial"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("CoOpSAR"))
    assert "(2/3)" in row  # averaged over two seeds, and says so


def test_compare_side_by_side_with_deltas_in_every_format(tmp_path, capsys):
    write_benchmark(tmp_path, "CoOp")
    write_benchmark(tmp_path, "CoOpSAR", delta=2.0)  # new +2 on every seed
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], config="cfg")
    deltas = {(e.dataset, e.metric): e.mean for e in table.deltas}
    assert deltas["eurosat", "base"] == 0 and deltas["eurosat", "new"] == pytest.approx(2.0)
    assert deltas["eurosat", "hm"] == pytest.approx(2 * 82 * 65 / 147 - 2 * 82 * 63 / 145)
    assert deltas["average", "new"] == pytest.approx(2.0)
    base = [str(tmp_path), "--compare", "CoOp", "CoOpSAR", "--config", "cfg"]
    assert main(base + ["--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "| *Δ CoOpSAR − CoOp* | +0.00 | +2.00 | " in md
    assert main(base + ["--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    delta = [r for r in rows if r["kind"] == "delta" and r["dataset"] == "average"
             and r["metric"] == "new"]
    assert delta[0]["trainer"] == "CoOpSAR - CoOp" and float(delta[0]["mean"]) == 2.0
    assert main(base + ["--format", "json", "--save", str(tmp_path / "tables")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trainers"] == ["CoOp", "CoOpSAR"] and not data["problems"]
    saved = sorted(p.name for p in (tmp_path / "tables").iterdir())
    name = "base2new_CoOp_vs_CoOpSAR"
    assert saved == sorted([f"{name}.{e}" for e in ("csv", "json", "md", "tex", "wide.csv",
                                                    "png", "pdf", "svg")]
                           + [f"{name}_delta.{e}" for e in ("png", "pdf", "svg")])
    assert (tmp_path / "tables" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "tables" / f"{name}_delta.pdf").read_bytes()[:5] == b"%PDF-"


def test_runs_with_different_fingerprints_are_flagged_and_can_be_grouped(tmp_path, capsys):
    write_benchmark(tmp_path, fps={("eurosat", 3): fp(torch="2.15.0")})
    args = [str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "eurosat / CoOpSAR: the runs averaged have 2 different fingerprints" in err
    assert "eurosat CoOpSAR seed 3 base" in err and "packages.torch" in err
    assert "dtd / CoOpSAR" not in err
    assert main(args + ["--group-by-fingerprint", "--std", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    groups = [line for line in out.splitlines() if line.startswith("| CoOpSAR [fp ")]
    assert len(groups) == 2 and any("84.00 ± 0.00 (1/3)" in line for line in groups)


def test_compared_trainers_on_different_few_shot_samples_are_flagged(tmp_path):
    write_benchmark(tmp_path, "CoOp")
    write_benchmark(tmp_path, "CoOpSAR", fps={("dtd", 1): fp(fewshot="other")})
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], config="cfg")
    assert ("dtd seed 1 (16 shots): CoOp, CoOpSAR trained on different few-shot samples "
            "(data.fewshot_sha256 differs), so their difference is not only the method's."
            in table.warnings)


def test_fingerprint_comparison_ignores_what_differs_between_seeds_and_phases():
    a, b = fp(), fp()
    b["config"]["SEED"] = 2
    b["data"]["fewshot_sha256"] = "other seed, other sample"
    assert fingerprint.digest(a) == fingerprint.digest(b)
    b["config"]["OPTIM"]["LR"] = 0.01
    assert fingerprint.differences(a, b) == ["config.OPTIM.LR"]


def test_fewshot_and_transfer_tables(tmp_path, capsys):
    fewshot = tmp_path / "fewshot"
    for shots, acc in ((1, 50.0), (16, 70.0)):
        for seed in (1, 2):
            write(fewshot, "train_all", seed, acc + seed, "eurosat", "CoOp", shots=shots)
    assert main([str(fewshot), "--trainer", "CoOp", "--config", "cfg", "--shots", "1",
                 "16", "--seeds", "1", "2", "--format", "markdown", "--std"]) == 0
    out = capsys.readouterr().out
    assert "| Method | EuroSAT 1-shot | EuroSAT 16-shot | Average 1-shot | Average 16-shot |" \
        in out
    assert "| CoOp | 51.50 ± 0.50 | 71.50 ± 0.50 | 51.50 | 71.50 |" in out
    transfer = tmp_path / "transfer" / "from_imagenet"
    write(transfer, "train_all", 1, 70.0, "imagenet", "CoOp")
    for target, acc in (("imagenet_a", 50.0), ("imagenet_r", 74.0)):
        write(transfer, "test_all", 1, acc, target, "CoOp")
    assert main([str(tmp_path), "--protocol", "dg", "--trainer", "CoOp", "--config", "cfg",
                 "--seeds", "1", "--datasets", "imagenet_a", "imagenet_r", "--format",
                 "markdown", "--std"]) == 0
    out = capsys.readouterr().out
    assert "| Method | ImageNet (source) | ImageNet-A | ImageNet-R | Average |" in out
    assert "| CoOp | 70.00 ± 0.00 | 50.00 ± 0.00 | 74.00 ± 0.00 | 62.00 |" in out


# -- runs found on disk, the paper layout, formats, published baselines, figures --------------
GRID = {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0), "KgCoOp": (79.0, 70.0),
        "KgCoOpSAR": (78.0, 73.0)}


def write_grid(root, trainers=GRID, datasets=("dtd", "eurosat"), seeds=(1, 2, 3)):
    """Fake results.json: each trainer's base / new, + the seed, + 2 on EuroSAT."""
    for i, dataset in enumerate(datasets):
        for trainer, (b, n) in trainers.items():
            for seed in seeds:
                write(root, "train_base", seed, b + seed + 2 * i, dataset, trainer)
                write(root, "test_new", seed, n + seed + 2 * i, dataset, trainer)


def test_compare_pairs_each_sar_variant_with_its_method(tmp_path, capsys):
    write_grid(tmp_path)
    table = build_table(tmp_path, "base2new", list(GRID))
    assert table.pairs == [("CoOpSAR", "CoOp"), ("KgCoOpSAR", "KgCoOp")]
    deltas = {(e.trainer, e.dataset, e.metric): e.mean for e in table.deltas}
    assert deltas["CoOpSAR - CoOp", "dtd", "new"] == pytest.approx(6.0)
    assert deltas["KgCoOpSAR - KgCoOp", "average", "new"] == pytest.approx(3.0)
    assert deltas["KgCoOpSAR - KgCoOp", "eurosat", "hm"] == pytest.approx(
        harmonic_mean(80 + 2, 75 + 2) - harmonic_mean(81 + 2, 72 + 2))
    assert not any(t.startswith("KgCoOp - ") or t == "KgCoOpSAR - CoOp" for t, _, _ in deltas)
    assert main([str(tmp_path), "--compare", *GRID]) == 0
    out = capsys.readouterr().out.splitlines()
    labels = [line.split("  ")[0] for line in out if line and line[0] in "CKΔ"]
    assert labels[:6] == ["CoOp", "CoOpSAR", "Δ CoOpSAR − CoOp", "KgCoOp", "KgCoOpSAR",
                      "Δ KgCoOpSAR − KgCoOp"]  # each delta under its pair
    row = next(line for line in out if line.startswith("Δ CoOpSAR − CoOp"))
    assert row.split()[4:7] == ["-1.00", "+6.00",
                                f"{harmonic_mean(81, 68) - harmonic_mean(82, 62):+.2f}"]


def test_zero_shot_clip_is_one_run_labelled_without_std_and_a_baseline(tmp_path, capsys):
    write_grid(tmp_path, {"CoOp": (80.0, 60.0)}, datasets=("dtd",))
    for sub, acc in (("train_base", 70.0), ("test_new", 74.0)):
        write(tmp_path, sub, 1, acc, "dtd", "ZeroshotCLIP", config="vit_b16")
    table = build_table(tmp_path, "base2new", ["ZeroshotCLIP", "CoOp"], allow_partial=False)
    assert table.complete and table.zero_shot == ["ZeroshotCLIP"]  # seeds 2, 3 not expected
    zs = {e.metric: e for e in table.entries if e.trainer == "ZeroshotCLIP"}
    assert zs["base"].mean == 70.0 and zs["base"].std is None and zs["hm"].std is None
    assert table.pairs == [("CoOp", "ZeroshotCLIP")]
    assert main([str(tmp_path), "--compare", "ZeroshotCLIP", "CoOp", "--std", "--format",
                 "markdown"]) == 0
    out = capsys.readouterr().out
    # no fake ± 0.00; the best of each column in bold
    assert "| ZeroshotCLIP (zero-shot) | 70.00 | **74.00** | **71.94** |" in out
    assert "| *Δ CoOp − ZeroshotCLIP* | +12.00 | -12.00 |" in out and "one evaluation" in out


def test_datasets_trainers_and_seeds_are_found_on_disk_with_any_name(tmp_path, capsys):
    root = tmp_path / "output"
    write_grid(root / "base2new", {"CoOpSAR": (20.0, 15.0)}, datasets=("demo", "mydata"),
               seeds=(1,))
    assert main([str(root)]) == 0  # no dataset, trainer, seed or config named
    out = capsys.readouterr().out
    assert "SARDemo" in out and "mydata" in out and "seeds 1" in out
    # an incomplete set says what is there
    write(root / "base2new", "train_base", 2, 50.0, "demo", "CoOpSAR")
    assert main([str(root), "--seeds", "1", "2", "3"]) == 1
    err = capsys.readouterr().err
    assert "demo CoOpSAR seed 3 base" in err and "on disk: shots_16/cfg: seeds 1 2 found" in err


def test_any_folder_of_seed_runs(tmp_path, capsys):
    write_grid(tmp_path, {"CoOp": (80.0, 60.0)}, datasets=("dtd",))
    config = tmp_path / "train_base" / "dtd" / "shots_16" / "CoOp" / "cfg"
    assert main([str(config)]) == 0  # a train_base folder: paired with its test_new twin
    out = capsys.readouterr().out
    assert "82.00 +- 0.82" in out and "62.00 +- 0.82" in out
    plain = tmp_path / "elsewhere"
    for seed, acc in ((1, 50.0), (2, 54.0)):
        (plain / f"seed{seed}").mkdir(parents=True)
        (plain / f"seed{seed}" / "results.json").write_text(json.dumps({"accuracy": acc}))
    assert main([str(plain)]) == 0
    assert "52.00 +- 2.00" in capsys.readouterr().out


def test_latex_is_one_booktabs_tabular_of_stacked_blocks(tmp_path):
    from sar_prompt.results import to_latex

    datasets = ("imagenet", "caltech101", "oxford_pets", "dtd", "eurosat")
    write_grid(tmp_path, datasets=datasets)
    table = build_table(tmp_path, "base2new", list(GRID))
    tex = to_latex(table, groups_per_block=3)  # 5 datasets + the average: two blocks of 3
    assert tex.count("\\begin{tabular}{l" + "r" * 9 + "}") == 1
    assert tex.count("\\toprule") == tex.count("\\bottomrule") == 1
    assert tex.count("\\midrule[\\heavyrulewidth]") == 1  # between the two blocks
    rows = [line for line in tex.splitlines() if line.endswith("\\\\") and
            "multicolumn" not in line]
    assert len(rows) == 2 * (1 + len(GRID) + 2)  # per block: sub-header, methods, 2 deltas
    assert all(line.count("&") == 9 for line in rows)  # every row fills its block
    assert "$\\Delta$ CoOpSAR $-$ CoOp" in tex and "\\label{tab:base2new}" in tex
    # three blocks: the datasets in order, each block's numbers under its own titles
    tex = to_latex(table, groups_per_block=2)
    titles = re.findall(r"\\multicolumn\{3\}\{c\}\{([^}]*)\}", tex)
    assert titles == ["ImageNet", "Caltech101", "OxfordPets", "DTD", "EuroSAT", "Average"]
    second = tex.split("\\midrule[\\heavyrulewidth]")[1]  # OxfordPets and DTD
    assert ("\nCoOp & \\textbf{86.00} & 66.00 & 74.68 & \\textbf{88.00} & 68.00 & 76.72 \\\\\n"
            in second)
    # a small table is not split and not scaled up: only scaled down if wider than the text
    tex = to_latex(build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], datasets=["dtd"]))
    assert tex.count("\\begin{tabular}{l" + "r" * 6 + "}") == 1  # DTD + Average
    assert "\\resizebox{\\ifdim\\width>\\textwidth\\textwidth\\else\\width\\fi}{!}" in tex


def test_column_groups_split_into_blocks_in_order():
    from sar_prompt.results.latex import blocks

    assert blocks(12, 1) == [range(0, 12)]
    assert blocks(12, 3) == [range(0, 4), range(4, 8), range(8, 12)]
    assert blocks(11, 3) == [range(0, 4), range(4, 8), range(8, 11)]  # the first ones larger
    assert blocks(2, 5) == [range(0, 1), range(1, 2)]  # never an empty block


def test_csv_long_and_wide(tmp_path):
    from sar_prompt.results import to_csv, to_csv_wide

    write_grid(tmp_path)
    table = build_table(tmp_path, "base2new", list(GRID))
    wide = list(csv.DictReader(io.StringIO(to_csv_wide(table))))
    assert [r["row"] for r in wide][:3] == ["CoOp", "CoOpSAR", "Δ CoOpSAR − CoOp"]
    assert float(wide[0]["dtd_base"]) == 82.0 and float(wide[2]["average_new"]) == 6.0
    assert float(wide[2]["dtd_base"]) == -1.0  # what SAR costs on the base classes
    long = list(csv.DictReader(io.StringIO(to_csv(table))))
    base_delta = [r for r in long if r["kind"] == "delta" and r["metric"] == "base"]
    assert base_delta and all(r["trainer"].endswith(" - " + r["trainer"].split(" - ")[1])
                              for r in base_delta)  # every delta is in the long CSV


def test_shipped_published_baselines_carry_their_sources_and_agree_with_themselves():
    from sar_prompt.results import published

    rows = published.load()
    with_numbers = [r for r in rows if r.base is not None]
    assert {r.method for r in with_numbers} == {"CLIP", "CoOp", "CoCoOp", "KgCoOp", "MaPLe",
                                                "PromptSRC"}
    for r in rows:
        if r.base is not None or r.new is not None or r.hm is not None:
            assert r.source.startswith(("github:", "https://")), r
        else:
            assert "left empty" in r.note
    for r in with_numbers:  # the HM each source prints is the HM of its base and new
        decimals = 0.05 if r.method == "KgCoOp" else 0.006  # KgCoOp's README: one decimal
        assert harmonic_mean(r.base, r.new) == pytest.approx(r.hm, abs=decimals), r
    by_key = {(r.method, r.dataset): r for r in rows}
    for method in {r.method for r in rows}:  # where a source gives every dataset, the
        cells = [by_key.get((method, d)) for d in  # average is their mean
                 ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers",
                  "food101", "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")]
        if all(c is not None and c.base is not None for c in cells):
            assert statistics.fmean(c.base for c in cells) == pytest.approx(
                by_key[method, "average"].base, abs=0.01)


def test_published_numbers_beside_reproduced_ones_and_flags(tmp_path, capsys):
    from sar_prompt.results import published

    path = tmp_path / "published.csv"
    path.write_text("# test\nmethod,trainer,dataset,base,new,hm,source,note\n"
                    "CoOp,CoOp,dtd,82.5,61.0,70.1,https://example.org/paper,\n"
                    "CoOp,CoOp,eurosat,,,,,left empty\n")
    write_grid(tmp_path / "runs", {"CoOp": (80.0, 60.0), "CoOpSAR": (79.0, 66.0)})
    args = [str(tmp_path / "runs"), "--compare", "CoOp", "CoOpSAR", "--published",
            "--published-file", str(path), "--format", "markdown"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "| *CoOp (published)* | 82.50 | 61.00 | 70.10 | - |" in out
    # beside a table to paste (any format but text), the check goes to stderr
    assert "all 3 reproduced number(s) with a published one are within 2 points" in err
    assert main(args + ["--tolerance", "0.1", "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "CoOp on DTD new: 62.00 reproduced vs 61.00 published (+1.00)" in out
    assert "CoOpSAR on" not in out  # SAR's numbers are the ones measured, not checked
    path.write_text("method,trainer,dataset,base,new,hm,source,note\n"
                    "CoOp,CoOp,dtd,82.5,61.0,70.1,,\n")
    assert main(args) == 2
    assert "numbers without a source" in capsys.readouterr().err
    assert published.averages_benchmark(build_table(tmp_path / "runs", "base2new", ["CoOp"]),
                                        "CoOp") is False


def test_a_reproduced_baseline_over_two_points_from_its_paper_is_flagged_by_default(
        tmp_path, capsys):
    path = tmp_path / "published.csv"
    path.write_text("method,trainer,dataset,base,new,hm,source,note\n"
                    "CoOp,CoOp,dtd,84.5,63.5,,https://example.org/paper,\n")
    write_grid(tmp_path / "runs", {"CoOp": (80.0, 60.0)})  # dtd: base 82, new 62 (3 seeds)
    assert main([str(tmp_path / "runs"), "--trainers", "CoOp", "--published",
                 "--published-file", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CoOp on DTD base: 82.00 reproduced vs 84.50 published (-2.50)" in out  # > 2
    assert "on DTD new" not in out  # 1.5 points: within the default 2


def test_a_published_file_that_cannot_be_used_is_named(tmp_path):
    from sar_prompt.errors import ConfigError
    from sar_prompt.results import published

    path = tmp_path / "published.csv"
    header = "method,trainer,dataset,base,new,hm,source,note\n"

    def refusal(text):
        path.write_text(text)
        with pytest.raises(ConfigError) as error:
            published.load(path)
        return str(error.value)

    assert refusal("# numbers from the papers\n" + header
                   + "CoOp,CoOp,dtd,82.5,n/a,,https://example.org/paper,\n") == (
        f"{path} line 3: new is 'n/a', not a number; fix the file (leave the cell empty "
        "where no source gives a number).")
    assert refusal(header + "CoOp,CoOp,dtd,82.5,,,,\n") == (
        f"{path} line 2: numbers without a source; every number needs the source it is "
        "copied from.")
    path.write_text("method,trainer,dataset,base,new,hm\nCoOp,CoOp,dtd,,,\n")  # no numbers
    (row,) = published.load(path)
    assert (row.base, row.source, row.note) == (None, "", "")
    with pytest.raises(ConfigError) as error:
        published.load(tmp_path / "missing.csv")
    assert str(error.value).startswith(
        f"cannot read the published baselines {tmp_path / 'missing.csv'}: [Errno 2]")


def test_the_long_csv_rows_of_published_numbers_and_averages(tmp_path, capsys):
    """Published numbers have no std and no seeds of ours (n 0) and name their source; an
    average row belongs to no single config or fingerprint."""
    path = tmp_path / "published.csv"
    path.write_text("method,trainer,dataset,base,new,hm,source,note\n"
                    "CoOp,CoOp,dtd,82.5,61.0,70.1,https://example.org/paper,\n")
    write_grid(tmp_path / "runs", {"CoOp": (80.0, 60.0)})
    assert main([str(tmp_path / "runs"), "--trainer", "CoOp", "--published",
                 "--published-file", str(path), "--format", "csv", "--std"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    published_rows = [r for r in rows if r["kind"] == "published"]
    assert {(r["dataset"], r["metric"], r["mean"], r["std"], r["n"], r["config"])
            for r in published_rows} == {
        ("dtd", "base", "82.5000", "", "0", "https://example.org/paper"),
        ("dtd", "new", "61.0000", "", "0", "https://example.org/paper"),
        ("dtd", "hm", "70.1000", "", "0", "https://example.org/paper")}
    average = [r for r in rows if r["kind"] == "average"]
    assert {r["metric"] for r in average} == {"base", "new", "hm"}
    assert all((r["config"], r["fingerprint"], r["std"]) == ("", "", "") for r in average)
    cells = [r for r in rows if r["kind"] == "cell"]
    assert cells and all(r["config"] == "cfg" and r["n"] == "3" for r in cells)


def test_harmonic_mean_of_small_and_zero_accuracies():
    assert harmonic_mean(0.4, 0.6) == pytest.approx(0.48)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.0, 50.0) == 0.0


def test_cross_dataset_table_averages_the_targets_and_pairs_sar(tmp_path, capsys):
    root = tmp_path / "xd"
    for trainer, shift in (("CoOp", 0.0), ("CoOpSAR", 2.0)):
        for seed in (1, 2):
            write(root, "train_all", seed, 70.0 + shift + seed, "imagenet", trainer)
            for target, acc in (("caltech101", 90.0), ("dtd", 40.0)):
                write(root, "test_all", seed, acc + shift + seed, target, trainer)
    table = build_table(root, "xd", ["CoOp", "CoOpSAR"], seeds=[1, 2])
    assert table.source == "imagenet" and table.datasets == ["imagenet", "caltech101", "dtd"]
    avg = {(e.trainer, e.metric): e.mean for e in table.averages}
    assert avg == {("CoOp", "accuracy"): 66.5, ("CoOpSAR", "accuracy"): 68.5}
    deltas = {(e.trainer, e.dataset): e.mean for e in table.deltas}
    assert deltas["CoOpSAR - CoOp", "average"] == pytest.approx(2.0)
    assert deltas["CoOpSAR - CoOp", "imagenet"] == pytest.approx(2.0)
    assert main([str(root), "--protocol", "xd", "--compare", "CoOp", "CoOpSAR",
                 "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| CoOp | 71.50 | 91.50 | 41.50 | 66.50 |" in out


def test_figures_are_pdf_svg_png_at_column_width(tmp_path):
    from PIL import Image

    from sar_prompt.results.plots import plot_deltas, plot_table
    from sar_prompt.results.sweep_plot import plot_sweep

    write_grid(tmp_path)
    table = build_table(tmp_path, "base2new", list(GRID))
    for paths in (plot_table(table, tmp_path / "fig"), plot_deltas(table, tmp_path / "delta")):
        assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
        width_in = Image.open(paths[0]).size[0] / 300
        assert 3.0 <= width_in <= 3.6  # one column, at 300 dpi
    rows = [{"label": f"w={w}", "value": w, "datasets": {"dtd": (80, 60 + w, 70 + w),
                                                         "eurosat": (82, 62 + w, 71 + w)}}
            for w in (0.0, 0.5, 1.0, 2.0)]
    paths = plot_sweep(rows, tmp_path / "sweep")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
    assert paths[1].read_bytes()[:5] == b"%PDF-"


def test_a_sar_run_without_its_method_gets_a_note_not_a_warning(tmp_path, capsys):
    """Running only the SAR variant (the demo does) is no problem: the table says how to see
    what SAR changed as a note, and prints no warning."""
    write_benchmark(tmp_path, "CoOpSAR")
    table = build_table(tmp_path, "base2new", ["CoOpSAR"], config="cfg")
    assert table.warnings == []
    assert table.notes == ["CoOpSAR has no CoOp beside it: add CoOp to see what SAR changed "
                           "(CoOpSAR - CoOp)."]
    write_benchmark(tmp_path, "CoOp")
    assert build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], config="cfg").notes == []
