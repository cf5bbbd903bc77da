import json

from sar_prompt.results import collect, format_table, harmonic_mean, main


def write(root, sub, seed, acc):
    d = root / sub / "caltech101" / "shots_16" / "CoOpSAR" / "cfg" / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"accuracy": acc}))


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
    assert "no seed has both" in out.out
