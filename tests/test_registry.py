import subprocess
import sys
import textwrap

import sar_prompt  # noqa: F401
from dassl.utils import Registry
from sar_prompt.registry import register


def test_host_first_keeps_host_object_and_says_so_once(capsys):
    registry = Registry("TEST")

    @registry.register()
    class CoOp:  # the host suite's
        pass

    class Ours:
        pass

    Ours.__name__ = "CoOp"
    register(registry, Ours)
    register(registry, Ours)
    assert registry.get("CoOp") is CoOp
    out = capsys.readouterr().out
    assert out.count("keeping the host's") == 1


def test_ours_first_then_host_registers_without_crash(capsys):
    registry = Registry("TEST2")

    class Ours:
        pass

    Ours.__name__ = "Caltech101"
    register(registry, Ours)
    register(registry, Ours)  # idempotent

    @registry.register()
    class Caltech101:  # a host suite imported after sar_prompt
        pass

    assert registry.get("Caltech101") is Caltech101
    assert "replaces sar_prompt's" in capsys.readouterr().out


def test_a_genuine_duplicate_between_host_classes_still_fails():
    import pytest

    registry = Registry("TEST3")

    @registry.register()
    class A:
        pass

    with pytest.raises(KeyError):
        registry.register(type("A", (), {}))


def test_sar_trainers_build_on_our_classes():
    from sar_prompt.trainers import CoOp, CoOpSAR, KgCoOp, KgCoOpSAR, SARMixin

    assert issubclass(CoOpSAR, CoOp) and issubclass(KgCoOpSAR, KgCoOp)
    assert issubclass(CoOpSAR, SARMixin) and issubclass(KgCoOp, CoOp)


def test_in_a_host_suite_both_import_orders_work():
    """A CoOp-style suite registering its own CoOp and Caltech101, before or after us."""
    host = textwrap.dedent("""
        from dassl.engine import TRAINER_REGISTRY, TrainerX
        from dassl.data.datasets import DATASET_REGISTRY, DatasetBase

        @TRAINER_REGISTRY.register()
        class CoOp(TrainerX):
            pass

        @DATASET_REGISTRY.register()
        class Caltech101(DatasetBase):
            pass
    """)
    check = textwrap.dedent("""
        import sys
        from dassl.engine import TRAINER_REGISTRY
        from dassl.data.datasets import DATASET_REGISTRY
        import sar_prompt.trainers as ours
        assert TRAINER_REGISTRY.get("CoOp").__module__ == "host", TRAINER_REGISTRY.get("CoOp")
        assert DATASET_REGISTRY.get("Caltech101").__module__ == "host"
        assert TRAINER_REGISTRY.get("CoOpSAR") is ours.CoOpSAR
        assert issubclass(ours.CoOpSAR, ours.CoOp) and ours.CoOp is not TRAINER_REGISTRY.get("CoOp")
        print("OK")
    """)
    define_host = (f"import sys, types\nsys.modules['host'] = types.ModuleType('host')\n"
                   f"exec(compile({host!r}, 'host', 'exec'), sys.modules['host'].__dict__)\n")
    for first, second in ((define_host, "import sar_prompt\n"),
                          ("import sar_prompt\n", define_host)):
        code = first + second + check
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "OK" in proc.stdout
        assert "sar_prompt" in proc.stdout  # the conflict is reported in the log
