"""Guards for behaviour that comparisons between two code paths cannot see: each test here
checks one property against a computation written out in the test itself, so a bug that
changes both paths of an equivalence test the same way is still caught.

- SAR's gradient reaches the prompts through the base classes, not only the novel ones.
- The SAR trainer leaves out novel names that are training classes written another way,
  and refuses a list made only of them.
- TRAINER.SAR.EXCLUDE_SELF reaches the loss the trainer computes.
- The mean row of the per-dataset table (scripts/base2new.sh) reports the HM of the mean
  base and mean new accuracies, not the mean of the per-seed HMs.
At the end, guards that mutation testing showed missing (docs/developing.md).
"""
import json
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sar_prompt.errors import NovelClassesError

TEMPERATURE = 0.1  # softer than the default, so rows keep several classes' worth of signal


def reference_sar(learned, target, temperature, exclude_self):
    """SAR's KL loss written out row by row, independently of sar_prompt.sar: for each
    class, KL(softmax(target row / T) || softmax(learned row / T)), averaged over classes;
    `learned` and `target` are normalised features (N, E), base classes first."""
    s_learned, s_target = learned @ learned.t(), target @ target.t()
    n = s_learned.shape[0]
    total = 0.0
    for i in range(n):
        cols = [j for j in range(n) if not (exclude_self and j == i)]
        p = F.softmax(s_target[i, cols] / temperature, dim=0)
        log_q = F.log_softmax(s_learned[i, cols] / temperature, dim=0)
        total = total + (p * (p.log() - log_q)).sum()
    return total / n


def sar_trainer(build_trainer, tmp_path, *opts):
    """A CoOpSAR trainer whose context is moved away from the hand-crafted template, so the
    learned similarity structure differs from the target and SAR has a gradient."""
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.TEMPERATURE", str(TEMPERATURE),
                            "TRAINER.SAR.NUM_NOVEL", "6", *opts, output=tmp_path)
    ctx = trainer.model.prompt_learner.ctx
    with torch.no_grad():
        ctx.add_(0.05 * torch.randn(ctx.shape, generator=torch.Generator().manual_seed(0)))
    trainer.set_model_mode("train")
    trainer.num_batches, trainer.batch_idx = len(trainer.train_loader_x), 0
    return trainer


def step_and_reference(trainer):
    """The trainer's step (its SAR term and the novel classes it sampled) and the prompts'
    features computed again, each set in its own text pass, with their graphs."""
    batch = next(iter(trainer.train_loader_x))
    before = trainer.sar.generator.get_state()
    out = trainer.step(batch["img"], batch["label"])
    after = trainer.sar.generator.get_state()
    trainer.sar.generator.set_state(before)  # the step's draw, drawn again
    index = trainer.sar.sample_novel()
    assert torch.equal(trainer.sar.generator.get_state(), after)
    model, num_base = trainer.model, trainer.sar.num_base
    base = model.text_features()
    novel = model.text_features(trainer.novel_tokens, index)
    target = trainer.sar.target_features
    target = torch.cat([target[:num_base], target[num_base:][index]])
    return out, base, novel, target


# -- SAR's gradient through the base classes -------------------------------------------
def test_sar_gradient_reaches_the_prompts_through_the_base_classes(build_trainer, tmp_path,
                                                                   one_thread):
    """Guards against SAR's term being cut off from the base classes' graph (e.g. the base
    features detached while TRAINER.SAR.WEIGHT is not 0): the gradient of the step's SAR
    term w.r.t. the context must equal that of the loss written out here on features that
    keep the graph through base and novel classes, and it must reach the base-class text
    features the step computed. Novel classes alone would also give a gradient, so the
    test first checks that the base classes' share of it is far from negligible."""
    trainer = sar_trainer(build_trainer, tmp_path, "TRAINER.SAR.WEIGHT", "1.0")
    ctx = trainer.model.prompt_learner.ctx
    out, base, novel, target = step_and_reference(trainer)
    weight, sar = out.terms["sar"]
    assert weight == 1.0

    reference = reference_sar(torch.cat([base, novel]), target, TEMPERATURE, True)
    (expected,) = torch.autograd.grad(reference, ctx, retain_graph=True)
    novel_only = reference_sar(torch.cat([base.detach(), novel]), target, TEMPERATURE, True)
    (novel_share,) = torch.autograd.grad(novel_only, ctx)
    # the test can tell the two apart: the base classes carry much of the gradient
    assert (expected - novel_share).norm() > 0.1 * expected.norm() > 0

    assert float(sar.detach()) == pytest.approx(float(reference.detach()), rel=1e-4)
    got_ctx, got_base = torch.autograd.grad(sar, [ctx, out.class_text_features],
                                            allow_unused=True)
    torch.testing.assert_close(got_ctx, expected, rtol=1e-3, atol=1e-7)
    assert got_base is not None and got_base.abs().sum() > 0


# -- the trainer's own filter of novel names that are training classes ----------------
def novel_file(tmp_path, names, dataset="Caltech101"):
    path = tmp_path / "novel.json"
    path.write_text(json.dumps({"schema": "sar-prompt/novel-classes", "version": 1,
                                "dataset": dataset, "novel_classes": names,
                                "provenance": {"source": "manual", "description": "test"}}))
    return path


def test_novel_names_that_are_training_classes_are_left_out(build_trainer, tmp_path, capsys):
    """Guards the trainer's filter of novel names that are base classes written another way
    (case, punctuation, underscores): they are named in the log and left out of SAR's
    target, its novel prompts and its sampling; the other names keep their order."""
    kept = ["tiger", "hot air balloon", "zebra"]
    path = novel_file(tmp_path, ["tiger", "LEOPARD", "hot air balloon", "Car-Side",
                                 "zebra", "Ceiling fan"])
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path),
                            output=tmp_path / "out")
    base = trainer.dm.dataset.classnames
    assert {"leopard", "car_side", "ceiling_fan"} <= set(base)
    assert f"3 novel names in {path} are training classes of this run" in capsys.readouterr().out
    sar = trainer.sar
    assert sar.num_base == len(base) and sar.num_novel_total == len(kept)
    assert sar.target_features.shape[0] == len(base) + len(kept)
    assert len(trainer.novel_tokens) == len(kept)
    torch.testing.assert_close(sar.target_features[len(base):],
                               trainer.handcrafted_features(kept, "the kept names"))
    assert sorted(sar.sample_novel().tolist()) == list(range(len(kept)))


def test_a_novel_list_made_only_of_training_classes_is_refused(build_trainer, tmp_path):
    """Guards the error for a novel list whose every name is a training class: SAR would
    have nothing to regularise with; the message names the file."""
    path = novel_file(tmp_path, ["Leopard", "FACE", "car side"])
    with pytest.raises(NovelClassesError) as err:
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path), output=tmp_path / "out")
    assert str(path) in str(err.value)
    assert "every novel class is a training class" in str(err.value)


# -- TRAINER.SAR.EXCLUDE_SELF ------------------------------------------------------------
@pytest.mark.parametrize("exclude_self", [True, False])
def test_exclude_self_reaches_the_trainers_loss(build_trainer, tmp_path, one_thread,
                                                exclude_self):
    """Guards TRAINER.SAR.EXCLUDE_SELF on its way from the config to the loss: the step's
    SAR term is the loss written out here with the diagonal left out or kept as the key
    says, and not the other one."""
    trainer = sar_trainer(build_trainer, tmp_path, "TRAINER.SAR.EXCLUDE_SELF",
                          str(exclude_self))
    with torch.no_grad():
        out, base, novel, target = step_and_reference(trainer)
        learned = torch.cat([base, novel])
        expected = float(reference_sar(learned, target, TEMPERATURE, exclude_self))
        other = float(reference_sar(learned, target, TEMPERATURE, not exclude_self))
    assert abs(expected - other) > 1e-2 * abs(expected)  # the two readings differ here
    assert float(out.terms["sar"][1]) == pytest.approx(expected, rel=1e-4)


# -- the mean row of the per-dataset table -----------------------------------------------
def mean_row(table):
    """The mean row's cells: mean base, mean new, HM (as printed)."""
    line = next(line for line in table.splitlines() if line.startswith("mean"))
    return re.findall(r"\d+\.\d\d(?: \+- \d+\.\d\d)?", line)


def test_the_mean_rows_hm_is_the_hm_of_the_means():
    """Guards the mean row of the table scripts/base2new.sh prints: its HM is the harmonic
    mean of the mean base and mean new accuracies (as the CoOp family reports it), not the
    mean of the per-seed HMs. The seeds here make the two far apart (50.00 vs 18.00)."""
    from sar_prompt.results import format_table

    table = format_table([(1, 90.0, 10.0), (2, 10.0, 90.0), (3, None, 50.0)])
    assert mean_row(table) == ["50.00 +- 40.00", "50.00 +- 40.00", "50.00"]
    assert "per-seed HM mean 18.00 +- 0.00" in table  # the other reading, labelled as such


accuracy = st.floats(min_value=1.0, max_value=100.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(accuracy, accuracy), min_size=1, max_size=5))
def test_the_mean_rows_hm_for_any_seeds(pairs):
    """The same property for any complete seeds: the printed HM is that of the printed
    means' exact values."""
    from statistics import fmean

    from sar_prompt.results import format_table

    table = format_table([(seed, b, n) for seed, (b, n) in enumerate(pairs, 1)])
    mb, mn = fmean(b for b, _ in pairs), fmean(n for _, n in pairs)
    assert mean_row(table)[2] == f"{2 * mb * mn / (mb + mn):.2f}"


# -- more guards, from mutation testing (docs/developing.md) -----------------------------
def test_a_clean_novel_list_reports_nothing_left_out(build_trainer, tmp_path, capsys):
    """The log names left-out novel names only when there are some."""
    path = novel_file(tmp_path, ["tiger", "zebra"])
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path),
                            output=tmp_path / "out")
    assert trainer.sar.num_novel_total == 2
    assert "are training classes" not in capsys.readouterr().out


def test_the_trainer_refuses_a_novel_list_made_for_another_dataset(build_trainer, tmp_path):
    """The trainer checks that TRAINER.SAR.NOVEL_FILE was made for the run's dataset."""
    path = novel_file(tmp_path, ["tiger", "zebra"], dataset="OxfordPets")
    with pytest.raises(NovelClassesError) as err:
        build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path), output=tmp_path / "out")
    assert str(path) in str(err.value) and "OxfordPets" in str(err.value)
    assert "Caltech101" in str(err.value)


@pytest.mark.parametrize("num_novel, per_step", [("0", 3), ("1", 1), ("2", 2)])
def test_the_sar_summary_line(build_trainer, tmp_path, capsys, num_novel, per_step):
    """The line that says what SAR does in this run: classes, novel per step, settings."""
    path = novel_file(tmp_path, ["tiger", "hot air balloon", "zebra"])
    trainer = build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path),
                            "TRAINER.SAR.NUM_NOVEL", num_novel, output=tmp_path / "out")
    templates = list(trainer.handcrafted_templates())
    assert (f"[sar_prompt] SAR: {len(trainer.dm.dataset.classnames)} base + 3 novel classes "
            f"from {path} (manual), {per_step} novel per step, loss kl, weight 1.0, "
            f"templates {templates!r}\n") in capsys.readouterr().out


def test_seed_zero_seeds_sars_generator(build_trainer, tmp_path):
    """SEED 0 is a seed like any other (only a negative SEED means nondeterministic)."""
    trainer = build_trainer("CoOpSAR", seed=0, output=tmp_path / "out")
    assert trainer.sar.generator.initial_seed() == 0


@pytest.mark.parametrize("count, shown", [(3, "list"), (4, "size")])
def test_the_sar_summary_line_of_a_conditioned_method_and_a_template_set(
        build_trainer, tmp_path, capsys, monkeypatch, count, shown):
    """The summary line names the condition of an image-conditioned method, and shows up to
    three templates whole, a larger set (PromptSRC's 60) by its size and first template."""
    from sar_prompt.trainers.sar_variants import CoCoOpSAR

    templates = [f"a photo of a {{}}, number {i}." for i in range(count)]
    monkeypatch.setattr(CoCoOpSAR, "handcrafted_templates", lambda self: templates)
    path = novel_file(tmp_path, ["tiger", "hot air balloon", "zebra"])
    trainer = build_trainer("CoCoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path),
                            output=tmp_path / "out")
    listed = repr(templates) if shown == "list" else f"{count} averaged, from {templates[0]!r}"
    assert (f"[sar_prompt] SAR: {len(trainer.dm.dataset.classnames)} base + 3 novel classes "
            f"from {path} (manual), 3 novel per step, loss kl, weight 1.0, condition "
            f"each_image, templates {listed}\n") in capsys.readouterr().out


def test_the_warning_about_an_implausible_novel_name(build_trainer, tmp_path, capsys):
    """The trainer's warning about a name in the novel list that is no class name: the file,
    the problem, and the command that checks the list, as one line."""
    path = novel_file(tmp_path, ["tiger", "visit https://example.com/zebra", "zebra"])
    build_trainer("CoOpSAR", "TRAINER.SAR.NOVEL_FILE", str(path), output=tmp_path / "out")
    assert (f"\n[sar_prompt] warning: {path}: 1 names are URLs, web or e-mail addresses: "
            f"'visit https://example.com/zebra'. Check the list with sar-prompt novel "
            f"validate {path}\n") in "\n" + capsys.readouterr().out


def test_sars_generator_is_named_sar_in_checkpoints(build_trainer, tmp_path):
    """SAR's sampling generator goes into a checkpoint's random-number state as "sar", the
    name checkpoints already written carry, so they keep resuming exactly."""
    from sar_prompt.trainers.sar_variants import SARMixin

    trainer = build_trainer("CoOpSAR", output=tmp_path / "out")
    generators = trainer.random_generators()
    assert generators["sar"] is trainer.sar.generator
    assert set(generators) == {*super(SARMixin, trainer).random_generators(), "sar"}
