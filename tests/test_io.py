"""Every file sar_prompt writes is atomic (a writer killed or failing mid-write leaves the old
file intact) and gets the permissions the umask asks for (not mkstemp's 0600)."""
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

import sar_prompt.io as sio
from sar_prompt.io import (atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_writer,
                           current_umask, resumable_writer)


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def hidden_temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


# --- atomicity ----------------------------------------------------------------------------

def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    target.write_text('{"accuracy": 71.5}\n')
    old = target.read_bytes()
    # The child writes half of a large payload through atomic_writer, says so, and waits
    # to be killed: SIGKILL runs no cleanup, so this is the worst case.
    # sar_prompt/io.py is loaded by path: importing the package would load torch (slow).
    child = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("sio", {sio.__file__!r})
        sio = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sio)
        with sio.atomic_writer({str(target)!r}) as f:
            f.write(b"x" * (8 << 20))
            f.flush()
            print("half written", flush=True)
            sys.stdin.read()
            f.write(b"y" * (8 << 20))
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half written"
        temps = hidden_temps(tmp_path)
        assert len(temps) == 1 and (tmp_path / temps[0]).stat().st_size == 8 << 20
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert target.read_bytes() == old


def test_a_failure_between_write_and_rename_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "list.json"
    atomic_write_json(target, {"v": 1})

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_json(target, {"v": 2})
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as f:
            f.write(b"partial")
            raise RuntimeError("the producer failed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert hidden_temps(tmp_path) == []  # cleaned up when the process survives


def test_writes_replace_whole_files(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "b.txt", "first, longer text\n")
    atomic_write_text(path, "second\n")
    assert path.read_text() == "second\n" and hidden_temps(path.parent) == []
    with atomic_writer(path, "w") as f:
        f.write("caf\u00e9\n")
    assert path.read_bytes() == "caf\u00e9\n".encode("utf-8")
    with pytest.raises(ValueError):
        with atomic_writer(path, "ab"):
            pass


def test_an_interrupted_download_keeps_its_part_file_to_resume(tmp_path):
    target = tmp_path / "archive.tar"
    with pytest.raises(ConnectionError):
        with resumable_writer(target) as f:
            f.write(b"first half")
            raise ConnectionError("dropped")
    assert not target.exists() and (tmp_path / "archive.tar.part").read_bytes() == b"first half"
    with resumable_writer(target, resume=True) as f:
        f.write(b", second half")
    assert target.read_bytes() == b"first half, second half"
    assert not (tmp_path / "archive.tar.part").exists()


# --- permissions ----------------------------------------------------------------------------

@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda m: f"umask{m:03o}")
def under_umask(request):
    with umask(request.param):
        yield request.param


def test_current_umask(under_umask):
    assert current_umask() == under_umask


def test_helpers_respect_the_umask(tmp_path, under_umask):
    expected = 0o666 & ~under_umask
    paths = [atomic_write_bytes(tmp_path / "b.bin", b"1"),
             atomic_write_text(tmp_path / "t.txt", "1"),
             atomic_write_json(tmp_path / "sub" / "j.json", [1])]
    with resumable_writer(tmp_path / "d.zip") as f:
        f.write(b"1")
    paths.append(tmp_path / "d.zip")
    for path in paths:
        assert mode(path) == expected, path
    assert mode(tmp_path / "sub") == 0o777 & ~under_umask


def test_every_project_writer_respects_the_umask(tmp_path, under_umask, make_cfg,
                                                 fresh_caltech_root):
    """results.json, checkpoints and their pointer, few-shot caches and the image memo,
    novel-class lists, the demo's data and tiny CLIP."""
    import torch
    from dassl.utils import torchtools

    import sar_prompt  # noqa: F401  (patches Dassl's save_checkpoint)
    from sar_prompt.orchestration import demo
    from sar_prompt.dassl_glue.results_json import write_run_result
    from sar_prompt.datasets import Caltech101
    from sar_prompt.novel import build, facts

    expected = 0o666 & ~under_umask
    cfg = make_cfg("CoOp", root=fresh_caltech_root, output=tmp_path / "run")
    written = [write_run_result(cfg, 50.0, 1)]

    save_dir = tmp_path / "run" / "prompt_learner"
    torchtools.save_checkpoint({"state_dict": {"ctx": torch.zeros(2)}, "epoch": 1},
                               str(save_dir), is_best=True)
    written += [save_dir / "model.pth.tar-1", save_dir / "checkpoint",
                save_dir / "model-best.pth.tar"]

    Caltech101(cfg)  # few-shot sampling writes its cache, the image check its memo
    fewshot = sorted((fresh_caltech_root / "caltech-101" / "split_fewshot").iterdir())
    assert len(fewshot) >= 2
    written += fewshot

    result, _ = build.make_list(facts.dataset_facts("caltech101"), ["tiger", "lion"],
                                {"source": "manual", "description": "test"})
    written.append(build.write_list(result, tmp_path / "novel.json").path)

    written.append(demo.write_tiny_clip(tmp_path / "clip.pt", seed=0))
    demo.prepare(tmp_path / "demo_data")
    written += [p for p in (tmp_path / "demo_data").rglob("*") if p.is_file()]

    for path in written:
        assert mode(path) == expected, f"{path}: {oct(mode(path))}"


def test_unpacked_archives_respect_the_umask(tmp_path, under_umask):
    from sar_prompt.data.download import extract

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"hello"
        info = tarfile.TarInfo("top/file.txt")
        info.size, info.mode = len(data), 0o644
        t.addfile(info, io.BytesIO(data))
    archive = tmp_path / "a.tar"
    archive.write_bytes(buf.getvalue())
    extract(archive, tmp_path / "out")
    assert mode(tmp_path / "out" / "top" / "file.txt") == 0o644 & ~under_umask


def test_no_writer_bypasses_sar_prompt_io():
    """Files are written only through sar_prompt/io.py (or into an in-memory buffer first)."""
    import re

    repo = Path(__file__).resolve().parent.parent
    direct = re.compile(r"""\bopen\([^)]*["'][wax]b?["']|\.write_text\(|\.write_bytes\(|"""
                        r"""\bjson\.dump\(|\btorch\.save\((?!.*,\s*(buf|buffer|f)\)\s*$)""")
    # Not files we keep whole: a console log appended line by line as a run goes (like
    # Dassl's log.txt), and the null device.
    streams = {("sar_prompt/orchestration/runner.py", "CONSOLE_FILE"), ("sar_prompt/runs/progress.py", "devnull")}
    offenders = []
    for folder in ("sar_prompt", "trainers", "datasets"):
        for path in sorted((repo / folder).rglob("*.py")):
            rel = path.relative_to(repo).as_posix()
            if rel == "sar_prompt/io.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if direct.search(line) and not any(rel == f and mark in line
                                                   for f, mark in streams):
                    offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []


def test_a_failed_write_names_the_file_and_leaves_nothing(tmp_path):
    """write() errors carry no file name: the target's is added (the message names it)."""
    import errno

    target = tmp_path / "table.md"

    with pytest.raises(OSError) as err:
        with atomic_writer(target, "w") as f:
            f.write("x")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_folder(tmp_path):
    sio.check_writable_folder(tmp_path / "new" / "folder")
    assert list((tmp_path / "new" / "folder").iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as err:
        sio.check_writable_folder(tmp_path / "file" / "sub")
    assert err.value.filename.startswith(str(tmp_path / "file"))


def test_a_folder_written_whole_replaces_the_old_one_or_nothing(tmp_path, under_umask):
    """atomic_folder: the new folder appears in one rename, with mkdir's permissions; a
    block that raises leaves the old folder as it was and no hidden folder behind."""
    target = tmp_path / "world"
    with sio.atomic_folder(target) as work:
        sio.write_unpublished(work / "a" / "one.txt", b"1")
        assert not target.exists()
    assert (target / "a" / "one.txt").read_bytes() == b"1"
    assert mode(target) == 0o777 & ~under_umask
    with pytest.raises(RuntimeError):
        with sio.atomic_folder(target) as work:
            sio.write_unpublished(work / "two.txt", b"2")
            raise RuntimeError("stopped")
    with sio.atomic_folder(target) as work:
        sio.write_unpublished(work / "three.txt", b"3")
    assert [p.name for p in target.iterdir()] == ["three.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]
