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
