"""Result tables on synthetic run folders: the arithmetic against hand-computed values,
incomplete seed sets (missing, truncated results.json, failed run), --compare, the output
formats and the plot, and fingerprints."""
import csv
import io
import json

import pytest

from sar_prompt import fingerprint
from sar_prompt.protocol import run_dir
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
    assert main([str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg"]) == 0
    out = capsys.readouterr().out
    assert "| EuroSAT | 82.00 ± 1.63 | 63.00 ± 2.45 | 71.26 ±" in out
    assert "| **Average** | 76.00 | 51.50 | 61.40 |" in out


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
    dtd = next(line for line in out.splitlines() if line.startswith("| DTD"))
    assert "(2/3)" in dtd  # averaged over two seeds, and says so


def test_compare_side_by_side_with_deltas_in_every_format(tmp_path, capsys):
    write_benchmark(tmp_path, "CoOp")
    write_benchmark(tmp_path, "CoOpSAR", delta=2.0)  # new +2 on every seed
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], config="cfg")
    deltas = {(e.dataset, e.metric): e.mean for e in table.deltas}
    assert deltas["eurosat", "base"] == 0 and deltas["eurosat", "new"] == pytest.approx(2.0)
    assert deltas["eurosat", "hm"] == pytest.approx(2 * 82 * 65 / 147 - 2 * 82 * 63 / 145)
    assert deltas["average", "new"] == pytest.approx(2.0)
    base = [str(tmp_path), "--compare", "CoOp", "CoOpSAR", "--config", "cfg"]
    assert main(base) == 0
    md = capsys.readouterr().out
    assert "| Dataset | CoOp Base | CoOp New | CoOp HM | CoOpSAR Base" in md
    assert "| Δ Base | Δ New | Δ HM |" in md
    assert main(base + ["--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    delta = [r for r in rows if r["kind"] == "delta" and r["dataset"] == "average"
             and r["metric"] == "new"]
    assert delta[0]["trainer"] == "CoOpSAR - CoOp" and float(delta[0]["mean"]) == 2.0
    assert main(base + ["--format", "json", "--save", str(tmp_path / "tables")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trainers"] == ["CoOp", "CoOpSAR"] and not data["problems"]
    saved = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert saved == [f"base2new_CoOp_vs_CoOpSAR.{e}" for e in ("csv", "json", "md", "png")]
    assert (tmp_path / "tables" / "base2new_CoOp_vs_CoOpSAR.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_with_different_fingerprints_are_flagged_and_can_be_grouped(tmp_path, capsys):
    write_benchmark(tmp_path, fps={("eurosat", 3): fp(torch="2.15.0")})
    args = [str(tmp_path), "--trainer", "CoOpSAR", "--config", "cfg"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "eurosat / CoOpSAR: the runs averaged have 2 different fingerprints" in err
    assert "eurosat CoOpSAR seed 3 base" in err and "packages.torch" in err
    assert "dtd / CoOpSAR" not in err
    assert main(args + ["--group-by-fingerprint"]) == 0
    out = capsys.readouterr().out
    eurosat = [line for line in out.splitlines() if line.startswith("| EuroSAT [fp ")]
    assert len(eurosat) == 2 and any("84.00 ± 0.00 (1/3)" in line for line in eurosat)


def test_compared_trainers_on_different_few_shot_samples_are_flagged(tmp_path):
    write_benchmark(tmp_path, "CoOp")
    write_benchmark(tmp_path, "CoOpSAR", fps={("dtd", 1): fp(fewshot="other")})
    table = build_table(tmp_path, "base2new", ["CoOp", "CoOpSAR"], config="cfg")
    assert any("dtd seed 1 (16 shots): CoOp, CoOpSAR trained on different few-shot samples" in w
               for w in table.warnings)


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
                 "16", "--seeds", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "| Dataset | Trainer | 1 shot | 16 shots |" in out
    assert "| EuroSAT | CoOp | 51.50 ± 0.50 | 71.50 ± 0.50 |" in out
    transfer = tmp_path / "transfer" / "from_imagenet"
    write(transfer, "train_all", 1, 70.0, "imagenet", "CoOp")
    for target, acc in (("imagenet_a", 50.0), ("imagenet_r", 74.0)):
        write(transfer, "test_all", 1, acc, target, "CoOp")
    assert main([str(tmp_path), "--protocol", "dg", "--trainer", "CoOp", "--config", "cfg",
                 "--seeds", "1", "--datasets", "imagenet_a", "imagenet_r"]) == 0
    out = capsys.readouterr().out
    assert "| Trainer | ImageNet (source) | ImageNet-A | ImageNet-R | Average |" in out
    assert "| CoOp | 70.00 ± 0.00 | 50.00 ± 0.00 | 74.00 ± 0.00 | 62.00 |" in out
