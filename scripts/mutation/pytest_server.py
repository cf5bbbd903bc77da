"""A forking pytest server for mutation runs: torch, CLIP and matplotlib are imported once,
and each mutant's tests run in a fresh fork of that process, so a mutant costs its tests and
not seconds of imports. The fork imports sar_prompt and trainers from disk (the server never
does), so it runs the file mutmut has just mutated.

    python pytest_server.py serve SOCKET          # scripts/mutation.sh starts and stops it
    python pytest_server.py run SOCKET ARGS...    # pytest ARGS in a fork; exits with its code

`run` falls back to a plain `python -m pytest ARGS` when no server answers on SOCKET.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys

PRELOAD = ("numpy", "torch", "torchvision", "PIL.Image", "yacs.config", "clip",
           "matplotlib", "pytest")


def _forked_pytest(request):
    """In the fork: the client's directory and environment, output discarded, pytest's code."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    code = 3
    try:
        import pytest

        sys.argv = ["pytest", *request["args"]]
        code = int(pytest.main(request["args"]))
    finally:
        os._exit(code)


_running = []  # the fork running tests now, stopped with the server


def _stop(signum, frame):
    for pid in _running:
        for kill in (os.killpg, os.kill):  # its group, or itself before it made one
            try:
                kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    sys.exit(0)


def _run_one(conn):
    request = json.loads(conn.makefile("r").readline())
    pid = os.fork()
    if pid == 0:
        _forked_pytest(request)
    _running[:] = [pid]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            return
        readable, _, _ = select.select([conn], [], [], 0.1)
        if readable and not conn.recv(1):  # the client was stopped (mutmut's timeout)
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return


def serve(path):
    sys.dont_write_bytecode = True   # a mutant and the original may share mtime and size
    signal.signal(signal.SIGTERM, _stop)
    for name in PRELOAD:
        __import__(name)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".tmp")
    server.listen(1)
    os.replace(path + ".tmp", path)  # the socket appears only once it is listening
    while True:
        conn, _ = server.accept()
        with conn:
            _run_one(conn)


def run(path, args):
    request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
    except OSError:
        return subprocess.call([sys.executable, "-m", "pytest", *args])
    parent = os.getppid()
    with client:
        client.sendall((json.dumps(request) + "\n").encode())
        client.settimeout(0.5)
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                chunk = client.recv(64)
            except TimeoutError:
                # mutmut's timeout stops the shell that started this client, not the client:
                # going away closes the socket, and the server stops the tests
                if os.getppid() != parent:
                    return 3
                continue
            if not chunk:
                break
            answer += chunk
    return int(answer) if answer.strip() else 3


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3:]))
    else:
        sys.exit(__doc__)
