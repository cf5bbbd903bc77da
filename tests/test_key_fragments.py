"""No 8 characters in a row of the API key reach the terminal or a file: not through a bad
server answer cut short, not as a key prefix or fragment a model answers as a class name,
not in the provenance, the audit or a retry message. A realistic 128-character key."""
import json
import random
import string

import pytest

from sar_prompt.novel.redact import FRAGMENT, Secrets
from test_novel_generate import (Reply, completion, fake_openai_servers, generate,
                                 names_answer)

KEY = "sk-proj-" + "".join(random.Random(25).choices(string.ascii_letters + string.digits,
                                                     k=120))
assert len(KEY) == 128


def fragments_shown(text):
    """The FRAGMENT-character runs of KEY that `text` holds."""
    return sorted({KEY[i:i + FRAGMENT] for i in range(len(KEY) - FRAGMENT + 1)
                   if KEY[i:i + FRAGMENT] in text})


def everything_written(folder):
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture
def serve(monkeypatch):
    yield from fake_openai_servers(monkeypatch, KEY)


def filler(n):
    return "x" * n


SCRIPTS = {
    # an error message holding the whole key after 50 characters (cut at 80 before)
    "client error": lambda n, body: Reply(400, {"error": {"message": filler(50) + KEY}}),
    "server error": lambda n, body: Reply(500, {"error": {"message": filler(50) + KEY}}),
    "quota": lambda n, body: Reply(429, {"error": {"message": filler(50) + KEY,
                                                   "code": "insufficient_quota"}}),
    # a body that is not a chat completion, holding the key
    "not a completion": lambda n, body: Reply(raw=json.dumps(filler(50) + KEY).encode()),
    # a completion whose content is not the asked JSON
    "not json": lambda n, body: Reply(content=filler(50) + KEY),
    "wrong json": lambda n, body: Reply(content=json.dumps({"names": [filler(40) + KEY]})),
    "refusal": lambda n, body: Reply(raw=json.dumps({**completion(None), "choices": [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": None, "refusal": KEY[:40]}}]}).encode()),
}


@pytest.mark.parametrize("case", list(SCRIPTS))
def test_a_bad_answer_never_shows_part_of_the_key(serve, tmp_path, capsys, case):
    server = serve(SCRIPTS[case])
    rc, out = generate(capsys, server, tmp_path / "out", "--dataset", "caltech101",
                       "--retries", "1")
    assert rc == 2, out
    assert "[OPENAI_API_KEY]" in out or case == "refusal", out
    assert fragments_shown(out) == [], out
    assert fragments_shown(everything_written(tmp_path)) == []


def test_key_prefixes_and_fragments_in_an_answer_are_dropped_everywhere(serve, tmp_path,
                                                                         capsys):
    answer = ["tiger", KEY[:12], f"wild {KEY[40:60]} cat", KEY[70:79], {"nested": KEY},
              [KEY[:30]], "lion"]
    body = completion(names_answer(answer), model=f"gpt-4o {KEY[:20]}")
    body["id"], body["system_fingerprint"] = KEY[8:30], "fp_" + KEY[50:70]
    server = serve(lambda n, request: Reply(raw=json.dumps(body).encode()))
    rc, out = generate(capsys, server, tmp_path, "--dataset", "caltech101")
    assert rc == 0, out
    written = (tmp_path / "caltech101.json").read_text()
    data = json.loads(written)
    assert data["novel_classes"] == ["tiger", "lion"]
    assert data["audit"]["dropped"]["secret"] == ["[redacted]"] * 3
    assert data["audit"]["dropped"]["not_text"] == ["[redacted]"] * 2
    assert fragments_shown(written) == [] and fragments_shown(out) == []
    assert fragments_shown(everything_written(tmp_path)) == []


def test_redaction_masks_every_run_of_eight_and_nothing_else():
    secrets = Secrets([KEY], mask="#")
    assert secrets.redact(f"a {KEY[:8]} b {KEY[60:75]} c {KEY[90:97]} d") == \
        f"a # b # c {KEY[90:97]} d"  # 7 characters are not a fragment
    assert secrets.redact(KEY[:40] + KEY[41:80]) == "#"  # two runs side by side: one mask
    assert secrets.redact("tiger") == "tiger" and not secrets.holds("tiger")
    short = Secrets(["abc"], mask="#")  # a secret shorter than 8: only whole
    assert short.redact("xabcx ab") == "x#x ab"
    assert Secrets([]).redact(KEY) == KEY
