"""The validation every novel-class source goes through (sar_prompt.novel.clean)."""
import pytest

from sar_prompt.modeling.tokens import token_count
from sar_prompt.novel import normalized
from sar_prompt.novel.clean import REASONS, clean, fits_clip, tidy

BASE = ["face", "leopard", "water_lilly", "St. Bernard"]
NEW = ["ibis", "sea_horse"]
TEMPLATE = "a photo of a {}."


@pytest.mark.parametrize("raw, tidied", [
    ("  hot   air balloon ", "hot air balloon"),
    ("- tiger", "tiger"), ("* tiger", "tiger"), ("12. tiger", "tiger"), ("3) tiger", "tiger"),
    ('"tiger"', "tiger"), ("\u201ctiger\u201d", "tiger"), ("tiger.", "tiger"), ("tiger,", "tiger"),
    ("snow_leopard", "snow leopard"),
    ("St. Bernard", "St. Bernard"), ("737-800", "737-800"), ("A300B4", "A300B4"),
    ("Cafe\u0301", "Caf\u00e9"),  # NFC
])
def test_tidy(raw, tidied):
    assert tidy(raw) == tidied


def test_normalized_ignores_case_accents_spaces_and_punctuation():
    assert normalized("St. Bernard") == normalized("st bernard") == normalized("St_Bernard")
    assert normalized("Caf\u00e9") == normalized("cafe")
    assert normalized("737-800") == normalized("737 800") != normalized("737-900")
    assert normalized("...") == ""


def test_each_rule_with_its_reason():
    raw = ["tiger", "TIGER!", "Leopard", "st bernard", "ibis", "sea horse", "bell\tbird",
           "zero\u200bwidth", "---", "x" * 201, 42, "  lion  "]
    out = clean(raw, BASE, NEW, TEMPLATE)
    assert out.names == ["tiger", "ibis", "sea horse", "lion"]
    assert out.received == len(raw)
    assert {k: v for k, v in out.dropped.items() if v} == {
        "duplicate": ["TIGER!"], "base": ["Leopard", "st bernard"],
        "non_printable": ["bell\tbird", "zero\u200bwidth"], "empty": ["---"],
        "too_many_chars": ["x" * 201], "not_text": ["42"]}
    assert out.new_overlap == ["ibis", "sea horse"]
    assert out.summary() == ("4 kept of 12 (8 dropped: 1 not a string, 2 non-printable "
                             "characters, 1 empty (no letter or digit), 1 over 200 characters, "
                             "1 duplicates (case and punctuation ignored), 2 base (training) "
                             "classes); 2 equal held-out new classes (kept)")
    assert set(out.dropped) == set(REASONS)


def test_exclude_new_drops_instead_of_counting():
    out = clean(["tiger", "Ibis", "sea-horse"], BASE, NEW, TEMPLATE, exclude_new=True)
    assert out.names == ["tiger"] and out.dropped["new"] == ["Ibis", "sea-horse"]
    assert out.new_overlap == []
    audit = out.audit("test list")
    assert audit["new_overlap"] == {"policy": "excluded", "count": 0, "names": []}
    assert audit["dropped"] == {"new": ["Ibis", "sea-horse"]} and audit["kept"] == 1


def test_token_limit_counts_the_learnable_prompt_with_16_context_tokens():
    # one word of many tokens ("ox", "-", "ox", ...): not dropped for its word count
    fits, too_long = "-".join(["ox"] * 29), "-".join(["ox"] * 30)
    assert token_count(fits) == 57 and token_count(too_long) == 59
    # "a photo of a <59 tokens>." is 66 tokens with start/end: the template alone would fit;
    # 16 context tokens + 59 + "." + start/end = 78 does not.
    assert token_count(TEMPLATE.format(too_long)) + 2 < 77
    assert fits_clip([fits, too_long], TEMPLATE) == {too_long: 78}
    out = clean([fits, too_long], BASE, NEW, TEMPLATE)
    assert out.names == [fits] and out.dropped["too_many_tokens"] == [too_long]


def test_token_limit_counts_the_dataset_template():
    name = " ".join(["ox"] * 40)
    assert fits_clip([name], TEMPLATE) == {}
    long_template = "{} " + " ".join(["word"] * 40) + "."
    assert list(fits_clip([name], long_template)) == [name]


def test_limit_keeps_the_first_n_that_pass():
    raw = ["face", "tiger", "-".join(["ox"] * 32), "lion", "tiger", "puma", "lynx"]
    out = clean(raw, BASE, NEW, TEMPLATE, limit=3)
    assert out.names == ["tiger", "lion", "puma"]
    assert out.received == 6  # "lynx" was never inspected
    assert out.dropped["base"] == ["face"] and out.dropped["duplicate"] == ["tiger"]
    assert len(out.dropped["too_many_tokens"]) == 1
