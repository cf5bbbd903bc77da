"""One process for all the runs of a job (a seed's training and its evaluations).

Starting Python with torch, Dassl and CLIP takes seconds, often longer than a small run
itself, so the runner starts one worker per job and hands it the job's runs one at a time:

    python -m sar_prompt.orchestration.worker [ENTRY]        # ENTRY: sar_prompt.train (default), or
                                                   # the path of a script with main(argv)

Each line the worker reads on stdin is a request, {"argv": [...], "env": {...}}: it calls
ENTRY's `main(argv)` with `env` added to the environment, then puts stdout, stderr and the
environment back as they were (Dassl's logger replaces sys.stdout) and answers on stdout
with one progress event, {"kind": "exit", "code": N}: N is what the run's own process would
have exited with. Every run seeds its random generators itself (train.py does), so a run
gives the same numbers here as in a process of its own (tests/test_runner.py checks this).
"""
import gc
import importlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

from sar_prompt.runs.progress import EVENT_PREFIX

DEFAULT_ENTRY = "sar_prompt.train"
EXIT_EVENT = "exit"


def load_entry(entry):
    """The `main` of a module name or of a script's path."""
    if entry.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(entry).stem, entry)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(Path(entry).resolve().parent))  # as `python SCRIPT` does
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(entry)
    return module.main


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter would show it
    return 1


def _close_log_file(stream):
    """Close the log file of a stream Dassl's logger put in place (not the console it tees
    to, which may be this process's stdout)."""
    file = getattr(stream, "file", None)
    if file is not None and hasattr(file, "close"):
        file.close()


def run_one(main, argv, env):
    """Run `main(argv)` as its own process would: its exit status (1 for an uncaught error,
    whose traceback goes where the process would have printed it)."""
    streams = sys.stdout, sys.stderr
    environ = dict(os.environ)
    os.environ.update(env)
    try:
        code = main(argv)
        return 0 if code is None else int(code)
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: B036  (a process would print it and exit 1)
        traceback.print_exc()
        return 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        if sys.stdout is not streams[0]:
            _close_log_file(sys.stdout)
        sys.stdout, sys.stderr = streams
        os.environ.clear()
        os.environ.update(environ)
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def serve(entry=DEFAULT_ENTRY, requests=None, answers=None):
    """Answer requests until stdin closes."""
    requests = requests or sys.stdin
    answers = answers or sys.stdout
    main = None
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if main is None:
            main = load_entry(entry)
        code = run_one(main, list(request["argv"]), dict(request.get("env", {})))
        answers.write(EVENT_PREFIX + json.dumps({"kind": EXIT_EVENT, "code": code}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve(*sys.argv[1:2])
