"""The downloader: fetch what has a public link, verify it, unpack it into the layout
the loaders expect, and print the manual steps for the rest.

Every file is fetched into <dataset>/.downloads/<name>.part and renamed when complete, so
an interrupted run leaves no file that looks finished; the next run resumes the .part
(HTTP Range) or restarts it when the server cannot resume. Archives are unpacked into a
temporary folder beside the dataset and their contents renamed into place, so a dataset
folder never holds half an archive. A resource whose result is already there is skipped.

Official hosts move, and Google Drive rate-limits: `--mirror URL` (or the environment
variable SAR_PROMPT_DATA_MIRROR) fetches every file as <URL>/<dataset key>/<file name>
over plain HTTP instead, which is also how the tests serve fixture archives.
"""
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from sar_prompt.errors import DataError
from sar_prompt.io import (atomic_write_bytes, current_umask, loads_json, partial_path,
                           resumable_writer)

MIRROR_ENV = "SAR_PROMPT_DATA_MIRROR"
DOWNLOADS = ".downloads"
CHUNK = 1 << 20
TIMEOUT_S = 60
GDRIVE_VIEW = "https://drive.google.com/file/d/{}/view"


@dataclass(frozen=True)
class Resource:
    """One file to fetch. `creates` (relative to the dataset folder, default `name`) is
    what exists once it is in place; an archive's `take` is the folder inside it whose
    contents belong in the dataset folder, `inner` an archive inside it to unpack instead;
    `copy_from` (relative to the data root) is copied instead of fetched when it exists."""
    name: str
    url: str = ""
    gdrive: str = ""
    md5: str = ""
    size: int = 0
    unpack: bool = False
    take: str = ""
    inner: str = ""
    creates: str = ""
    copy_from: str = ""  # a file under the data root used instead, when there (ImageNet's)


@dataclass(frozen=True)
class Source:
    resources: tuple = ()
    manual: tuple = ()  # steps printed for what has no public link


def _split(gdrive_id, name):
    return Resource(name, gdrive=gdrive_id)


IMAGENET_STEPS = (
    "ImageNet has no public download link: register at https://image-net.org, download "
    "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar.",
    "Extract the training set to {dataset}/images/train/ (one folder per class, n01440764/ ...; "
    "the train archive holds one .tar per class to extract in turn).",
    "Extract the validation set to {dataset}/images/val/ and sort its 50,000 images into the "
    "same class folders (e.g. with the widely used valprep.sh).",
    "Or link an existing copy: ln -s /path/to/train {dataset}/images/train (and val).",
)
CARS_STEPS = (
    "Stanford Cars' original links (ai.stanford.edu/~jkrause/car196) are gone. Get "
    "cars_train/, cars_test/, devkit/ and cars_test_annos_withlabels.mat from a copy you "
    "trust (e.g. the Kaggle mirror of the dataset) and put them in {dataset}/.",
)
SKETCH_STEPS = (
    "ImageNet-Sketch is shared through Google Drive and Kaggle (see "
    "https://github.com/HaohanWang/ImageNet-Sketch): download ImageNet-Sketch.zip and unpack it.",
    "Move its sketch/ folder (1,000 class folders n01440764/ ...) to {dataset}/images/.",
)
# The variants ship no class names; the CoOp family copies ImageNet's classnames.txt.
IMAGENET_CLASSNAMES = Resource("classnames.txt", gdrive="1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF",
                               copy_from="imagenet/classnames.txt")
HENDRYCKS = "https://people.eecs.berkeley.edu/~hendrycks/"

SOURCES = {
    "imagenet": Source((_split("1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF", "classnames.txt"),),
                       manual=IMAGENET_STEPS),
    "caltech101": Source((
        Resource("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/"
                 "caltech-101.zip", md5="3138e1922a9193bfa496528edbbc45d0", unpack=True,
                 inner="caltech-101/101_ObjectCategories.tar.gz", creates="101_ObjectCategories"),
        _split("1hyarUivQE36mY6jSomru6Fjd-JzwcCzN", "split_zhou_Caltech101.json"))),
    "oxford_pets": Source((
        Resource("images.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                 md5="5c4f3ee8e5d25df40f4fd59a7f44e54c", unpack=True, creates="images"),
        Resource("annotations.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
                 "annotations.tar.gz", md5="95a8c909bbe2e81eed6a22bccdf3f68f", unpack=True,
                 creates="annotations"),
        _split("1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs", "split_zhou_OxfordPets.json"))),
    "stanford_cars": Source((_split("1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
                                    "split_zhou_StanfordCars.json"),), manual=CARS_STEPS),
    "oxford_flowers": Source((
        Resource("102flowers.tgz", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
                 md5="52808999861908f626f3c1f4e79d11fa", unpack=True, creates="jpg"),
        Resource("imagelabels.mat", "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
                 "imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"),
        _split("1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0", "cat_to_name.json"),
        _split("1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT", "split_zhou_OxfordFlowers.json"))),
    "food101": Source((
        Resource("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                 md5="85eeb15f3717b99a5da872d97d918f87", unpack=True, take="food-101",
                 creates="images"),
        _split("1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl", "split_zhou_Food101.json"))),
    "fgvc_aircraft": Source((
        Resource("fgvc-aircraft-2013b.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/"
                 "fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz", unpack=True,
                 take="fgvc-aircraft-2013b/data", creates="images"),)),
    "sun397": Source((
        Resource("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
                 md5="8ca2778205c41d23104230ba66911c7a", unpack=True, creates="SUN397"),
        _split("1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq", "split_zhou_SUN397.json"))),
    "dtd": Source((
        Resource("dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/"
                 "dtd-r1.0.1.tar.gz", md5="fff73e5086ae6bdbea199a49dfb8a4c1", unpack=True,
                 take="dtd", creates="images"),
        _split("1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x", "split_zhou_DescribableTextures.json"))),
    # CoOp's link (madm.dfki.de) is gone; this is the same EuroSAT.zip (2750/) as torchvision uses.
    "eurosat": Source((
        Resource("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                 "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                 md5="c8fa014336c82ac7804f0398fcb19387", unpack=True, creates="2750"),
        _split("1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o", "split_zhou_EuroSAT.json"))),
    "ucf101": Source((
        Resource("UCF-101-midframes.zip", gdrive="10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O",
                 unpack=True, creates="UCF-101-midframes"),
        _split("1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y", "split_zhou_UCF101.json"))),
    # ImageNet's test-only variants (domain generalisation), from their authors' hosts
    "imagenetv2": Source((
        Resource("imagenetv2-matched-frequency.tar.gz", "https://s3-us-west-2.amazonaws.com/"
                 "imagenetv2public/imagenetv2-matched-frequency.tar.gz", unpack=True,
                 creates="imagenetv2-matched-frequency-format-val"),
        IMAGENET_CLASSNAMES)),
    "imagenet_sketch": Source((IMAGENET_CLASSNAMES,), manual=SKETCH_STEPS),
    "imagenet_a": Source((Resource("imagenet-a.tar", HENDRYCKS + "imagenet-a.tar", unpack=True,
                                   creates="imagenet-a"), IMAGENET_CLASSNAMES)),
    "imagenet_r": Source((Resource("imagenet-r.tar", HENDRYCKS + "imagenet-r.tar", unpack=True,
                                   creates="imagenet-r"), IMAGENET_CLASSNAMES)),
}


# -- fetching ----------------------------------------------------------------------------
def http_fetch(url, dest, log=print):
    """Fetch `url` to `dest` via dest.part, resuming a .part left by an interrupted run."""
    part = partial_path(dest)
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "sar-prompt"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as exc:
        if exc.code == 416 and have:  # the .part already holds the whole file
            os.replace(part, dest)
            return
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}. The host may have moved the "
                        f"file: fetch it by hand into {dest}, or use --mirror.") from exc
    except (URLError, OSError) as exc:
        raise DataError(unreachable(url, dest, getattr(exc, "reason", exc))) from exc
    with resp:
        resumed = have and resp.status == 206 and \
            resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        if have and not resumed:
            log(f"  {url} cannot resume: starting {dest.name} again")
            have = 0
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total else None
        done, last = have, time.monotonic()
        with resumable_writer(dest, resume=resumed) as f:  # kept as .part if this raises
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                if time.monotonic() - last > 5:
                    last = time.monotonic()
                    log(f"  {dest.name}: {done >> 20} MiB" + (f" of {total >> 20} MiB" if total else ""))
            if total is not None and done != total:
                raise DataError(f"{url}: the connection closed after {done} of {total} bytes. "
                                "Run the same command again to resume.")


def unreachable(url, dest, reason):
    """The message for a download that could not connect at all (no network, DNS, proxy)."""
    host = urlsplit(url).hostname or url
    return (f"cannot connect to {host} to fetch {dest.name} ({reason}): the network (or that "
            "host) is unreachable. Check this machine's connection (or proxy) and run the same "
            "command "
            f"again; or use --mirror URL (${MIRROR_ENV}); or, by hand, download {url} on a "
            f"machine with internet, copy it to {dest} and run the same command again: it "
            "checks and unpacks the file (the manual steps: docs/datasets.md).")


def gdrive_fetch(file_id, dest, log=print):
    """Fetch a Google Drive file with gdown (which keeps and resumes its own .part)."""
    try:
        import gdown
    except ImportError:
        raise DataError(f"gdown is needed for {dest.name} (pip install gdown), or download "
                        f"{GDRIVE_VIEW.format(file_id)} by hand into {dest}.") from None
    try:
        out = gdown.download(id=file_id, output=str(dest), quiet=False, resume=True)
    except OSError as exc:  # requests' connection errors are OSErrors: no network
        raise DataError(unreachable(GDRIVE_VIEW.format(file_id), dest, exc)) from exc
    except Exception as exc:  # gdown raises its own types for quota and permission pages
        out = None
        log(f"  gdown: {exc}")
    if not out or not dest.is_file():
        raise DataError(f"Google Drive refused {dest.name} (often a daily quota). Download "
                        f"{GDRIVE_VIEW.format(file_id)} by hand into {dest.parent.parent}, "
                        "or try again later.")


def default_fetch(resource, dest, mirror="", key="", log=print):
    if mirror:
        return http_fetch(f"{mirror.rstrip('/')}/{key}/{resource.name}", dest, log)
    if resource.gdrive:
        return gdrive_fetch(resource.gdrive, dest, log)
    return http_fetch(resource.url, dest, log)


# -- verifying ----------------------------------------------------------------------------
def _md5(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(resource, path):
    """None when `path` is what `resource` should be, else why not."""
    size = path.stat().st_size
    if resource.size and size != resource.size:
        return f"{size} bytes, expected {resource.size}"
    if resource.md5:
        got = _md5(path)
        if got != resource.md5:
            return f"MD5 {got}, expected {resource.md5}"
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "a web page, not the file (a quota or login page)"
    name = resource.name
    if name.endswith(".json"):
        try:
            loads_json(path.read_text(encoding="utf-8"))  # a key given twice is refused too
        except (ValueError, UnicodeDecodeError) as exc:
            return f"not valid JSON ({exc})"
    if resource.unpack and not (zipfile.is_zipfile(path) if name.endswith(".zip")
                                else tarfile.is_tarfile(path)):
        return "not a readable archive"
    return None


# -- unpacking ----------------------------------------------------------------------------
def _safe_members(names, archive):
    for n in names:
        p = PurePosixPath(n)
        if p.is_absolute() or ".." in p.parts:
            raise DataError(f"{archive} holds an unsafe path ({n}); not unpacking it.")


def _data_filter_with_umask(umask):
    """tarfile's "data" filter (no links out, no special files, no setuid), and file modes
    less the umask, as `tar` gives a user who is not root."""
    def keep(member, dest_path):
        member = tarfile.data_filter(member, dest_path)
        if member is not None and member.mode is not None:
            member = member.replace(mode=member.mode & ~umask, deep=False)
        return member

    return keep


def extract(archive, into):
    archive = Path(archive)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            _safe_members(z.namelist(), archive)
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            _safe_members(t.getnames(), archive)
            if hasattr(tarfile, "data_filter"):
                t.extractall(into, filter=_data_filter_with_umask(current_umask()))
            else:  # Python < 3.11.4: paths were checked above
                t.extractall(into)


def unpack(resource, archive, dataset_path):
    """Unpack into a temporary folder beside the dataset, then rename into place."""
    dataset_path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".unpack-{resource.name}-", dir=dataset_path))
    try:
        extract(archive, tmp)
        top = tmp
        if resource.inner:
            inner = tmp / resource.inner
            if not inner.is_file():
                raise DataError(f"{archive} has no {resource.inner}; the host changed it.")
            top = tmp / ".inner"
            extract(inner, top)
        src = top / resource.take if resource.take else top
        if not src.is_dir():
            raise DataError(f"{archive} has no folder {resource.take}; the host changed it.")
        for child in sorted(src.iterdir()):
            if child.name == ".inner":
                continue
            target = dataset_path / child.name
            if target.exists():
                continue  # already in place (from an earlier run or another archive)
            os.replace(child, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- the command ----------------------------------------------------------------------------
def download(name, root, mirror="", keep_archives=False, fetch=None, log=print):
    """Fetch, verify and unpack dataset `name` under `root`; 0 when complete, 1 when manual
    steps remain. `fetch(resource, dest)` replaces the network (tests)."""
    from sar_prompt.data.doctor import check
    from sar_prompt.data.layouts import files_for

    ds = files_for(name)(root)
    key = ds.catalog_key
    source = SOURCES.get(key)
    if source is None:
        raise DataError(f"no download recipe for {key}; see docs/datasets.md.")
    mirror = mirror or os.environ.get(MIRROR_ENV, "")
    fetch = fetch or (lambda r, dest: default_fetch(r, dest, mirror, key, log))
    downloads = ds.dataset_path / DOWNLOADS
    for stale in ds.dataset_path.glob(".unpack-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    for r in source.resources:
        final = ds.dataset_path / (r.creates or r.name)
        if final.exists():
            log(f"[{key}] {final} is there; skipping {r.name}")
            continue
        sibling = ds.root / r.copy_from if r.copy_from else None
        if sibling is not None and sibling.is_file():
            log(f"[{key}] copying {sibling} to {final}")
            atomic_write_bytes(final, sibling.read_bytes())
            continue
        downloads.mkdir(parents=True, exist_ok=True)
        got = downloads / r.name
        why = verify(r, got) if got.is_file() else "absent"
        if why != "absent":
            log(f"[{key}] {got} is there" + (f" but {why}: fetching it again" if why else ""))
        if why:
            got.unlink(missing_ok=True)
            log(f"[{key}] fetching {r.name}")
            fetch(r, got)
            why = verify(r, got)
            if why:
                got.unlink()
                raise DataError(f"{r.name} from {mirror or r.url or GDRIVE_VIEW.format(r.gdrive)} "
                                f"is {why}; deleted it. Run again; if it persists, the host "
                                "changed the file: fetch it by hand (docs/datasets.md).")
        if r.unpack:
            log(f"[{key}] unpacking {r.name}")
            unpack(r, got, ds.dataset_path)
            if not keep_archives:
                got.unlink()
        else:
            os.replace(got, final)
        if not (ds.dataset_path / (r.creates or r.name)).exists():
            raise DataError(f"{r.name} did not produce {final}; the host changed the archive. "
                            "See docs/datasets.md for the expected layout.")
    try:
        downloads.rmdir()
    except OSError:
        pass
    if source.manual:
        log(f"[{key}] manual steps remain:")
        for i, step in enumerate(source.manual, 1):
            log(f"  {i}. {step.format(dataset=ds.dataset_path)}")
        log(f"  Then run: sar-prompt data check {key} --data {ds.root}")
        return 1
    report = check(key, root)
    log(report.render())
    return 0 if report.ok else 1
