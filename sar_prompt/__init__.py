"""sar-prompt: Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a
Dassl plugin.

    import sar_prompt               # patches Dassl for current PyTorch, registers
                                    # the trainers and datasets
    sar_prompt.extend_cfg(cfg)      # declares the config keys they read

Without Dassl installed, the Dassl-free tools (`sar_prompt.novel`, `.demo`, `.results`,
the SAR component) still import; the trainers and datasets need Dassl.
"""
__version__ = "0.1.0"

from .config import extend_cfg

try:
    import dassl  # noqa: F401
except ModuleNotFoundError as _exc:
    if _exc.name != "dassl":
        raise
    DASSL_AVAILABLE = False
else:
    DASSL_AVAILABLE = True
    from . import compat as _compat

    _compat.apply()
    from . import datasets, trainers  # noqa: F401  (registration needs the patched Dassl)
    from .registry import report_kept as _report_kept

    _report_kept()  # one line for the names a host suite registered first

__all__ = ["extend_cfg", "DASSL_AVAILABLE", "__version__"]
