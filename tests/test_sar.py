import math

import pytest
import torch
import torch.nn.functional as F

from sar_prompt.sar import SimilarityAlignment, off_diagonal, similarity_alignment_loss


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def test_kl_matches_hand_computation_without_diagonal():
    torch.manual_seed(0)
    a, b = unit(torch.randn(4, 8)), unit(torch.randn(4, 8))
    s_learned, s_target = a @ a.t(), b @ b.t()
    tau = 0.1
    expected = 0.0
    for i in range(4):
        idx = [j for j in range(4) if j != i]
        p = F.softmax(s_target[i, idx] / tau, dim=0)
        q = F.softmax(s_learned[i, idx] / tau, dim=0)
        expected += float((p * (p.log() - q.log())).sum())
    got = similarity_alignment_loss(s_learned, s_target, "kl", tau, exclude_self=True)
    assert math.isclose(float(got), expected / 4, rel_tol=1e-5)


@pytest.mark.parametrize("loss", ["kl", "l1", "mse"])
def test_loss_is_zero_for_equal_structures_and_positive_otherwise(loss):
    torch.manual_seed(1)
    a = unit(torch.randn(6, 8))
    s = a @ a.t()
    assert float(similarity_alignment_loss(s, s, loss)) == pytest.approx(0.0, abs=1e-6)
    b = unit(torch.randn(6, 8))
    assert float(similarity_alignment_loss(b @ b.t(), s, loss)) > 1e-4


def test_l1_and_mse_values():
    learned = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    target = torch.tensor([[1.0, 0.2], [0.2, 1.0]])
    assert float(similarity_alignment_loss(learned, target, "l1")) == pytest.approx(0.3)
    assert float(similarity_alignment_loss(learned, target, "mse")) == pytest.approx(0.09)
    # with the diagonal kept, the zero differences on it are averaged in
    assert float(similarity_alignment_loss(learned, target, "l1", exclude_self=False)) == \
        pytest.approx(0.15)


def test_off_diagonal():
    m = torch.arange(9.0).view(3, 3)
    assert off_diagonal(m).tolist() == [[1, 2], [3, 5], [6, 7]]


def test_component_samples_with_its_own_generator_and_gives_gradients():
    torch.manual_seed(0)
    target = unit(torch.randn(3 + 10, 8))
    sar = SimilarityAlignment(target, num_base=3, num_novel=4, seed=7)
    state = torch.get_rng_state()
    first = sar.sample_novel()
    assert torch.equal(torch.get_rng_state(), state)  # the host's random stream is untouched
    assert len(first) == 4 and len(set(first.tolist())) == 4 and int(first.max()) < 10
    again = SimilarityAlignment(target, num_base=3, num_novel=4, seed=7).sample_novel()
    assert torch.equal(first, again)
    assert len(SimilarityAlignment(target, 3, num_novel=0).sample_novel()) == 10

    base = target[:3].clone().requires_grad_(True)
    novel = target[3 + first]
    assert float(sar(base, novel, first).detach()) == pytest.approx(0.0, abs=1e-6)
    moved = unit(base + 0.3 * torch.randn(3, 8))
    loss = sar(moved, novel, first)
    loss.backward()
    assert loss.item() > 0 and base.grad is not None and base.grad.abs().sum() > 0


def test_invalid_options():
    t = unit(torch.randn(4, 8))
    with pytest.raises(ValueError, match="unknown SAR loss"):
        SimilarityAlignment(t, 2, loss="cosine")
    with pytest.raises(ValueError, match="temperature"):
        SimilarityAlignment(t, 2, temperature=0)


def reference_kl(s_learned, s_target, tau):
    """KL(target || learned) of the softmax rows without the diagonal, in log space."""
    n, total = s_learned.shape[0], 0.0
    for i in range(n):
        idx = [j for j in range(n) if j != i]
        log_p = F.log_softmax(s_target[i, idx] / tau, dim=0)
        log_q = F.log_softmax(s_learned[i, idx] / tau, dim=0)
        total += float((log_p.exp() * (log_p - log_q)).sum())
    return total / n


def test_defaults_are_kl_at_clips_temperature_without_the_diagonal():
    torch.manual_seed(3)
    shared = torch.randn(1, 8)
    a, b = unit(shared + 0.5 * torch.randn(5, 8)), unit(shared + 0.5 * torch.randn(5, 8))
    expected = reference_kl(a @ a.t(), b @ b.t(), 0.01)
    assert float(similarity_alignment_loss(a @ a.t(), b @ b.t())) == \
        pytest.approx(expected, rel=1e-4)
    sar = SimilarityAlignment(b, num_base=3)  # all novel classes, kl, 0.01, no diagonal
    index = sar.sample_novel()
    assert index.tolist() == [0, 1]
    assert float(sar(a[:3], a[3:], index)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("loss", ["kl", "l1", "mse"])
def test_component_aligns_base_and_the_sampled_novel_classes_with_each_loss(loss):
    torch.manual_seed(2)
    target = unit(torch.randn(3 + 5, 8))
    sar = SimilarityAlignment(target, num_base=3, num_novel=2, loss=loss, temperature=0.5)
    index = torch.tensor([4, 1])
    base, novel = unit(torch.randn(3, 8)), unit(torch.randn(2, 8))
    learned, chosen = torch.cat([base, novel]), torch.cat([target[:3], target[3:][index]])
    expected = similarity_alignment_loss(learned @ learned.t(), chosen @ chosen.t(), loss, 0.5)
    assert float(sar(base, novel, index)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("loss", ["kl", "l1", "mse"])
def test_a_single_class_has_no_structure_to_align(loss):
    one = torch.ones(1, 1)
    assert float(similarity_alignment_loss(one, one, loss)) == 0.0  # not NaN


def test_one_novel_class_per_step_and_the_target_is_never_saved():
    target = unit(torch.randn(3 + 10, 8))
    sar = SimilarityAlignment(target, num_base=3, num_novel=1, seed=0)
    assert len(sar.sample_novel()) == 1
    # rebuilt from the class names each run: not part of any checkpoint
    assert sar.state_dict() == {}
