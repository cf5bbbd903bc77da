"""`sar-prompt results`' command line (sar_prompt/results/tables_cli.py): how its spellings
fold into one meaning, and which folder and protocol a given path resolves to."""
import pytest

from sar_prompt.results.tables_cli import parse_args, resolve_root


@pytest.fixture
def no_output_setting(monkeypatch):
    for name in ("SAR_PROMPT_OUTPUT", "OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def refused(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_the_results_folder_comes_from_root_output_or_the_setting(no_output_setting,
                                                                   monkeypatch, capsys):
    assert parse_args([]).root == "output"
    assert parse_args(["runs"]).root == "runs" == parse_args(["--output", "runs"]).root
    assert parse_args(["runs", "--output", "./runs"]).root == "runs"  # the same folder twice
    assert refused(["runs", "--output", "other"], capsys).endswith(
        "error: two results folders given: ROOT runs and --output other; give one.")
    monkeypatch.setenv("SAR_PROMPT_OUTPUT", "from_env")
    assert parse_args([]).root == "from_env" and parse_args(["runs"]).root == "runs"


def test_trainers_folds_into_trainer_or_compare(no_output_setting, capsys):
    one = parse_args(["--trainers", "CoOp"])
    assert (one.trainer, one.compare) == ("CoOp", None)
    several = parse_args(["--trainers", "CoOp", "CoOpSAR"])
    assert (several.trainer, several.compare) == (None, ["CoOp", "CoOpSAR"])
    for other in (["--trainer", "CoOp"], ["--compare", "CoOp", "KgCoOp"]):
        assert refused(["--trainers", "CoOpSAR", *other], capsys).endswith(
            "error: --trainers replaces --trainer and --compare; give one of them.")


def test_per_seed_is_the_name_and_dataset_its_old_spelling(no_output_setting, capsys):
    assert parse_args(["--per-seed", "dtd"]).dataset == "dtd"
    assert capsys.readouterr().err == ""
    assert parse_args(["--dataset", "dtd"]).dataset == "dtd"
    assert capsys.readouterr().err == (
        "warning: --dataset is deprecated; use --per-seed (same meaning).\n")


@pytest.mark.parametrize("layout, protocol, expected", [
    # OUTPUT itself: the protocol folder it holds
    (["base2new/train_base"], None, ("base2new", "base2new")),
    (["fewshot/train_all"], None, ("fewshot", "fewshot")),
    (["base2new/train_base", "fewshot/train_all"], "fewshot", ("fewshot", "fewshot")),
    (["transfer/from_imagenet/test_all/dtd"], "xd", ("transfer/from_imagenet", "xd")),
    # a folder of runs under another name: its phases say the protocol
    (["train_base", "base2new"], None, (".", "base2new")),
    (["train_all"], None, (".", "fewshot")),
    (["train_base", "train_all"], None, (".", "base2new")),
    ([], None, (".", "base2new")),
])
def test_a_results_path_resolves_to_its_protocol_folder(tmp_path, layout, protocol, expected):
    root = tmp_path / "runs"
    for folder in layout:
        (root / folder).mkdir(parents=True)
    root.mkdir(exist_ok=True)
    folder, found = resolve_root(root, protocol)
    assert (folder, found) == (root / expected[0], expected[1])  # root / "." is root


@pytest.mark.parametrize("target, protocol", [("dtd", "xd"), ("imagenet_a", "dg")])
def test_a_transfer_folder_is_cross_dataset_or_domain_generalisation(tmp_path, target,
                                                                      protocol):
    root = tmp_path / "transfer" / "from_imagenet"
    (root / "test_all" / target).mkdir(parents=True)
    assert resolve_root(root, None) == (root, protocol)
    assert resolve_root(root, "dg") == (root, "dg")  # asked for: as asked
    fewshot = tmp_path / "fewshot"
    fewshot.mkdir()
    assert resolve_root(fewshot, None) == (fewshot, "fewshot")
