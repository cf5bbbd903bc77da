"""`import sar_prompt` and the command-line tools stay light: Dassl (with torch, torchvision,
scikit-learn) is imported only by what needs it, and registration follows it whichever of
the two a host suite imports first."""
import subprocess
import sys

import pytest

HEAVY = ("dassl", "torchvision", "sklearn")

REGISTERED = """
from dassl.engine import TRAINER_REGISTRY
from dassl.data.datasets import DATASET_REGISTRY
from dassl.optim import lr_scheduler
assert {"CoOp", "CoOpSAR", "KgCoOpSAR"} <= set(TRAINER_REGISTRY.registered_names())
assert "Caltech101" in DATASET_REGISTRY.registered_names()
assert lr_scheduler._BaseWarmupScheduler._sar_prompt_patched
"""


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def imported_modules(*args):
    """Top-level modules a `python -X importtime ARGS` run imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_import_alone_loads_no_dassl_or_torch():
    proc = python("import sys, sar_prompt\n"
                  "assert not {'dassl', 'torch'} & set(sys.modules), sorted(sys.modules)")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("order", [
    "import sar_prompt\nimport dassl.engine",  # the plugin first: registers when Dassl loads
    "import dassl.engine\nimport sar_prompt",  # Dassl first: registers at once
    "import sar_prompt.trainers",
    "from sar_prompt.datasets import by_key",
])
def test_registration_whichever_is_imported_first(order):
    proc = python(order + "\n" + REGISTERED)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("tool", [["sar_prompt.results", "--help"],
                                  ["sar_prompt.results.diagnose", "--help"],
                                  ["sar_prompt.orchestration.bench", "--help"],
                                  ["sar_prompt.novel", "validate", "--help"],
                                  ["sar_prompt.data", "check", "--help"]])
def test_tools_import_no_heavy_framework(tool):
    heavy = imported_modules("-m", *tool) & set(HEAVY)
    assert not heavy, f"python -m {' '.join(tool)} imported {sorted(heavy)}"
