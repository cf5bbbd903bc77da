"""The performance harness (`python -m benchmarks`) on the tiny CLIP: its record's structure,
ratios that are what they claim to be, bad options refused with exit 2, and a reference
way that computes what the trainers compute. Never a wall-clock value."""
import contextlib
import io
import json
import statistics
import subprocess
import sys

import pytest
import torch

from conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import __main__ as cli  # noqa: E402
from benchmarks.cli_tools import COMMANDS  # noqa: E402
from benchmarks.build import Setup, build_trainer, make_cfg, synthetic_batch  # noqa: E402
from benchmarks.models import weights_file  # noqa: E402
from benchmarks.reference_way import full_text_features, reference_loss  # noqa: E402

RUN = ["--arch", "tiny", "--device", "cpu", "--repeats", "2", "--warmup", "0",
       "--methods", "CoOp", "CoCoOp", "--classes", "6", "--eval-images", "3",
       "--eval-classes", "8", "--novel", "4", "8", "--memory-classes", "8", "--cli-repeats", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run of every section; (exit status, stdout, the JSON record)."""
    path = tmp_path_factory.mktemp("bench") / "out" / "record.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(RUN + ["--json", str(path)])
    return status, out.getvalue(), json.loads(path.read_text(encoding="utf-8"))


def groups(record):
    """Every set of interleaved timings in the record, by a readable name."""
    sections = record["sections"]
    for name in ("steps", "text", "eval"):
        for method, group in sections[name]["methods"].items():
            yield f"{name}/{method}", group
    yield "sar_growth", sections["sar_growth"]
    yield "cli", sections["cli"]


def test_record_has_the_environment_and_every_section(run):
    status, stdout, record = run
    assert status == 0
    assert record["complete"] is True
    for key in ("arch", "device", "torch", "threads", "cpu", "date", "repeats", "warmup"):
        assert key in record
    assert (record["arch"], record["device"], record["repeats"]) == ("tiny", "cpu", 2)
    assert list(record["sections"]) == list(cli.SECTIONS)
    steps = record["sections"]["steps"]["methods"]
    assert list(steps) == ["CoOp", "CoCoOp"]
    assert steps["CoOp"]["batch_size"] == 32 and steps["CoCoOp"]["batch_size"] == 1
    assert steps["CoOp"]["novel_per_step"] == 6  # NUM_NOVEL = the number of base classes
    assert set(steps["CoOp"]["timings_ms"]) == {"CoOp", "CoOpSAR", "reference-way CoOp",
                                                "image encoder"}
    growth = record["sections"]["sar_growth"]
    assert growth["novel_per_step"] == {"CoOpSAR novel=4": 4, "CoOpSAR novel=8": 8}
    for heading in ("## steps", "## text", "## eval", "## sar_growth", "## memory", "## cli"):
        assert heading in stdout


def test_every_ratio_is_the_ratio_of_its_rounds(run):
    record = run[2]
    for name, group in groups(record):
        times = group["timings_ms"]
        assert all(len(v) == record["repeats"] if name != "cli" else len(v) == 1
                   for v in times.values()), name
        for label, ratio in group["ratios"].items():
            num, den = times[ratio["numerator"]], times[ratio["denominator"]]
            assert ratio["per_round"] == pytest.approx([a / b for a, b in zip(num, den)],
                                                       rel=1e-12), (name, label)
            assert ratio["median"] == statistics.median(ratio["per_round"]), (name, label)
            assert ratio["fastest"] == pytest.approx(min(num) / min(den), rel=1e-12)
        for variant, summary in group["summary_ms"].items():
            assert summary["median"] == statistics.median(times[variant])
            assert (summary["min"], summary["max"]) == (min(times[variant]), max(times[variant]))


def test_text_section_records_the_same_features(run):
    for method in run[2]["sections"]["text"]["methods"].values():
        assert method["positions"] < method["context"] == 77
        assert method["max_abs_difference"] < 1e-4


def test_memory_runs_each_case_in_its_own_process(run):
    memory = run[2]["sections"]["memory"]
    cases = {c["case"]: c for c in memory["cases"]}
    assert cases["CoOp"]["status"] == cases["CoOpSAR"]["status"] == "ok"
    assert cases["CoOpSAR"]["base_classes"] == 8
    assert cases["CoOpSAR"]["novel_classes"] == memory["novel_file_names"] > 0
    for case in ("CoOp", "CoOpSAR"):
        c = cases[case]
        assert c["peak_rss_mib"] >= c["peak_rss_before_step_mib"] > 0
        assert len(c["losses"]) == 2
    low = cases["CoOpSAR low-memory"]
    if low["status"] == "unavailable":
        assert memory["losses"]["identical"] is None
    else:
        assert low["status"] == "ok"
        assert memory["losses"]["CoOpSAR low-memory"] == pytest.approx(
            memory["losses"]["CoOpSAR"], rel=1e-5)


def test_cli_section_records_exit_codes(run):
    cli_record = run[2]["sections"]["cli"]
    codes = cli_record["exit_codes"]
    assert codes["python -c pass"] == [0]
    assert codes["python -m sar_prompt.results --help"] == [0]
    assert codes["python -m sar_prompt.results EMPTY_DIR"] != [0]  # no runs there
    assert set(cli_record["meets_target"]) == set(COMMANDS)


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats: must be a whole number >= 1"),
    (["--methods", "CoOp,Nope"], "unknown name 'Nope'"),
    (["--sections", "speed"], "unknown name 'speed'"),
    (["--classes", "101"], "--classes: must be a whole number from 1 to 100"),
    (["--arch", "ViT-H/14"], "invalid choice"),
])
def test_bad_options_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unusable_device_or_json_path_exit_2(tmp_path, capsys):
    if not torch.cuda.is_available():
        assert cli.main(["--arch", "tiny", "--device", "cuda"]) == 2
        assert "--device cuda" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["--arch", "tiny", "--sections", "cli", "--json", str(blocker / "record.json")]
    assert cli.main(argv) == 2
    assert "error: cannot write or read" in capsys.readouterr().err


def test_command_line_exit_status():
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--warmup", "-1"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--warmup: must be a whole number >= 0" in done.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    return Setup("tiny", weights_file("tiny", folder), "cpu", folder)


@pytest.mark.parametrize("method", ["CoOp", "KgCoOp", "CoCoOp", "MaPLe", "PromptSRC"])
def test_reference_way_computes_what_the_trainer_computes(setup, method):
    """CLIP's 77-position text pass gives the trainer's text features (its deep prompts
    included), and the reference-way loss is the trainer's loss."""
    names = ["face", "leopard", "motorbike", "airplane"]
    trainer = build_trainer(make_cfg(setup, method, method), names)
    model = trainer.model
    batch = synthetic_batch(setup, 2, len(names))
    with torch.no_grad():
        # away from the hand-crafted prompt, so KgCoOp's and PromptSRC's terms are not 0
        generator = torch.Generator().manual_seed(0)
        for p in model.prompt_learner.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
        ours = model.text_features()
        full = full_text_features(trainer.clip_model, model.prompt_learner())
        assert torch.allclose(full, ours, atol=1e-5)
        if model.conditioned:
            images = model.encode_images(batch["img"])
            ours = model.text_features(condition=images)
            full = torch.stack([full_text_features(trainer.clip_model,
                                                   model.prompt_learner(condition=f))
                                for f in images.split(1)])
            assert torch.allclose(full, ours, atol=1e-5)
        expected = trainer.step(batch["img"], batch["label"]).total()
        loss = reference_loss(trainer, batch["img"], batch["label"])[0]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_work_ratios_are_ratios_of_counted_operations(run):
    """Every step and growth variant has its operations counted; each ratio's `work` is the
    ratio of those counts, and SAR's novel classes add operations that grow with their
    number."""
    record = run[2]
    sections = record["sections"]
    counted = [*sections["steps"]["methods"].values(), sections["sar_growth"]]
    for group in counted:
        assert set(group["gflop"]) == set(group["timings_ms"])
        assert all(v > 0 for v in group["gflop"].values())
        for ratio in group["ratios"].values():
            assert ratio["work"] == pytest.approx(
                group["gflop"][ratio["numerator"]] / group["gflop"][ratio["denominator"]])
    for method, group in sections["steps"]["methods"].items():
        assert group["ratios"][f"{method}SAR/{method}"]["work"] > 1
    growth = sections["sar_growth"]["gflop"]
    assert growth["CoOp"] < growth["CoOpSAR novel=4"] < growth["CoOpSAR novel=8"]
    assert "XSAR/X work" in run[1] and "/CoOp work" in run[1]


def test_operation_count_matches_the_matrix_products(setup):
    """The counter counts 2 * m * n * k per matrix product, forward and backward: one
    linear layer's step has the known count, so a step's work is not a guess."""
    from benchmarks.work import flops

    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16, requires_grad=True)
    assert flops(lambda: layer(x)) == 2 * 4 * 16 * 8
    # backward: the input's and the weight's gradient, one product each
    assert flops(lambda: layer(x).sum().backward()) == 3 * 2 * 4 * 16 * 8
