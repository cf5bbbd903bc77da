import hashlib
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from sar_prompt.errors import ConfigError, WeightsError
from sar_prompt.modeling import backbone


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_file_from_config_key(tiny_clip_path):
    model = backbone.load_clip("ignored-name", str(tiny_clip_path), "fp32")
    assert model.visual.input_resolution == 32
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_local_file_from_environment(tiny_clip_path, monkeypatch):
    monkeypatch.setenv(backbone.WEIGHTS_ENV, str(tiny_clip_path))
    assert backbone.resolve_weights("ViT-B/16") == tiny_clip_path
    monkeypatch.setenv(backbone.WEIGHTS_ENV, "/nowhere/clip.pt")
    with pytest.raises(WeightsError, match=backbone.WEIGHTS_ENV):
        backbone.resolve_weights("ViT-B/16")


def test_missing_config_file(tmp_path):
    with pytest.raises(WeightsError, match="MODEL.BACKBONE.PATH"):
        backbone.resolve_weights("ViT-B/16", str(tmp_path / "none.pt"))


def fake_model(monkeypatch, digest):
    models = backbone.import_clip().clip._MODELS
    monkeypatch.setitem(models, "Tiny/32", f"https://example.invalid/clip/{digest}/Tiny-32.pt")


def test_named_model_from_cache_works_offline(tiny_clip_path, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "Tiny-32.pt").write_bytes(tiny_clip_path.read_bytes())
    fake_model(monkeypatch, sha(tiny_clip_path))
    monkeypatch.setenv(backbone.CACHE_ENV, str(cache))
    monkeypatch.delenv(backbone.WEIGHTS_ENV, raising=False)

    def no_network(*a, **k):
        raise AssertionError("must not download a cached, verified file")

    monkeypatch.setattr(backbone, "_download", no_network)
    model = backbone.load_clip("Tiny/32")
    assert model.context_length == 77


def test_absent_weights_offline_fail_clearly(tmp_path, monkeypatch):
    fake_model(monkeypatch, "0" * 64)
    monkeypatch.setenv(backbone.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(backbone.WEIGHTS_ENV, raising=False)

    def offline(url, target, timeout=60.0):
        raise OSError("network is unreachable")

    monkeypatch.setattr(backbone, "_download", offline)
    with pytest.raises(WeightsError) as err:
        backbone.resolve_weights("Tiny/32")
    msg = str(err.value)
    for part in (str(tmp_path / "Tiny-32.pt"), "network is unreachable", "MODEL.BACKBONE.PATH",
                 backbone.WEIGHTS_ENV, "https://example.invalid"):
        assert part in msg


def test_download_is_atomic(tmp_path, monkeypatch):
    import urllib.request

    class Response:
        def __init__(self):
            self.chunks = [b"abc", OSError("connection reset")]

        def read(self, n=-1):
            item = self.chunks.pop(0)
            if isinstance(item, Exception):
                raise item
            return item

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response())
    target = tmp_path / "ViT.pt"
    with pytest.raises(OSError):
        backbone._download("https://example.invalid/x.pt", target)
    assert not target.exists()  # only the .part file holds the broken download


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="ViT-B/16"):
        backbone.resolve_weights("ViT-B/17")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "clip.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="Cannot read"):
        backbone.load_clip("x", str(bad))


def test_openai_torchscript_archive(tiny_clip_path, tmp_path):
    """OpenAI ships TorchScript archives; a traced tiny CLIP has the same format."""
    import warnings

    clip = backbone.import_clip()
    model = clip.model.build_model(torch.load(tiny_clip_path, weights_only=True)).float().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.zeros(1, 3, 32, 32), clip.tokenize(["a dog"])))
    archive = tmp_path / "tiny-jit.pt"
    traced.save(str(archive))
    loaded = backbone.load_clip("x", str(archive))
    ids = clip.tokenize(["a photo of a dog."])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(ids), model.encode_text(ids))


def test_clip_imports_without_pkg_resources(tmp_path):
    """setuptools 81+ has no pkg_resources; a stand-in is lent only for clip's import."""
    blocker = tmp_path / "pkg_resources"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('removed in setuptools 81')\n")
    code = textwrap.dedent("""
        import sys
        from sar_prompt.modeling.backbone import import_clip
        clip = import_clip()
        assert clip.tokenize(["a"]).shape == (1, 77)
        assert "pkg_resources" not in sys.modules
        print("OK")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr


def test_clip_imports_on_its_own_in_the_project_environment():
    """A host suite or script that imports `clip` before sar_prompt: sar-prompt's install
    pins setuptools below 81, whose pkg_resources openai-clip imports."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    pins = [Requirement(r) for r in requires("sar-prompt") if r.startswith("setuptools")]
    assert [str(p.specifier) for p in pins] == ["<81"]
    assert pins[0].specifier.contains(version("setuptools"))
    proc = subprocess.run([sys.executable, "-W", "ignore::UserWarning", "-c",
                           "import clip; print(clip.tokenize(['a']).shape)"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "[1, 77]" in proc.stdout, proc.stderr


def test_clip_import_is_silent_and_leaves_the_warning_filters_alone():
    """setuptools < 81 warns that pkg_resources is deprecated when clip imports it: silenced
    for that import only (even under -W always), so run folders hold no such noise."""
    code = textwrap.dedent("""
        import warnings
        from sar_prompt.modeling.backbone import import_clip
        import_clip()
        kept = [f for f in warnings.filters if f[1] is not None and "pkg_resources" in f[1].pattern]
        assert not kept, kept
        print("OK")
    """)
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
    assert "pkg_resources" not in proc.stderr, proc.stderr
