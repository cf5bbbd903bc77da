"""A run folder that is not what a run expects: a symbolic link where a run writes (never
followed: a file outside the folder stays byte-identical), run.lock a folder, a finished run
on a read-only disk, a truncated fingerprint.json, an evaluation into a training run's own
folder. Each is refused (exit 2, no traceback, the path and the fix named) or, for the
finished run, reported finished."""
import errno
import io
import json
import os
from pathlib import Path

import pytest

from sar_prompt.errors import LinkRefused
from sar_prompt.io import atomic_write_json, atomic_write_text, open_append, resumable_writer
from sar_prompt.orchestration import bench
from sar_prompt.orchestration import runner
from sar_prompt.runs import lock as run_lock
from test_runner import make_bench, settings
from test_train_identity import argv, copy_of, finished, snapshot, train  # noqa: F401

VICTIM = b"a file of the user's, outside the run folder\n"


@pytest.fixture
def victim(tmp_path):
    """A file (and a folder holding one) outside any run folder, with their bytes."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file.txt").write_bytes(VICTIM)
    (outside / "folder" / "model.pth.tar-1").write_bytes(VICTIM)
    return outside


def untouched(outside):
    return (sorted(p.name for p in outside.rglob("*")) == ["file.txt", "folder",
                                                         "model.pth.tar-1"]
            and (outside / "file.txt").read_bytes() == VICTIM
            and (outside / "folder" / "model.pth.tar-1").read_bytes() == VICTIM)


# Every file (and folder) a run writes in its folder, as a link to the victim.
LINKED = ["run.lock", "fingerprint.json", "results.json", "log.txt", "console.txt",
          "failed.json", "resumes.json", "prompt_learner", "prompt_learner/model.pth.tar-1",
          "prompt_learner/checkpoint", "prompt_learner/model-best.pth.tar", "tensorboard"]


def plant_link(out, name, outside):
    link = out / name
    link.parent.mkdir(parents=True, exist_ok=True)
    is_folder = name in ("prompt_learner", "tensorboard")
    link.symlink_to(outside / "folder" if is_folder else outside / "file.txt")
    return link


@pytest.mark.parametrize("name", LINKED)
def test_train_never_writes_through_a_link_in_its_folder(tmp_path, caltech_root, tiny_clip_path,
                                                         victim, capsys, name):
    out = tmp_path / "seed1"
    link = plant_link(out, name, victim)
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{link} is a symbolic link" in err
    assert f"rm {link}" in err
    assert untouched(victim) and link.is_symlink()


@pytest.mark.parametrize("name", ["run.lock", "results.json", "prompt_learner"])
def test_the_runner_never_writes_through_a_link(tmp_path, victim, capsys, name):
    b = make_bench(tmp_path, datasets=("eurosat",), seeds=(1,))
    train_run = b.jobs()[0].runs[0]
    link = plant_link(Path(train_run.output_dir), name, victim)
    # the dry run says so; the benchmark command refuses before it starts anything
    common = ["base2new", "CoOpSAR", "--datasets", "eurosat", "--seeds", "1", "--config",
              b.config, "--data", b.data, "--output", b.output]
    assert bench.main([*common, "--dry-run"]) == 0
    assert f"REFUSED: {link} is a symbolic link" in capsys.readouterr().out
    assert bench.main(common) == 2
    assert f"{link} is a symbolic link" in capsys.readouterr().err
    # and the runner itself (a Slurm task, say) reports the run refused, the next run blocked
    text = io.StringIO()
    outcomes = runner.run_local(b.jobs(), settings(), out=text)
    assert [o.status for o in outcomes] == ["failed", "blocked"]
    assert f"REFUSED: {link} is a symbolic link" in text.getvalue()
    assert untouched(victim) and link.is_symlink()


def test_writers_refuse_a_link_and_leave_its_target(tmp_path, victim):
    for write in (lambda p: atomic_write_json(p, {"a": 1}), lambda p: atomic_write_text(p, "x"),
                  lambda p: open_append(p).write("x")):
        link = tmp_path / "link"
        link.symlink_to(victim / "file.txt")
        with pytest.raises(LinkRefused, match="is a symbolic link"):
            write(link)
        assert link.is_symlink() and untouched(victim)
        link.unlink()
    (tmp_path / "weights.pt.part").symlink_to(victim / "file.txt")  # a download's part file
    for resume in (False, True):
        with pytest.raises(LinkRefused):
            with resumable_writer(tmp_path / "weights.pt", resume=resume) as f:
                f.write(b"x")
    assert untouched(victim)
    dangling = tmp_path / "dangling.json"  # a link to nothing would create its target
    dangling.symlink_to(victim / "new.json")
    with pytest.raises(LinkRefused):
        atomic_write_json(dangling, {})
    assert not (victim / "new.json").exists()


def test_a_run_folder_that_is_itself_a_link_is_fine(tmp_path):
    real = tmp_path / "scratch" / "seed1"
    real.mkdir(parents=True)
    (tmp_path / "seed1").symlink_to(real)  # output on another disk: a common set-up
    lock = run_lock.acquire(tmp_path / "seed1", command=["test"])
    try:
        assert (real / "run.lock").is_file()
    finally:
        lock.release()


def test_run_lock_as_a_folder_is_named_as_such(tmp_path, caltech_root, tiny_clip_path, capsys):
    out = tmp_path / "seed1"
    (out / "run.lock").mkdir(parents=True)
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "give a file name" not in err
    assert f"{out / 'run.lock'} is a folder, where the run keeps its lock file" in err
    assert f"rmdir {out / 'run.lock'}" in err


def read_only(monkeypatch, folder):
    """Writing anything under `folder` fails as on a read-only mount (tests run as root,
    whom file permissions do not stop)."""
    real_open = os.open
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def fake_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & writing:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_a_finished_run_on_a_read_only_disk_is_reported_finished(finished, tmp_path,  # noqa: F811
                                                                 caltech_root, tiny_clip_path,
                                                                 capsys, monkeypatch):
    out = copy_of(finished, tmp_path)
    (out / "run.lock").unlink()
    before = snapshot(out)
    read_only(monkeypatch, out)
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 0
    captured = capsys.readouterr()
    assert "finished earlier with this config" in captured.out, captured.err
    assert snapshot(out) == before


def test_the_runner_skips_a_finished_run_on_a_read_only_disk(tmp_path, monkeypatch):
    b = make_bench(tmp_path, datasets=("eurosat",), seeds=(1,))
    outcomes = runner.run_local(b.jobs(), settings(), out=io.StringIO())
    assert [o.status for o in outcomes] == ["done", "done"]
    for job in b.jobs():
        for run in job.runs:
            (Path(run.output_dir) / "run.lock").unlink()
    read_only(monkeypatch, tmp_path / "out")
    text = io.StringIO()
    outcomes = runner.run_local(b.jobs(), settings(), out=text)
    assert [o.status for o in outcomes] == ["skipped", "skipped"], text.getvalue()


def test_a_truncated_fingerprint_is_called_unreadable_not_missing(finished, tmp_path,  # noqa: F811
                                                                 caltech_root, tiny_clip_path,
                                                                 capsys):
    out = copy_of(finished, tmp_path)
    fp = out / "fingerprint.json"
    fp.write_bytes(fp.read_bytes()[:100])
    before = snapshot(out)
    assert train.main(argv(caltech_root, tiny_clip_path, out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no fingerprint.json" not in err
    assert "its fingerprint.json is unreadable (truncated or not JSON" in err
    assert "--move-aside" in err
    assert snapshot(out) == before


def test_an_evaluation_never_rewrites_a_training_runs_fingerprint(finished, tmp_path,  # noqa: F811
                                                                 caltech_root, tiny_clip_path,
                                                                 capsys):
    out = copy_of(finished, tmp_path)
    before = snapshot(out)
    for flags in (["--overwrite-results"], []):
        code = train.main(["--eval-only", "--model-dir", str(out), "--load-epoch", "1", *flags,
                           *argv(caltech_root, tiny_clip_path, out)])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "is a training run's folder" in err and "another --output " in err
        assert snapshot(out) == before
    # into a folder of its own, the same evaluation runs
    code = train.main(["--eval-only", "--model-dir", str(out), "--load-epoch", "1",
                       *argv(caltech_root, tiny_clip_path, tmp_path / "eval")])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert snapshot(out) == before
    assert json.loads((tmp_path / "eval" / "fingerprint.json").read_text())["run"]["eval_only"]
