"""Bad novel-class files stop with a message that names the file and how to fix it."""
import json

import pytest

from sar_prompt import novel
from sar_prompt.errors import NovelClassesError


def write(tmp_path, obj, name="list.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def doc(**overrides):
    base = {"schema": "sar-prompt/novel-classes", "version": 1, "dataset": "Caltech101",
            "novel_classes": ["tiger", "hot air balloon"],
            "provenance": {"source": "manual", "description": "test list"}}
    base.update(overrides)
    return base


def error_for(path, **kw):
    with pytest.raises(NovelClassesError) as err:
        novel.load(path, "caltech101", **kw)
    assert str(path) in str(err.value)
    return str(err.value)


def test_valid_file_loads(tmp_path):
    result = novel.load(write(tmp_path, doc()), "caltech101", "Caltech101")
    assert result.names == ["tiger", "hot air balloon"] and result.provenance["source"] == "manual"


def test_missing_file_names_the_command_that_makes_it(tmp_path):
    msg = error_for(tmp_path / "nope.json")
    assert "sar-prompt novel" in msg and "--dataset caltech101" in msg


def test_not_json_reports_line_and_column(tmp_path):
    msg = error_for(write(tmp_path, '{"novel_classes": ["a",\n ]'))
    assert "not valid JSON" in msg and "line 2" in msg


def test_empty_list(tmp_path):
    assert "empty" in error_for(write(tmp_path, doc(novel_classes=[])))


def test_duplicates_ignore_case_space_and_underscore(tmp_path):
    msg = error_for(write(tmp_path, doc(novel_classes=["Hot Air Balloon", "tiger", "hot_air  balloon"])))
    assert "duplicate" in msg and "Hot Air Balloon" in msg


@pytest.mark.parametrize("bad", [["tiger", 3], ["tiger", "  "], ["tab\there"]])
def test_bad_entries(tmp_path, bad):
    assert "novel_classes[" in error_for(write(tmp_path, doc(novel_classes=bad)))


def test_schema_and_provenance_required(tmp_path):
    assert "schema" in error_for(write(tmp_path, doc(schema="other")))
    assert "provenance" in error_for(write(tmp_path, doc(provenance={"source": "manual"})))
    assert "'dataset'" in error_for(write(tmp_path, {k: v for k, v in doc().items() if k != "dataset"}))


def test_list_for_another_dataset(tmp_path):
    msg = error_for(write(tmp_path, doc(dataset="OxfordPets")), dataset_name="Caltech101")
    assert "OxfordPets" in msg and "TRAINER.SAR.NOVEL_FILE" in msg


def test_shipped_lists_are_valid_and_claim_gpt4o_only_with_an_api_record():
    for path in sorted(novel.shipped_dir().glob("*.json")):
        result = novel.load(path, path.stem)
        claims = json.dumps({k: v for k, v in result.provenance.items()
                             if k != "description"}).lower()
        if "gpt" in claims:  # only the API step writes this, with what it sent and got back
            assert "usage" in claims, f"{path} names GPT without the API's usage record"
