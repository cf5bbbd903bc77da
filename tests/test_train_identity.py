"""train.py writes into a run folder only for the config that made it: another config is
refused (exit 2, every differing key named, nothing touched) unless --move-aside; a
finished run asked for again is reported, not redone; a folder of unknown origin is
refused; a folder another process writes is refused with its holder named."""
import io
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, TINY_TRAINER_OPTS
from sar_prompt import train as train_module


class train:
    """train.py in this process. Dassl's setup_logger replaces sys.stdout with a tee over
    the stream it finds (pytest's capture of that moment) that closes that stream when it
    is collected: detach the tee, then put the streams back."""

    @staticmethod
    def main(args):
        streams = sys.stdout, sys.stderr
        try:
            return train_module.main(args)
        finally:
            tee = sys.stdout
            if tee is not streams[0] and hasattr(tee, "console"):
                if getattr(tee, "file", None) is not None:
                    tee.file.close()
                    tee.file = None
                tee.console = io.StringIO()
            sys.stdout, sys.stderr = streams


def argv(root, clip, out, *opts):
    return ["--root", str(root), "--seed", "1", "--trainer", "CoOpSAR",
            "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
            "--output-dir", str(out), *TINY_TRAINER_OPTS, "MODEL.BACKBONE.PATH", str(clip),
            "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base",
            "OPTIM.MAX_EPOCH", "1", "TRAIN.CHECKPOINT_FREQ", "1", *opts]


def snapshot(folder, lock=True):
    """{relative path: (bytes, mtime_ns)} of every file, and the folders' mtimes (`lock`:
    the run lock's file too)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if not lock and path.name == "run.lock":
            continue
        stat = path.stat()
        out[str(path.relative_to(folder))] = (path.read_bytes() if path.is_file() else None,
                                              stat.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory, caltech_root, tiny_clip_path):
    """A finished WEIGHT 1.0 training run, copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "seed1"
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 0
    assert json.loads((out / "results.json").read_text())["accuracy"] >= 0
    return out


def copy_of(finished, tmp_path):
    import shutil

    target = tmp_path / "seed1"
    shutil.copytree(finished, target)
    return target


def test_another_config_is_refused_naming_each_key_and_nothing_changes(
        finished, tmp_path, caltech_root, tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    before = snapshot(out), snapshot(tmp_path)
    code = train.main(argv(caltech_root, tiny_clip_path, out, "TRAINER.SAR.WEIGHT", "5.0",
                           "OPTIM.MAX_EPOCH", "2"))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "belongs to another config" in err
    assert "OPTIM.MAX_EPOCH: 1 -> 2" in err and "TRAINER.SAR.WEIGHT: 1.0 -> 5.0" in err
    assert "--output" in err and "--move-aside" in err
    assert (snapshot(out), snapshot(tmp_path)) == before  # not a byte, not a timestamp


def test_move_aside_keeps_the_old_run_and_starts_afresh(finished, tmp_path, caltech_root,
                                                         tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    old = snapshot(out, lock=False)
    code = train.main(["--move-aside", *argv(caltech_root, tiny_clip_path, out,
                                             "TRAINER.SAR.WEIGHT", "5.0")])
    assert code == 0, capsys.readouterr().err[-2000:]
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("seed1.moved-")]
    assert len(moved) == 1 and snapshot(moved[0], lock=False) == old  # kept as it was
    fp = json.loads((out / "fingerprint.json").read_text())
    assert fp["config"]["TRAINER"]["SAR"]["WEIGHT"] == 5.0
    assert not (out / "resumes.json").exists()  # trained from scratch, not resumed
    assert json.loads((out / "results.json").read_text())["epoch"] == 1


def test_a_finished_run_asked_for_again_is_not_redone(finished, tmp_path, caltech_root,
                                                       tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    before = snapshot(out, lock=False)
    accuracy = json.loads((out / "results.json").read_text())["accuracy"]
    # the same identity: where the weights are and how often checkpoints are saved differ not
    code = train.main(argv(caltech_root, tiny_clip_path, out, "TRAINER.SAR.WEIGHT", "1"))
    printed = capsys.readouterr().out
    assert code == 0
    assert "finished earlier with this config" in printed and f"{accuracy:.2f}%" in printed
    assert snapshot(out, lock=False) == before and "** Config **" not in printed


def test_a_folder_with_work_but_no_fingerprint_is_refused(finished, tmp_path, caltech_root,
                                                          tiny_clip_path, capsys):
    out = copy_of(finished, tmp_path)
    (out / "fingerprint.json").unlink()
    (out / "results.json").unlink()  # checkpoints alone are work that could be lost
    before = snapshot(out)
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 2
    err = capsys.readouterr().err
    assert "no fingerprint.json" in err and "--move-aside" in err
    assert snapshot(out) == before


HOLD = textwrap.dedent("""
    import sys
    from sar_prompt.runs import lock as run_lock
    run_lock.acquire(sys.argv[1], command=["python", "train.py", "--the-other-one"])
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_a_folder_another_process_writes_is_refused(tmp_path, caltech_root, tiny_clip_path,
                                                    capsys):
    out = tmp_path / "seed1"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert train.main(argv(caltech_root, tiny_clip_path, out)) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "--the-other-one" in err
        assert sorted(p.name for p in out.iterdir()) == ["run.lock"]
    finally:
        holder.stdin.close()
        holder.wait()
