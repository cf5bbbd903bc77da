"""The checkout shows the real import graph: trainers/ and datasets/ import the core as
`sar_prompt.*`, and the Dassl-free data tools never import the Dassl side."""
import ast
import subprocess
import sys

from conftest import REPO
from fixtures import write_dataset


def imports(path):
    """(level, module) of every import statement in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
    return out


def test_trainers_and_datasets_import_the_core_absolutely():
    files = sorted((REPO / "trainers").glob("*.py")) + sorted((REPO / "datasets").glob("*.py"))
    assert files
    for path in files:
        upward = [m for level, m in imports(path) if level > 1]
        assert not upward, f"{path.relative_to(REPO)} imports {upward} relative to the package"


def test_data_tools_never_import_the_dassl_side():
    forbidden = ("dassl", "torch", "sar_prompt.datasets", "sar_prompt.trainers")
    for path in sorted((REPO / "sar_prompt" / "data").glob("*.py")):
        for level, module in imports(path):
            name = module if level == 0 else f"sar_prompt.{module}" if level == 2 else module
            assert not name.startswith(forbidden), f"{path.relative_to(REPO)} imports {name}"


def test_doctor_imports_neither_dassl_nor_the_dassl_side(tmp_path):
    write_dataset("dtd", tmp_path)
    code = (
        "import sys\n"
        "from sar_prompt.data.doctor import check\n"
        f"report = check('dtd', {str(tmp_path)!r}, shots=1)\n"
        "assert report.ok, report.render()\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dassl', 'torch', 'clip')\n"
        "          or m.startswith(('sar_prompt.datasets', 'sar_prompt.trainers'))]\n"
        "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
