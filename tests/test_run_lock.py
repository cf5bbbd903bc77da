"""One writer per run folder: a second one is refused with the holder named, a lock left by a
killed process is taken over, and a runner's child inherits its parent's lock."""
import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from sar_prompt.runs import lock as run_lock

HOLD = textwrap.dedent("""
    import sys
    from sar_prompt.runs import lock as run_lock
    lock = run_lock.acquire(sys.argv[1], command=["holder", "--of", sys.argv[1]])
    print("locked", flush=True)
    sys.stdin.read()  # hold it until the test closes stdin (or kills us)
""")


def holder_process(folder):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    folder = tmp_path / "seed1"
    proc = holder_process(folder)
    try:
        with pytest.raises(run_lock.RunBusy) as busy:
            run_lock.acquire(folder)
        text = str(busy.value)
        assert f"pid {proc.pid}" in text and "holder --of" in text and " since " in text
        assert run_lock.holder(folder)["pid"] == proc.pid
    finally:
        proc.stdin.close()
        proc.wait()
    assert run_lock.holder(folder) is None  # let go of cleanly: free, and not stale
    log = io.StringIO()
    with run_lock.acquire(folder, log=log) as lock:
        assert lock.took_over is None and run_lock.holder(folder)["pid"] == os.getpid()
    assert log.getvalue() == ""


def test_a_killed_holders_lock_is_taken_over_and_said_so(tmp_path):
    folder = tmp_path / "seed1"
    proc = holder_process(folder)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (folder / run_lock.LOCK_FILE).read_text()  # its note is still there
    assert run_lock.holder(folder) is None            # but the kernel dropped the lock
    log = io.StringIO()
    lock = run_lock.acquire(folder, log=log)
    try:
        assert lock.took_over["pid"] == proc.pid
        assert "taking over a stale lock" in log.getvalue() and f"pid {proc.pid}" in log.getvalue()
    finally:
        lock.release()


CHILD = textwrap.dedent("""
    import sys
    from sar_prompt.runs import lock as run_lock
    try:
        lock = run_lock.acquire(sys.argv[1])
    except run_lock.RunBusy as exc:
        print(exc)
        sys.exit(3)
    print("inherited" if lock.inherited else "own")
""")


def test_the_child_of_the_holder_inherits_its_lock_and_no_one_else_does(tmp_path):
    folder = tmp_path / "seed1"
    with run_lock.acquire(folder) as lock:
        with pytest.raises(run_lock.RunBusy, match="this process"):
            run_lock.acquire(folder)  # the same process twice: refused too
        env = dict(os.environ, **run_lock.handoff_env(lock))
        child = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env,
                               capture_output=True, text=True)
        assert (child.returncode, child.stdout.strip()) == (0, "inherited"), child.stderr
        stranger = subprocess.run([sys.executable, "-c", CHILD, str(folder)],
                                  capture_output=True, text=True)
        assert stranger.returncode == 3 and f"pid {os.getpid()}" in stranger.stdout
        forged = dict(os.environ, **{run_lock.HANDOFF_ENV: f"{lock.path}:1"})  # not its parent
        forged_child = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=forged,
                                      capture_output=True, text=True)
        assert forged_child.returncode == 3
