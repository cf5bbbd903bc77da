"""scripts/mutation/mutmut_config.py names, for every file it mutates, tests that exist; its
targets cover the method code and the results package (a new file is never left out)."""
import glob
import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER_SCRIPT = REPO / "scripts" / "mutation" / "pytest_server.py"


@pytest.fixture
def config(monkeypatch):
    monkeypatch.chdir(REPO)  # the config globs paths relative to the checkout
    spec = importlib.util.spec_from_file_location(
        "mutmut_config", REPO / "scripts" / "mutation" / "mutmut_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_mutated_file_has_tests_that_exist(config):
    files = config.target("all")
    assert files
    for path in files:
        assert os.path.isfile(path), path
        tests = config.tests_for(path)
        named = tests[:tests.index("-k")] if "-k" in tests else tests
        assert named, path
        for test in named:
            assert (REPO / test).is_file(), f"{path}: {test} does not exist"


def test_the_named_test_lists_are_only_for_files_that_exist(config):
    for path in config.TESTS:
        assert os.path.isfile(path), f"TESTS names {path}, which does not exist"


def test_the_targets_cover_the_method_and_results_code(config):
    every = set(config.target("all"))
    expected = {p for p in glob.glob("trainers/*.py") + glob.glob("sar_prompt/modeling/*.py")
                + glob.glob("sar_prompt/results/*.py") if not p.endswith(
                    ("__init__.py", "__main__.py"))} | {"sar_prompt/sar.py"}
    assert expected <= every, sorted(expected - every)


def test_the_step_functions_named_exist(config):
    for path, functions in config.STEPS.items():
        assert config.function_lines(path, functions), path


def test_a_file_outside_the_targets_is_refused(config):
    with pytest.raises(SystemExit, match="no tests are named"):
        config.tests_for("sar_prompt/cli.py")


def test_mutants_above_the_from_line_are_skipped(config, monkeypatch):
    from types import SimpleNamespace

    from mutmut import RelativeMutationID

    lines = (REPO / "sar_prompt/results/records.py").read_text(encoding="utf-8").split("\n")

    def hook(line):  # mutmut's context for a mutant on 1-based `line` of a results file
        mutation_id = RelativeMutationID(line=lines[line - 1], index=0, line_number=line - 1)
        context = SimpleNamespace(filename="sar_prompt/results/records.py",
                                  mutation_id=mutation_id, current_line_index=line - 1,
                                  skip=False,
                                  config=SimpleNamespace(test_command=None))
        config.pre_mutation(context)
        return context

    monkeypatch.setenv("SAR_MUTATION_TARGET", "results")
    assert not hook(1).skip and "tests/test_records.py" in hook(1).config.test_command
    monkeypatch.setenv("SAR_MUTATION_FROM_LINE", "99")
    assert hook(98).skip and not hook(99).skip and not hook(120).skip
    monkeypatch.setenv("SAR_MUTATION_TO_LINE", "110")
    assert hook(98).skip and not hook(99).skip and not hook(110).skip and hook(111).skip


def test_a_file_with_a_test_file_of_its_name_has_it_among_its_tests(config):
    """sar_prompt/modeling/gpa.py's mutants must run tests/test_gpa.py: the tests that
    check a file most closely are the ones named after it."""
    for path in config.target("all"):
        own = f"tests/test_{os.path.basename(path)}"
        if (REPO / own).is_file():
            assert own in config.tests_for(path), f"{path}: add {own} to its tests"


def _pytest_server(socket_path):
    import subprocess
    import sys
    import time

    server = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "serve", str(socket_path)])
    for _ in range(600):
        if socket_path.exists() or server.poll() is not None:
            break
        time.sleep(0.1)
    assert socket_path.exists(), "the pytest server did not start"
    return server


def test_each_run_of_the_pytest_server_imports_the_file_as_it_is_now(tmp_path):
    """The fork server runs every mutant in a fresh fork: a module edited after the server
    started is tested as edited, pytest's exit code comes back, and without a server the
    client runs pytest itself (same codes)."""
    import subprocess
    import sys

    (tmp_path / "under_test.py").write_text("VALUE = 1\n")
    (tmp_path / "test_value.py").write_text(
        "import under_test\n\ndef test_value():\n    assert under_test.VALUE == 1\n")
    client = [sys.executable, str(SERVER_SCRIPT), "run"]

    def run(socket_path):
        return subprocess.run([*client, str(socket_path), "-q", "-p", "no:cacheprovider",
                               "test_value.py"], cwd=tmp_path, capture_output=True,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).returncode

    socket_path = tmp_path / "pytest.sock"
    server = _pytest_server(socket_path)
    try:
        assert run(socket_path) == 0
        (tmp_path / "under_test.py").write_text("VALUE = 2\n")  # a mutant
        assert run(socket_path) == 1
        (tmp_path / "under_test.py").write_text("VALUE = 1\n")
        assert run(socket_path) == 0
    finally:
        server.kill()
        server.wait()
    assert run(tmp_path / "no-server.sock") == 0
    (tmp_path / "under_test.py").write_text("VALUE = 3\n")
    assert run(tmp_path / "no-server.sock") == 1


def test_the_tests_of_a_mutant_go_to_the_server_when_one_is_named(config, monkeypatch):
    assert "-m pytest -x -q" in config.command(["tests/test_gpa.py"])
    monkeypatch.setattr(config, "SERVER", "/tmp/x/pytest.sock")
    command = config.command(["tests/test_gpa.py"])
    assert "pytest_server.py run /tmp/x/pytest.sock -x -q" in command
    assert command.endswith("tests/test_gpa.py || exit 1'")


def test_mutants_of_the_text_argparse_shows_people_are_skipped(config, monkeypatch):
    """A mutant inside a help, metavar or prog text is skipped; one of the same calls'
    other arguments (a dest, a default, a deprecated alias's preferred name) is tested."""
    from types import SimpleNamespace

    from mutmut import ALL, Context, mutate

    path = "sar_prompt/results/tables_cli.py"
    source = (REPO / path).read_text(encoding="utf-8")
    context = Context(source=source, filename=path, mutation_id=ALL)
    mutate(context)
    monkeypatch.setenv("SAR_MUTATION_TARGET", "results")

    def skipped(fragment):
        """{mutated line: skipped?} for the mutants of the lines holding `fragment`."""
        found = {}
        for mutation_id in context.performed_mutation_ids:
            if fragment in mutation_id.line:
                hook = SimpleNamespace(filename=path, mutation_id=mutation_id, skip=False,
                                       current_line_index=mutation_id.line_number,
                                       config=SimpleNamespace(test_command=None))
                config.pre_mutation(hook)
                mutated, _ = mutate(Context(source=source, filename=path,
                                            mutation_id=mutation_id))
                found[mutated.split("\n")[mutation_id.line_number].strip()] = hook.skip
        assert found, f"no mutant of a line with {fragment!r} in {path}"
        return found

    assert skipped('help="one trainer (default: the only one found)"') == {
        'p.add_argument("--trainer", help="XXone trainer (default: the only one found)XX")':
            True,
        'p.add_argument("XX--trainerXX", help="one trainer (default: the only one found)")':
            False}
    assert all(skipped('prog="python -m sar_prompt.results"').values())
    assert not any(skipped('preferred="--per-seed"').values())
    assert skipped('p.add_argument("--label", action="append", default=[]') == {
        'p.add_argument("XX--labelXX", action="append", default=[], metavar="TRAINER=TEXT",':
            False,
        'p.add_argument("--label", action="XXappendXX", default=[], metavar="TRAINER=TEXT",':
            False,
        'p.add_argument("--label", action="append", default=[], metavar="XXTRAINER=TEXTXX",':
            True}


def _gone(pid):
    import time

    for _ in range(300):  # within seconds
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, 9)
    return False


@pytest.mark.parametrize("stopped", ["runner", "server"])
def test_a_stopped_runner_or_server_stops_the_tests_it_ran(tmp_path, stopped):
    """mutmut's timeout kills the shell it started, not the client under it: the client
    notices, goes, and the server stops the tests it was running (else a mutant that loops
    forever would hold the server, and every later mutant, for good). A server stopped
    (the end of scripts/mutation.sh) stops them too."""
    import subprocess
    import sys
    import time

    (tmp_path / "test_forever.py").write_text(
        "import os, time\n\ndef test_forever():\n"
        "    open('pid', 'w').write(str(os.getpid()))\n    time.sleep(600)\n")
    socket_path = tmp_path / "pytest.sock"
    server = _pytest_server(socket_path)
    client = f"{sys.executable} {SERVER_SCRIPT} run"
    try:
        shell = subprocess.Popen(["bash", "-c", f"{client} {socket_path} -q -p no:cacheprovider "
                                  "test_forever.py || exit 1"], cwd=tmp_path)
        for _ in range(600):
            if (tmp_path / "pid").is_file() and (tmp_path / "pid").read_text():
                break
            time.sleep(0.1)
        tests = int((tmp_path / "pid").read_text())
        (shell if stopped == "runner" else server).terminate()
        assert _gone(tests), f"the tests of a stopped {stopped} still run"
        shell.kill()
        shell.wait()
    finally:
        server.kill()
        server.wait()
