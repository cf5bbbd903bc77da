"""Image verification that stays affordable on tens of thousands of files.

The default check opens each file with PIL, which parses the header only (format, size),
and reads the file's last KiB for the format's end marker (JPEG EOI, PNG IEND), which is
what an interrupted download or copy loses. `deep=True` decodes every pixel instead, as
training will; it is slower by about the cost of one epoch of loading.

Files are checked in a thread pool (the work is I/O), and a memo of checked sets lets a
set that passed before, unchanged since (same paths, sizes and modification times), skip
the check: the test images of one half are verified once for all seeds and methods.
"""
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

from sar_prompt.io import atomic_write_json

TAIL_BYTES = 1024
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b"\x3b"}
MEMO_VERSION = 1
MEMO_MAX_SETS = 256


def check_image(path, deep=False):
    """None when the file is a readable image, else why it is not (a short phrase)."""
    from PIL import Image, UnidentifiedImageError

    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                fmt = im.format
                if deep:
                    im.load()
        if not deep and fmt in END_MARKERS:
            with open(path, "rb") as f:
                f.seek(max(0, size - TAIL_BYTES))
                if END_MARKERS[fmt] not in f.read():
                    return f"truncated ({fmt} data ends early, {size} bytes)"
        return None
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            head = f.read(64).lstrip().lower()
        if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{", b"<")):
            return "not an image but a web page or text (a failed download?)"
        return "not an image PIL can identify"
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's decoding errors
        return f"unreadable ({exc})"


def _workers(n):
    return 1 if n < 64 else min(16, 2 * (os.cpu_count() or 1))


def verify(paths, deep=False, memo_path=None):
    """[(path, reason)] for the files in `paths` that are not readable images. With
    `memo_path`, a set that passed (at this depth or deeper) and has not changed is
    not opened again, and a set that passes is remembered there."""
    paths = sorted(set(str(p) for p in paths))
    key = _set_digest(paths) if memo_path else None
    memo = _read_memo(memo_path) if memo_path else {}
    if key and memo.get(key) in (("deep",) if deep else ("deep", "shallow")):
        return []
    with ThreadPoolExecutor(_workers(len(paths))) as pool:
        reasons = list(pool.map(lambda p: check_image(p, deep), paths))
    bad = [(p, r) for p, r in zip(paths, reasons) if r]
    if key and not bad:
        memo[key] = "deep" if deep else memo.get(key, "shallow")
        _write_memo(memo_path, memo)
    return bad


def _set_digest(paths):
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def _read_memo(path):
    try:
        data = json.loads(open(path, encoding="utf-8").read())
        if data.get("version") == MEMO_VERSION and isinstance(data.get("sets"), dict):
            return data["sets"]
    except (OSError, ValueError, AttributeError):
        pass
    return {}


def _write_memo(path, sets):
    items = list(sets.items())[-MEMO_MAX_SETS:]  # newest last: dicts keep insertion order
    try:
        atomic_write_json(path, {"version": MEMO_VERSION, "sets": dict(items)}, indent=None)
    except OSError:  # a read-only data folder: no memo, checks just run each time
        pass
