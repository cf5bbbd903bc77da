"""sar-prompt: Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a
Dassl plugin.

    import sar_prompt               # patches Dassl for current PyTorch, registers
                                    # the trainers and datasets
    sar_prompt.extend_cfg(cfg)      # declares the config keys they read

Registration needs Dassl, which takes seconds to import: it happens at once when Dassl
is already imported, else the moment anything imports it, so a host suite's train.py works
whichever it imports first (sar_prompt/dassl_glue/registration.py).
"""
import warnings

__version__ = "0.1.0"

# Dassl imports wilds, whose import starts `outdated`'s check of wilds' own version in a
# background thread; that thread imports pkg_resources, whose deprecation warning would land
# in every run's output (console.txt) long after any import-time filter is gone. Only
# warnings issued from the `outdated` module are silenced: they never concern the run.
warnings.filterwarnings("ignore", module="outdated")

from sar_prompt.config import extend_cfg  # noqa: E402
from sar_prompt.dassl_glue.registration import DASSL_AVAILABLE, install, register  # noqa: E402

install()

__all__ = ["extend_cfg", "register", "DASSL_AVAILABLE", "__version__"]
