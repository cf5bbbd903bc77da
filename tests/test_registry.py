import subprocess
import sys
import textwrap

import sar_prompt  # noqa: F401
from dassl.utils import Registry
from sar_prompt.dassl_glue.registry import register


def test_host_first_keeps_host_object_and_records_it_once(capsys):
    from sar_prompt.dassl_glue.registry import CONFLICTS

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
    assert CONFLICTS["kept"].count('TEST "CoOp"') == 1
    assert capsys.readouterr().out == ""  # said once, by import sar_prompt, for all names


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
    from sar_prompt.dassl_glue.registry import CONFLICTS

    assert 'TEST2 "Caltech101"' in CONFLICTS["replaced"]


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
        said = [line for line in proc.stdout.splitlines() if line.startswith("[sar_prompt]")]
        assert len(said) == 1, said  # one line, however many names collide
        assert 'TRAINER "CoOp"' in said[0]
        if first is define_host:  # all names the host held are listed
            assert 'DATASET "Caltech101"' in said[0] and "keeping the host's" in said[0]
        else:  # the host registers over ours later, name by name: the first is named
            assert "the host's replace sar_prompt's" in said[0]


def test_a_host_suite_with_every_name_taken_gets_one_line():
    """A suite that registers all of our trainer and dataset names before importing us."""
    code = textwrap.dedent("""
        from dassl.engine import TRAINER_REGISTRY, TrainerX
        from dassl.data.datasets import DATASET_REGISTRY, DatasetBase
        for name in ("CoOp", "KgCoOp", "CoOpSAR", "KgCoOpSAR"):
            TRAINER_REGISTRY.register(type(name, (TrainerX,), {}))
        for name in ("ImageNet", "Caltech101", "OxfordPets", "StanfordCars", "OxfordFlowers",
                     "Food101", "FGVCAircraft", "SUN397", "DescribableTextures", "EuroSAT",
                     "UCF101"):
            DATASET_REGISTRY.register(type(name, (DatasetBase,), {}))
        import sar_prompt
        from sar_prompt.dassl_glue.registry import CONFLICTS
        print("KEPT", len(CONFLICTS["kept"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stdout.splitlines() if line.startswith("[sar_prompt]")]
    assert "KEPT 15" in proc.stdout and len(said) == 1
    assert "15 name(s)" in said[0] and "keeping the host's" in said[0]
