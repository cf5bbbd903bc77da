"""sar-prompt: Similarity Alignment Regularization (SAR) for CLIP prompt tuning, as a
Dassl plugin.

    import sar_prompt               # patches Dassl for current PyTorch, registers
                                    # the trainers and datasets
    sar_prompt.extend_cfg(cfg)      # declares the config keys they read

Registration needs Dassl (and so torch and torchvision), which take seconds to import.
`import sar_prompt` therefore registers at once only when Dassl is already imported;
otherwise it registers the moment anything imports Dassl, so a host suite's train.py works
whichever it imports first, and the Dassl-free tools (`python -m sar_prompt.results`,
`.novel`, `.data --help`) never pay for it. `sar_prompt.register()` does it explicitly.
"""
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# Dassl imports wilds, whose import starts `outdated`'s check of wilds' own version in a
# background thread; that thread imports pkg_resources, whose deprecation warning would land
# in every run's output (console.txt) long after any import-time filter is gone. Only
# warnings issued from the `outdated` module are silenced: they never concern the run.
warnings.filterwarnings("ignore", module="outdated")

from sar_prompt.config import extend_cfg  # noqa: E402

DASSL_AVAILABLE = importlib.util.find_spec("dassl") is not None
_registered = False


def register():
    """Patch Dassl for current PyTorch and register our trainers and datasets (once)."""
    global _registered
    if _registered:
        return
    _registered = True
    from sar_prompt.dassl_glue import compat

    compat.apply()
    from sar_prompt import datasets, trainers  # noqa: F401  (registration needs the patched Dassl)
    from sar_prompt.dassl_glue.registry import report_kept

    report_kept()  # one line for the names a host suite registered first


class _RegisterWhenDasslLoads(importlib.abc.MetaPathFinder):
    """Runs `register()` right after the `dassl` package itself has been imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "dassl":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        sys.modules[module.__name__] = module  # submodule imports during register() need it
        register()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...
        return getattr(self.loader, name)


if "dassl" in sys.modules:
    register()
elif DASSL_AVAILABLE and not any(isinstance(f, _RegisterWhenDasslLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenDasslLoads())

__all__ = ["extend_cfg", "register", "DASSL_AVAILABLE", "__version__"]
