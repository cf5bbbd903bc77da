"""Offline sources (text file, CLIP's vocabulary, WordNet) and the `from-file`, `vocab`,
`wordnet` and `validate` commands of `python -m sar_prompt.novel`."""
import hashlib
import json
import re
import subprocess
import sys
import types

import pytest

from sar_prompt.errors import NovelClassesError
from sar_prompt.novel import default_path, load
from sar_prompt.novel.lists_cli import main
from sar_prompt.novel.sources import STOPWORDS, read_names_file, vocab_candidates, wordnet_names

# --- text file ------------------------------------------------------------------------------


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_from_file_writes_a_validated_list(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("\ufeff# tigers and friends\n\ntiger\n- Tiger\nface\nibis\n  lion  \n",
                     encoding="utf-8")
    out = tmp_path / "out.json"
    rc, text = run(capsys, "from-file", str(names), "--dataset", "caltech101", "--out", str(out))
    assert rc == 0, text
    result = load(out, "caltech101", "Caltech101")
    assert result.names == ["tiger", "ibis", "lion"]
    prov = result.provenance
    assert prov["source"] == "file" and prov["file"] == "names.txt" and prov["lines"] == 5
    assert prov["file_sha256"] == hashlib.sha256(names.read_bytes()).hexdigest()
    assert result.extra["audit"]["dropped"] == {"duplicate": ["- Tiger"], "base": ["face"]}
    assert result.extra["audit"]["new_overlap"]["names"] == ["ibis"]
    assert "caltech101: 3 kept of 5" in text and "held-out new classes in the list: ibis" in text

    before = out.read_bytes()
    rc, text = run(capsys, "from-file", str(names), "--dataset", "caltech101", "--out", str(out))
    assert rc == 2 and "exists; pass --force" in text and out.read_bytes() == before
    rc, text = run(capsys, "from-file", str(names), "--dataset", "caltech101", "--out", str(out),
                   "--force", "--exclude-new", "--source", "manual", "--description", "by hand")
    assert rc == 0, text
    result = load(out)
    assert result.names == ["tiger", "lion"] and result.provenance["source"] == "manual"
    assert result.provenance["description"] == "by hand"


def test_from_file_errors_name_the_file(tmp_path, capsys):
    out = str(tmp_path / "out.json")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    rc, text = run(capsys, "from-file", str(bad), "--dataset", "dtd", "--out", out)
    assert rc == 2 and str(bad) in text and "UTF-8" in text
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    rc, text = run(capsys, "from-file", str(empty), "--dataset", "dtd", "--out", out)
    assert rc == 2 and str(empty) in text and "no names" in text
    rc, text = run(capsys, "from-file", str(tmp_path / "nope.txt"), "--dataset", "dtd",
                   "--out", out)
    assert rc == 2 and "nope.txt: no such file" in text
    only_base = tmp_path / "base.txt"
    only_base.write_text("banded\nblotchy\n")
    rc, text = run(capsys, "from-file", str(only_base), "--dataset", "dtd", "--out", out)
    assert rc == 2 and "no name is left after validation" in text
    good = tmp_path / "good.txt"
    good.write_text("plaid\n")
    rc, text = run(capsys, "from-file", str(good), "--dataset", "dtd", "--out", out,
                   "--source", "manual")
    assert rc == 2 and "--description" in text
    rc, text = run(capsys, "from-file", str(good), "--dataset", "mnist", "--out", out)
    assert rc == 2 and "unknown dataset key 'mnist'" in text
    assert not (tmp_path / "out.json").exists()


def test_read_names_file_skips_comments_and_blank_lines(tmp_path):
    path = tmp_path / "n.txt"
    path.write_text("a\n\n  # b\nc\n")
    names, details = read_names_file(path)
    assert names == ["a", "c"] and details["lines"] == 2


# --- CLIP vocabulary ------------------------------------------------------------------------

def test_vocab_filter():
    words = vocab_candidates()
    assert len(words) > 10000 and len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]{4,12}", w) and re.search(r"[aeiou]", w) for w in words)
    assert not set(words) & STOPWORDS
    assert "tiger" in words and "guitar" in words
    assert "tion" not in words and "ffice" not in words  # word-final fragments


def test_vocab_command_is_deterministic_per_seed(tmp_path, capsys):
    def make(folder, seed):
        rc, text = run(capsys, "vocab", "--dataset", "dtd", "--dataset", "eurosat",
                       "--num-names", "30", "--seed", str(seed), "--out-dir", str(folder))
        assert rc == 0, text
        return {k: load(folder / f"{k}.json", k) for k in ("dtd", "eurosat")}

    first, again, other = make(tmp_path / "a", 1), make(tmp_path / "b", 1), make(tmp_path / "c", 2)
    words = set(vocab_candidates())
    for key in ("dtd", "eurosat"):
        assert len(first[key].names) == 30 and set(first[key].names) <= words
        assert first[key].names == again[key].names != other[key].names
        prov = first[key].provenance
        assert prov["source"] == "vocab" and prov["seed"] == 1 and prov["num_names"] == 30
        assert "whole-word tokens" in prov["filter"] and len(prov["vocabulary_sha256"]) == 64
    # the two datasets draw from the same shuffled words
    assert first["dtd"].names[:5] == first["eurosat"].names[:5]


def test_vocab_all_keeps_existing_files(tmp_path, capsys):
    rc, text = run(capsys, "vocab", "--all", "--num-names", "5", "--out-dir", str(tmp_path))
    assert rc == 0, text
    files = sorted(p.name for p in tmp_path.glob("*.json"))
    assert len(files) == 11 and "[11/11] ucf101: 5 kept of" in text
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    rc, text = run(capsys, "vocab", "--all", "--num-names", "7", "--out-dir", str(tmp_path))
    assert rc == 0 and text.count("exists, kept (--force replaces it)") == 11
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == mtimes


def test_tools_write_to_the_working_directory_never_into_the_package(tmp_path, monkeypatch,
                                                                      capsys):
    """Without --out-dir / --out, lists go to ./novel_classes/ of the working directory; the
    shipped lists (what the trainers read) stay as they are."""
    shipped = {p.name: p.read_bytes() for p in default_path("dtd").parent.glob("*.json")}
    monkeypatch.chdir(tmp_path)
    rc, text = run(capsys, "vocab", "--dataset", "dtd", "--num-names", "5")
    assert rc == 0, text
    assert load(tmp_path / "novel_classes" / "dtd.json", "dtd").provenance["source"] == "vocab"
    names = tmp_path / "names.txt"
    names.write_text("tiger\nlion\n")
    rc, text = run(capsys, "from-file", str(names), "--dataset", "eurosat")
    assert rc == 0, text
    assert load(tmp_path / "novel_classes" / "eurosat.json", "eurosat").names == ["tiger", "lion"]
    assert {p.name: p.read_bytes() for p in default_path("dtd").parent.glob("*.json")} == shipped
    help_text = subprocess.run([sys.executable, "-m", "sar_prompt.novel", "vocab", "--help"],
                               capture_output=True, text=True).stdout
    assert "novel_classes/ in the working directory" in " ".join(help_text.split())
    assert "TRAINER.SAR.NOVEL_FILE" in help_text


# --- WordNet --------------------------------------------------------------------------------

class Synset:
    def __init__(self, name, hypernyms=()):
        self.name, self._hypernyms, self._hyponyms = name, list(hypernyms), []
        for h in self._hypernyms:
            h._hyponyms.append(self)

    def lemma_names(self):
        return [self.name, self.name + "_alias"]

    def hypernyms(self):
        return self._hypernyms

    def hyponyms(self):
        return self._hyponyms


class FakeWordNet:
    NOUN = "n"

    def __init__(self, table, data_installed=True):
        self.table, self.data_installed = table, data_installed

    def ensure_loaded(self):
        if not self.data_installed:
            raise LookupError("Resource wordnet not found.")

    def synsets(self, lemma, pos=None):
        assert pos == self.NOUN
        return self.table.get(lemma.lower(), [])

    def get_version(self):
        return "3.0"


def install_fake_nltk(monkeypatch, wordnet):
    nltk = types.ModuleType("nltk")
    nltk.__version__ = "0.0-test"
    corpus = types.ModuleType("nltk.corpus")
    corpus.wordnet = wordnet
    nltk.corpus = corpus
    monkeypatch.setitem(sys.modules, "nltk", nltk)
    monkeypatch.setitem(sys.modules, "nltk.corpus", corpus)


def shapes_wordnet():
    """The demo dataset's classes ('red circle', ...) as a tiny noun hierarchy."""
    shape = Synset("shape")
    circle = Synset("circle", [shape])
    red_circle = Synset("red_circle", [circle])
    for name in ("crimson_circle", "scarlet_circle", "orange_triangle", "blue_square"):
        Synset(name, [circle])  # siblings of red_circle: one new class, one base class
    Synset("ruby_circle", [red_circle])  # a kind of red circle
    Synset("hexagon", [shape])  # not reached: only siblings and kinds are taken
    return FakeWordNet({"red_circle": [red_circle]})


def test_wordnet_takes_siblings_and_kinds_of_base_classes(monkeypatch, tmp_path, capsys):
    install_fake_nltk(monkeypatch, shapes_wordnet())
    names, details = wordnet_names(["red circle", "blue square"], seed=0)
    assert sorted(names) == ["blue square", "crimson circle", "orange triangle", "ruby circle",
                             "scarlet circle"]
    assert details["base_classes_found"] == 1 and details["wordnet_version"] == "3.0"
    assert wordnet_names(["red circle"], seed=0)[0] == wordnet_names(["red circle"], seed=0)[0]

    rc, text = run(capsys, "wordnet", "--dataset", "demo", "--out-dir", str(tmp_path))
    assert rc == 0, text
    result = load(tmp_path / "demo.json", "demo", "SARDemo")
    assert sorted(result.names) == ["crimson circle", "orange triangle", "ruby circle",
                                    "scarlet circle"]
    assert result.extra["audit"]["dropped"] == {"base": ["blue square"]}
    assert result.extra["audit"]["new_overlap"]["names"] == ["orange triangle"]
    prov = result.provenance
    assert prov["source"] == "wordnet" and prov["nltk_version"] == "0.0-test"
    assert "hypernyms" in prov["method"]


def test_wordnet_unavailable_is_a_clear_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "nltk", None)  # import nltk fails
    rc, text = run(capsys, "wordnet", "--dataset", "demo", "--out-dir", str(tmp_path))
    assert rc == 2 and "nltk is not installed" in text and "vocab" in text

    install_fake_nltk(monkeypatch, FakeWordNet({}, data_installed=False))
    rc, text = run(capsys, "wordnet", "--dataset", "demo", "--out-dir", str(tmp_path))
    assert rc == 2 and "WordNet data was not found" in text
    assert "python -m nltk.downloader wordnet" in text

    install_fake_nltk(monkeypatch, FakeWordNet({}))
    with pytest.raises(NovelClassesError, match="knows none of the 2 base class names"):
        wordnet_names(["red circle", "blue square"], seed=0)
    assert not list(tmp_path.iterdir())


# --- validate -------------------------------------------------------------------------------

def test_validate_reports_problems_per_file(tmp_path, capsys):
    shipped = default_path("caltech101")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "schema": "sar-prompt/novel-classes", "version": 1, "dataset": "Caltech101",
        "novel_classes": ["tiger", "face", "ibis", " ".join(["ox"] * 60)],
        "provenance": {"source": "manual", "description": "test"},
        "audit": {"new_overlap": {"policy": "excluded", "count": 0, "names": []}}}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    host = tmp_path / "host.json"
    host.write_text(json.dumps({
        "schema": "sar-prompt/novel-classes", "version": 1, "dataset": "MyHostDataset",
        "novel_classes": ["tiger"], "provenance": {"source": "manual", "description": "t"}}))
    rc, text = run(capsys, "validate", str(shipped), str(bad), str(broken), str(host))
    assert rc == 2
    assert f"{shipped}: OK: 163 names (manual)" in text
    assert f"{bad}: PROBLEMS" in text and "1 base (training) classes: face" in text
    assert "1 names do not fit CLIP's 77 tokens" in text
    assert "the audit says new classes were excluded, but 1 are in the list: ibis" in text
    assert f"{broken}: INVALID" in text and "not valid JSON" in text
    assert f"{host}: 1 names (manual) for MyHostDataset" in text and "schema only" in text
    assert "2 of 4 file(s) have problems." in text


def test_module_entry_point_validates_every_shipped_list():
    files = [str(default_path(k)) for k in ("caltech101", "demo", "imagenet", "eurosat")]
    done = subprocess.run([sys.executable, "-m", "sar_prompt.novel", "validate", *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK: ") == 4
