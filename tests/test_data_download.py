"""The downloader against fixture archives served on 127.0.0.1: the official
recipes (archive layout, nested archives, renamed folders) produce what the loaders read;
interrupted downloads resume or restart; bad checksums are refused; datasets without a
public link print their manual steps. No test touches the network beyond loopback."""
import dataclasses
import hashlib
import io
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fixtures import write_dataset
from sar_prompt.data import download as dl
from sar_prompt.data.doctor import check
from sar_prompt.errors import DataError


class Mirror:
    """Files by URL path, served with (or, `ranges=False`, without) HTTP Range support."""

    def __init__(self):
        self.files, self.ranges, self.requests = {}, True, []

    def handler(self):
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Range")))
                data = mirror.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and mirror.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def mirror():
    m = Mirror()
    server = ThreadingHTTPServer(("127.0.0.1", 0), m.handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    m.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield m
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def tar_gz(folder, arcname):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(folder, arcname=arcname)
    return buf.getvalue()


def zip_of(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def zip_folder(folder, arcname):
    return zip_of((f"{arcname}/{p.relative_to(folder).as_posix()}", p.read_bytes())
                  for p in sorted(Path(folder).rglob("*")) if p.is_file())


def publish(mirror, monkeypatch, key, archives, stage):
    """Serve `archives` {name: bytes} and the fixture's split file under /<key>/, with the
    recipe's checksums replaced by the fixtures'."""
    source = dl.SOURCES[key]
    resources = []
    for r in source.resources:
        if r.name in archives:
            data = archives[r.name]
            r = dataclasses.replace(r, md5=hashlib.md5(data).hexdigest(), size=len(data))
        else:
            data = next(stage.rglob(r.name)).read_bytes()
        mirror.files[f"/{key}/{r.name}"] = data
        resources.append(r)
    monkeypatch.setitem(dl.SOURCES, key, dataclasses.replace(source, resources=tuple(resources)))


def stage_archives(key, stage):
    """The official archive(s) of `key`, rebuilt from its fixture: same top folders."""
    write_dataset(key, stage)
    if key == "dtd":  # dtd-r1.0.1.tar.gz: dtd/images/<texture>/...
        return {"dtd-r1.0.1.tar.gz": tar_gz(stage / "dtd" / "images", "dtd/images")}
    if key == "eurosat":  # EuroSAT.zip: 2750/<class>/...
        return {"EuroSAT.zip": zip_folder(stage / "eurosat" / "2750", "2750")}
    if key == "caltech101":  # caltech-101.zip holding caltech-101/101_ObjectCategories.tar.gz
        inner = tar_gz(stage / "caltech-101" / "101_ObjectCategories", "101_ObjectCategories")
        return {"caltech-101.zip": zip_of([("caltech-101/101_ObjectCategories.tar.gz", inner),
                                           ("caltech-101/README", b"x")])}
    raise KeyError(key)


@pytest.mark.parametrize("key", ["dtd", "eurosat", "caltech101"])
def test_download_unpacks_into_the_loaders_layout(key, mirror, monkeypatch, tmp_path, capsys):
    archives = stage_archives(key, tmp_path / "stage")
    publish(mirror, monkeypatch, key, archives, tmp_path / "stage")
    root = tmp_path / "data"
    assert dl.download(key, root, mirror=mirror.url) == 0
    assert check(key, root, shots=1).ok
    out = capsys.readouterr().out
    assert "unpacking" in out and "  OK" in out and "NOT READY" not in out  # its own check
    leftovers = [p.name for p in root.rglob(".*")]
    assert leftovers == [], leftovers  # no .downloads, .part or .unpack-* left behind
    # a second run finds everything in place and fetches nothing
    n = len(mirror.requests)
    assert dl.download(key, root, mirror=mirror.url) == 0 and len(mirror.requests) == n


@pytest.mark.parametrize("ranges", [True, False])
def test_interrupted_download_resumes_or_restarts(ranges, mirror, monkeypatch, tmp_path):
    archives = stage_archives("dtd", tmp_path / "stage")
    publish(mirror, monkeypatch, "dtd", archives, tmp_path / "stage")
    mirror.ranges = ranges
    data = archives["dtd-r1.0.1.tar.gz"]
    part = tmp_path / "data" / "dtd" / ".downloads" / "dtd-r1.0.1.tar.gz.part"
    part.parent.mkdir(parents=True)
    half = len(data) // 2
    part.write_bytes(data[:half] if ranges else b"\0" * half)  # garbage: must be dropped
    (part.parent.parent / ".unpack-dtd-r1.0.1.tar.gz-killed" / "images").mkdir(parents=True)
    assert dl.download("dtd", tmp_path / "data", mirror=mirror.url) == 0
    asked = dict(mirror.requests)["/dtd/dtd-r1.0.1.tar.gz"]
    assert asked == f"bytes={half}-"
    assert check("dtd", tmp_path / "data").ok
    assert not list((tmp_path / "data" / "dtd").glob(".*"))  # the killed run's leftovers too


def test_checksum_mismatch_is_refused_and_leaves_no_file(mirror, monkeypatch, tmp_path):
    archives = stage_archives("dtd", tmp_path / "stage")
    publish(mirror, monkeypatch, "dtd", archives, tmp_path / "stage")
    mirror.files["/dtd/dtd-r1.0.1.tar.gz"] = archives["dtd-r1.0.1.tar.gz"][:-10] + b"0123456789"
    with pytest.raises(DataError, match=r"dtd-r1.0.1.tar.gz .* is MD5 [0-9a-f]+, expected"):
        dl.download("dtd", tmp_path / "data", mirror=mirror.url)
    dtd = tmp_path / "data" / "dtd"
    assert not (dtd / "images").exists()
    assert not (dtd / ".downloads" / "dtd-r1.0.1.tar.gz").exists()
    assert not (dtd / ".downloads" / "dtd-r1.0.1.tar.gz.part").exists()


def test_html_instead_of_a_split_file_is_refused(mirror, monkeypatch, tmp_path):
    archives = stage_archives("dtd", tmp_path / "stage")
    publish(mirror, monkeypatch, "dtd", archives, tmp_path / "stage")
    mirror.files["/dtd/split_zhou_DescribableTextures.json"] = b"<!DOCTYPE html><html>quota</html>"
    with pytest.raises(DataError, match="a web page, not the file"):
        dl.download("dtd", tmp_path / "data", mirror=mirror.url)
    assert not (tmp_path / "data" / "dtd" / "split_zhou_DescribableTextures.json").exists()


def test_unreachable_host_names_the_url_and_the_mirror_option(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"cannot connect to 127.0.0.1 .*unreachable.*--mirror.*"
                                        r"download http://127.0.0.1:9/dtd/"):
        dl.download("dtd", tmp_path, mirror="http://127.0.0.1:9")


def test_no_network_says_so_and_gives_the_manual_steps(tmp_path, monkeypatch, capsys):
    """Offline, `download` names the host and the way by hand, not a raw socket error."""
    import socket
    from urllib.error import URLError

    from sar_prompt.data.__main__ import main

    def offline(*args, **kwargs):
        raise URLError(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))

    monkeypatch.setattr(dl, "urlopen", offline)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    assert main(["download", "eurosat", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "network (or that host) is unreachable" in err and "cannot connect to " in err
    host = dl.urlsplit(dl.SOURCES["eurosat"].resources[0].url).hostname
    assert host and f"cannot connect to {host} " in err
    assert "docs/datasets.md" in err and "by hand" in err and "Traceback" not in err


@pytest.mark.parametrize("key,wanted", [("imagenet", "classnames.txt"),
                                        ("stanford_cars", "split_zhou_StanfordCars.json")])
def test_datasets_without_a_public_link_print_manual_steps(key, wanted, tmp_path, capsys):
    fetched = []

    def fake_fetch(resource, dest):  # stands in for Google Drive
        fetched.append(resource.name)
        dest.write_text('{"train": [], "val": [], "test": []}' if wanted.endswith(".json")
                        else "n01440764 tench\n")

    assert dl.download(key, tmp_path, fetch=fake_fetch) == 1
    out = capsys.readouterr().out
    assert fetched == [wanted] and (tmp_path / key / wanted).is_file()
    assert "manual steps remain" in out and f"sar-prompt data check {key} --data" in out


def test_every_benchmark_dataset_has_a_recipe():
    from sar_prompt.catalog import BENCHMARK, DOMAIN_SHIFT

    assert set(dl.SOURCES) == {d.key for d in BENCHMARK + DOMAIN_SHIFT}
    for key, source in dl.SOURCES.items():
        assert all(r.url or r.gdrive for r in source.resources), key


def test_no_network_for_google_drive_says_so_too(tmp_path, monkeypatch):
    import types

    def download(**kwargs):  # what requests raises offline: a ConnectionError, an OSError
        raise ConnectionError("Failed to establish a new connection: Name or service not known")

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download))
    with pytest.raises(DataError) as err:
        dl.gdrive_fetch("FILEID", tmp_path / ".downloads" / "split.json")
    msg = str(err.value)
    assert "cannot connect to drive.google.com" in msg and "unreachable" in msg
    assert "quota" not in msg and "https://drive.google.com/file/d/FILEID/view" in msg
