"""The schema and loader, and the novel-class lists shipped in novel_classes/."""
import json

import pytest

from sar_prompt import classnames
from sar_prompt.catalog import BENCHMARK
from sar_prompt.errors import NovelClassesError
from sar_prompt.novel import SCHEMA, VERSION, default_path, load, normalized, validate
from sar_prompt.novel.build import check_file
from sar_prompt.novel.llm import PROMPT_VERSION, build_messages, load_template
from sar_prompt.novel.facts import DOMAINS, all_keys, dataset_facts

# sha256 of prompts/novel_classes_v1.txt. Lists record the template version; editing the file
# without a new version would make two different prompts claim the same one.
PROMPT_V1_SHA256 = "3f1283ed49fef4828dd0e7403818bc27057fc707d58d9fd3b8690e384a3f1325"


def minimal(**over):
    obj = {"schema": SCHEMA, "version": VERSION, "dataset": "Caltech101",
           "novel_classes": ["tiger", "lion"],
           "provenance": {"source": "manual", "description": "test"}}
    obj.update(over)
    return obj


def test_version_1_file_without_audit_is_valid():
    result = validate(minimal(), "x.json")
    assert result.names == ["tiger", "lion"] and result.extra == {}


@pytest.mark.parametrize("change, message", [
    ({"novel_classes": ["tiger", "Tiger!"]}, "duplicate novel classes"),
    ({"novel_classes": ["tiger", "?!"]}, "has no letter or digit"),
    ({"audit": []}, "'audit' must be an object"),
    ({"audit": {"dropped": {"base": "face"}}}, "'audit.dropped'"),
    ({"audit": {"new_overlap": {"policy": "maybe", "count": 0, "names": []}}}, "policy"),
    ({"audit": {"new_overlap": {"policy": "kept", "count": 2, "names": ["ibis"]}}}, "count"),
])
def test_malformed_files_name_the_problem(change, message):
    with pytest.raises(NovelClassesError, match=message) as err:
        validate(minimal(**change), "some/list.json")
    assert "some/list.json" in str(err.value)


def test_how_to_make_names_the_commands(tmp_path):
    with pytest.raises(NovelClassesError) as err:
        load(tmp_path / "missing.json", "dtd")
    text = str(err.value)
    for command in ("from-file NAMES.txt --dataset dtd", "vocab --dataset dtd",
                    "generate --dataset dtd", "OPENAI_API_KEY"):
        assert command in text


def test_every_benchmark_dataset_has_facts_and_a_domain():
    assert all_keys() == [d.key for d in BENCHMARK] and len(all_keys()) == 11
    for info in BENCHMARK:
        facts = dataset_facts(info.key)
        assert facts.name == info.name and facts.domain == DOMAINS[info.key]
        assert len(facts.base) + len(facts.new) == len(classnames.class_names(info.key))


def test_prompt_template_is_versioned():
    text, digest = load_template()
    assert PROMPT_VERSION == 1 and "$base_classes" in text and "$num_names" in text
    assert digest == PROMPT_V1_SHA256, (
        "prompts/novel_classes_v1.txt changed: put the new prompt in novel_classes_v2.txt and "
        "bump llm.PROMPT_VERSION instead of editing a released version")


@pytest.mark.parametrize("key", [d.key for d in BENCHMARK])
def test_prompt_holds_the_base_classes_and_never_the_new_ones(key):
    facts = dataset_facts(key)
    system, user = build_messages(facts, 123)
    assert system["role"] == "system" and user["role"] == "user"
    assert "$" not in user["content"] and "###" not in user["content"]
    lines = set(user["content"].splitlines())
    assert all(f"- {n.replace('_', ' ')}" in lines for n in facts.base)
    assert not any(f"- {n.replace('_', ' ')}" in lines for n in facts.new)
    assert "123 other class names" in user["content"]


@pytest.mark.parametrize("info", BENCHMARK, ids=lambda d: d.key)
def test_shipped_list(info):
    path = default_path(info.key)
    result = load(path, info.key, info.name)
    facts = dataset_facts(info.key)
    assert len(result.names) >= (40 if info.key == "eurosat" else 100)
    # truthful provenance: nothing here was made by a model
    prov = result.provenance
    assert prov["source"] == "manual" and "NOT produced by GPT-4o" in prov["description"]
    assert "model" not in prov and "gpt" not in json.dumps(prov).replace("GPT-4o step", "") \
        .replace("NOT produced by GPT-4o", "").lower()
    # hand-written lists hold no class of the dataset at all, as their audit says
    classes = {normalized(n) for n in facts.base + facts.new}
    assert not [n for n in result.names if normalized(n) in classes]
    audit = result.extra["audit"]
    assert audit["new_overlap"] == {"policy": "excluded", "count": 0, "names": []}
    assert audit["kept"] == len(result.names)
    assert check_file(path, log=lambda msg: None) == []


def test_validating_a_shipped_list_imports_no_torch():
    """`python -m sar_prompt.novel validate` counts tokens with CLIP's BPE loaded without
    clip/__init__.py (which imports torch)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from sar_prompt.novel.lists_cli import main\n"
            f"assert main(['validate', {str(default_path('caltech101'))!r}]) == 0\n"
            "assert 'sar_prompt._clip_simple_tokenizer' in sys.modules\n"
            "heavy = sorted({'torch', 'clip', 'sar_prompt._openai_clip'} & set(sys.modules))\n"
            "assert not heavy, heavy\n"
            "print('NO TORCH')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "NO TORCH" in proc.stdout, proc.stdout + proc.stderr


def test_token_counts_without_torch_equal_clip_tokenize():
    from sar_prompt.modeling.backbone import import_clip
    from sar_prompt.modeling.bpe import bpe, token_count

    texts = [dataset_facts(info.key).template.format(name)
             for info in BENCHMARK for name in load(default_path(info.key), info.key).names[:40]]
    texts += ["X " * 16 + "hot-air balloon.", "Crème brûlée", "  spaced   out  ", "ox-" * 25]
    ids = import_clip().tokenize(texts, context_length=77, truncate=True)
    assert [token_count(t) + 2 for t in texts] == [min(int((row != 0).sum()), 77) for row in ids]
    assert type(bpe()).__module__ == "sar_prompt._clip_simple_tokenizer"
