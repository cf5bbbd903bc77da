"""sar-prompt: Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a
Dassl plugin.

    import sar_prompt               # patches Dassl for current PyTorch, registers
                                    # the trainers and datasets
    sar_prompt.extend_cfg(cfg)      # declares the config keys they read

Registration needs Dassl, which takes seconds to import: it happens at once when Dassl
is already imported, else the moment anything imports it, so a host suite's train.py works
whichever it imports first (sar_prompt/dassl_glue/registration.py).
"""
import importlib.util
import os.path
import warnings

__version__ = "0.1.0"

# Dassl imports wilds, whose import starts `outdated`'s check of wilds' own version in a
# background thread; that thread imports pkg_resources, whose deprecation warning would land
# in every run's output (console.txt) long after any import-time filter is gone. Only
# warnings issued from the `outdated` module are silenced: they never concern the run.
warnings.filterwarnings("ignore", module="outdated")

# A checkout's sar_prompt/ lacks the subpackages that installing maps into it (trainers/,
# configs/, ...): imported from a checkout's root without an editable install, it shadows
# the installed package and would fail later, obscurely.
if importlib.util.find_spec("sar_prompt.configs") is None:
    raise ImportError(
        f"sar_prompt is being imported from the source folder {__path__[0]}, which is not "
        "installed: its trainers/, datasets/ and configs/ are missing. Install it (pip install "
        f"-e {os.path.dirname(__path__[0])}) or run from another directory so the installed "
        "copy is used.")

from sar_prompt.config import extend_cfg  # noqa: E402
from sar_prompt.dassl_glue.registration import DASSL_AVAILABLE, install, register  # noqa: E402

install()

__all__ = ["extend_cfg", "register", "DASSL_AVAILABLE", "__version__"]
