"""Registering our trainers and datasets with Dassl, whichever is imported first.

Drop-in into a host suite takes two lines (`import sar_prompt`, `sar_prompt.extend_cfg(cfg)`),
so `import sar_prompt` must register the trainers and datasets. Registration needs Dassl
(and so torch and torchvision), which take seconds to import, and the Dassl-free tools
(`results`, `novel`, `data`) must not pay for it. Hence: if Dassl is already imported,
`import sar_prompt` registers at once; otherwise a finder on sys.meta_path waits for the
`dassl` package to be imported and registers right after it (`install()`); and
`register()` does it explicitly. It is all this module does; the patches for current
PyTorch are compat.py's, the tolerance of a host suite's own names registry.py's.
"""
import importlib.abc
import importlib.util
import sys

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

    registers_sar_prompt = True  # what finds Dassl without importing it passes this one by

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


def install():
    """Register now if Dassl is imported, else as soon as it is (once)."""
    if "dassl" in sys.modules:
        register()
    elif DASSL_AVAILABLE and not any(isinstance(f, _RegisterWhenDasslLoads)
                                     for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenDasslLoads())
