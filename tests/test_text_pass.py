"""The text pass's exact savings and options: a shared prefix run once, several prompt sets
in one pass, chunks with activation checkpointing. Each must give the features, losses and
gradients of the plain pass."""
import pytest
import torch

from sar_prompt.orchestration.demo import TINY_CLIP
from sar_prompt.modeling.backbone import import_clip
from sar_prompt.modeling.conditional_prompt import ConditionalPromptLearner
from sar_prompt.modeling.context_prompt import ContextPromptLearner
from sar_prompt.modeling.deep_prompt import MaPLePromptLearner
from sar_prompt.modeling.prompted_clip import PromptedCLIP, join_prompts, plan_passes
from sar_prompt.modeling.text_encoder import TextEncoder
from sar_prompt.modeling.tokens import eot_positions, tokenize

NAMES = ["car_side", "grand piano", "ant", "stop_sign", "crocodile head", "wild cat"]
NOVEL = ["hot air balloon", "tiger", "a very long and winding name of a thing", "owl"]


@pytest.fixture(scope="module")
def clip_model():
    """Four heads and three blocks, so head splitting and deep prompts are exercised."""
    torch.manual_seed(0)
    return import_clip().model.CLIP(**{**TINY_CLIP, "transformer_heads": 4,
                                       "transformer_layers": 3}).float().eval()


def plain(encoder, prompts):
    """The reference pass: every row on its own, no shared prefix, no chunks."""
    return encoder(prompts.embeddings, prompts.eot, prompts.deep)


def test_the_plain_pass_is_clips_own(clip_model):
    encoder = TextEncoder(clip_model)
    ids = tokenize([f"a photo of a {n}." for n in NAMES])
    with torch.no_grad():
        ours = encoder(encoder.embed(ids), eot_positions(ids))
        shared = encoder.encode_token_ids(ids, normalized=False)
        theirs = clip_model.encode_text(ids)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", ["coop", "cocoop", "maple"])
def test_shared_prefix_gives_the_plain_features_and_gradients(clip_model, make):
    encoder = TextEncoder(clip_model)
    torch.manual_seed(1)
    if make == "coop":
        learner = ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a")
        prompts = learner()
    elif make == "cocoop":
        learner = ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=3)
        prompts = learner(condition=torch.randn(3, clip_model.visual.output_dim))
    else:
        learner = MaPLePromptLearner(clip_model, encoder, NAMES, n_ctx=2, depth=3)
        prompts = learner()
    assert prompts.shared_prefix == 1 + learner.n_ctx + (2 if make == "maple" else 0)
    assert prompts.groups == (3 if make == "cocoop" else 1)
    assert prompts.length == int(prompts.eot.max()) + 1
    weights = torch.randn(prompts.eot.shape[0], clip_model.text_projection.shape[1])
    grads = []
    for run in (encoder.encode, lambda p: plain(encoder, p)):
        learner.zero_grad()
        prompts = learner(condition=torch.randn(3, 32, generator=torch.Generator().manual_seed(2))) \
            if make == "cocoop" else learner()
        feats = run(prompts)
        (feats * weights).sum().backward()
        grads.append((feats.detach(), [p.grad.clone() for p in learner.parameters()
                                       if p.grad is not None]))
    (shared, shared_grads), (reference, reference_grads) = grads
    torch.testing.assert_close(shared, reference, rtol=1e-5, atol=1e-5)
    assert len(shared_grads) == len(reference_grads) > 0
    for a, b in zip(shared_grads, reference_grads):  # fp32 sums in another order
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def clip_transformer_pass(clip_model, prompts):
    """CLIP's own text path on prompt embeddings: all 77 positions (zeros after the given
    ones), its causal mask, every block in full, the feature read at each EOT."""
    x = torch.nn.functional.pad(prompts.embeddings, (0, 0, 0, 77 - prompts.embeddings.shape[1]))
    x = clip_model.transformer((x + clip_model.positional_embedding).permute(1, 0, 2))
    x = clip_model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), prompts.eot] @ clip_model.text_projection


@pytest.mark.parametrize("make", ["coop", "cocoop", "front"])
def test_features_and_gradients_are_clips_own_pass(clip_model, make):
    """Every saving at once (shared prefix, packed rows, the last block at the EOTs only)
    against CLIP's transformer over 77 positions: features and prompt gradients."""
    encoder = TextEncoder(clip_model)
    torch.manual_seed(4)
    condition = torch.randn(2, 32, generator=torch.Generator().manual_seed(5))
    if make == "cocoop":
        learner = ConditionalPromptLearner(clip_model, encoder, NAMES + NOVEL, n_ctx=3)
    else:
        learner = ContextPromptLearner(
            clip_model, encoder, NAMES + NOVEL, n_ctx=3,
            **({"class_token_position": "front"} if make == "front" else {}))
    results = []
    for run in (encoder.encode, lambda p: clip_transformer_pass(clip_model, p)):
        learner.zero_grad()
        prompts = learner(condition=condition) if make == "cocoop" else learner()
        assert (prompts.shared_prefix > 0) == (make != "front")
        feats = run(prompts)
        weights = torch.randn(feats.shape, generator=torch.Generator().manual_seed(6))
        (feats * weights).sum().backward()
        results.append((feats.detach(), [p.grad.clone() for p in learner.parameters()]))
    (ours, our_grads), (clips, clip_grads) = results
    torch.testing.assert_close(ours, clips, rtol=1e-5, atol=1e-5)
    for a, b in zip(our_grads, clip_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_no_shared_prefix_where_rows_differ_inside_it(clip_model):
    encoder = TextEncoder(clip_model)
    for kw in ({"class_token_position": "front"}, {"class_token_position": "middle"},
               {"csc": True, "n_ctx": 4}):
        assert ContextPromptLearner(clip_model, encoder, NAMES, **kw)().shared_prefix == 0


def test_prompt_length_is_known_without_reading_the_device(clip_model):
    learner = ContextPromptLearner(clip_model, TextEncoder(clip_model), NAMES,
                                   ctx_init="a photo of a")
    novel = learner.class_tokens(NOVEL)
    index = torch.tensor([1, 3])  # the two short names
    assert learner(novel, index).length == int(novel.eot[index].max()) + 1
    assert learner(novel).length == int(novel.eot.max()) + 1 > learner(novel, index).length


def test_prompt_sets_in_one_pass_equal_separate_passes(clip_model, monkeypatch):
    from sar_prompt.modeling import prompted_clip

    encoder = TextEncoder(clip_model)
    torch.manual_seed(3)
    for learner in (ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a"),
                    ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=2)):
        model = PromptedCLIP(clip_model, encoder, learner)
        novel = learner.class_tokens(NOVEL)
        requests = [(None, None), (novel, torch.tensor([0, 3, 1]))]
        condition = torch.randn(2, 32) if learner.conditioned else None
        with torch.no_grad():
            assert len(plan_passes([learner(t, i, condition) for t, i in requests])) == 1
            joined = model.text_features_of(requests, condition)
            monkeypatch.setattr(prompted_clip, "JOIN_SLACK", 0.0)  # forces separate passes
            separate = model.text_features_of(requests, condition)
            monkeypatch.undo()
        for a, b in zip(joined, separate):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert joined[1].shape[-2] == 3


def test_a_joined_pass_is_not_used_when_padding_would_cost_more(clip_model):
    learner = ContextPromptLearner(clip_model, TextEncoder(clip_model), NAMES,
                                   ctx_init="a photo of a")
    short = learner(learner.class_tokens(["ant"] * 50))
    long = learner(learner.class_tokens(["a very long and winding name of a thing"]))
    # rows run to their own EOT: joining pads nothing
    assert plan_passes([short, long]) == [[0, 1]]
    joined = join_prompts([short, long])
    assert joined.embeddings.shape[:2] == (51, long.embeddings.shape[1])
    assert joined.eot_list == short.eot_list + long.eot_list
    # EOTs unknown on the host (an index on the device): every row runs to the longest EOT
    short.eot_list = long.eot_list = None
    assert plan_passes([short, long]) == [[0], [1]]
    assert plan_passes([short, short]) == [[0, 1]]


def test_rows_run_to_their_own_end(clip_model):
    """Packed rows give the features of rows padded to the longest EOT."""
    encoder = TextEncoder(clip_model)
    learner = ContextPromptLearner(clip_model, encoder, NAMES + NOVEL, n_ctx=3)
    prompts = learner()
    assert len(set(prompts.eot_list)) > 1
    with torch.no_grad():
        packed = encoder.encode(prompts)
        prompts.eot_list = None
        padded = encoder.encode(prompts)
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-6)


def peak_memory(fn):
    """Peak CPU memory allocated while `fn` runs (forward and backward), from the profiler's
    allocation records in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("groups", [1, 4])
def test_checkpointed_chunks_keep_losses_and_gradients_and_halve_peak_memory(clip_model, groups):
    """Chunks with activation checkpointing: the same loss and gradients as chunks without
    (bit for bit) and as one pass, and at most half the peak memory of one pass. Checkpointing
    one pass alone would not lower the peak: the backward pass recomputes it whole."""
    names = [f"class number {i}" for i in range(64 // groups)]
    condition = torch.randn(groups, 32, generator=torch.Generator().manual_seed(7))
    results = {}
    for chunk, recompute in ((0, False), (0, True), (8, False), (8, True)):
        encoder = TextEncoder(clip_model, chunk_size=chunk, checkpoint=recompute)
        torch.manual_seed(5)
        learner = (ConditionalPromptLearner(clip_model, encoder, names, n_ctx=4) if groups > 1
                   else ContextPromptLearner(clip_model, encoder, names, n_ctx=4))
        weights = torch.randn(64, clip_model.text_projection.shape[1],
                              generator=torch.Generator().manual_seed(6))
        loss = []

        def step():
            prompts = learner(condition=condition) if groups > 1 else learner()
            loss.append((encoder.encode(prompts) * weights).sum())
            loss[0].backward()

        peak = peak_memory(step)
        results[(chunk, recompute)] = (loss[0].detach(), learner.ctx.grad.clone(), peak)
    base_loss, base_grad, base_peak = results[(0, False)]
    chunk_loss, chunk_grad, _ = results[(8, False)]
    low_loss, low_grad, low_peak = results[(8, True)]
    assert torch.equal(low_loss, chunk_loss) and torch.equal(low_grad, chunk_grad)
    torch.testing.assert_close(low_loss, base_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(low_grad, base_grad, rtol=1e-4,
                               atol=1e-5 * float(base_grad.abs().max()))
    assert low_peak * 2 <= base_peak, (low_peak, base_peak)
    assert results[(0, True)][2] * 2 > base_peak  # one checkpointed pass: no saving


def test_chunks_split_rows_into_whole_groups_or_pieces_of_one():
    from sar_prompt.modeling.text_encoder import _chunks

    assert _chunks(10, 1, 0) == [(0, 10, 10)]
    assert _chunks(10, 1, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert _chunks(12, 4, 7) == [(0, 6, 3), (6, 12, 3)]  # whole groups of 3
    assert _chunks(10, 2, 3) == [(0, 3, 3), (3, 5, 2), (5, 8, 3), (8, 10, 2)]  # pieces


# -- the pass planner's cost model: positions the encoder runs -----------------------------
def positions_run(encoder, prompts):
    """Token positions the first block's MLP runs for `prompts` (prefix and rows)."""
    counted = []
    hook = encoder.resblocks[0].mlp.register_forward_hook(
        lambda module, args, out: counted.append(args[0].numel() // args[0].shape[-1]))
    try:
        with torch.no_grad():
            encoder.encode(prompts)
    finally:
        hook.remove()
    return sum(counted)


def test_a_pass_costs_the_positions_the_encoder_runs(clip_model):
    from sar_prompt.modeling.prompted_clip import pass_cost

    encoder = TextEncoder(clip_model)
    torch.manual_seed(4)
    coop = ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a")
    cocoop = ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=2)
    novel = coop.class_tokens(NOVEL)
    cases = [coop(), coop(novel), coop(novel, torch.tensor([2, 0])),
             cocoop(None, None, torch.randn(3, 32)),  # three images: three groups
             join_prompts([coop(), coop(novel)])]
    padded = coop(novel)
    padded.eot_list = None  # every row runs to the longest EOT
    wide = coop(novel)  # embeddings wider than the positions run
    wide.eot_list = None
    wide.embeddings = torch.nn.functional.pad(wide.embeddings,
                                              (0, 0, 0, 77 - wide.embeddings.shape[1]))
    unknown = coop(novel)  # no length on the host: the encoder reads it from the EOTs
    unknown.eot_list = unknown.length = None
    cases += [padded, wide, unknown]
    for prompts in cases:
        assert prompts.shared_prefix > 0
        assert pass_cost(prompts) == positions_run(encoder, prompts)


def metadata(rows, length, groups=1, shared=0):
    """Prompts of `rows` rows that all run to `length` (no EOTs on the host): all the
    planner reads."""
    from sar_prompt.modeling.learner_interface import TextPrompts

    return TextPrompts(torch.zeros(rows, length, 4), torch.full((rows,), length - 1),
                       length=length, shared_prefix=shared, groups=groups)


def test_the_planner_joins_sets_while_the_joined_pass_costs_at_most_a_quarter_more():
    from sar_prompt.modeling.learner_interface import TextPrompts
    from sar_prompt.modeling.prompted_clip import JOIN_SLACK, pass_cost

    # 4 rows to 9 and 1 row to 12 positions: apart 36 + 12 = 48, joined 5 x 12 = 60 = 1.25 x 48
    at_the_limit = [metadata(4, 9), metadata(1, 12)]
    assert pass_cost(join_prompts(at_the_limit)) == JOIN_SLACK * 48 == 60
    assert plan_passes(at_the_limit) == [[0, 1]]
    # 4 rows to 6 and 1 to 12: apart 36, joined 60 (1.67 times): apart
    assert plan_passes([metadata(4, 6), metadata(1, 12)]) == [[0], [1]]
    # a shared prefix is run once per group, joined or not
    shared = [metadata(4, 12, groups=2, shared=5), metadata(2, 12, groups=2, shared=3)]
    assert plan_passes(shared) == [[0, 1]]
    assert pass_cost(join_prompts(shared)) == 6 * (12 - 3) + 2 * 3
    # the shared prefix counts in the joined pass too: 4 x 9 + 3 = 39 > 1.25 x (9 + 21)
    assert plan_passes([metadata(2, 6, shared=3), metadata(2, 12, shared=3)]) == [[0], [1]]
    # never joined: sets of other groups, per-row deep prompts
    assert plan_passes([metadata(2, 9, groups=2), metadata(2, 9)]) == [[0], [1]]
    per_row = TextPrompts(torch.zeros(2, 9, 4), torch.full((2,), 8), [torch.zeros(2, 1, 4)],
                          length=9)
    assert plan_passes([per_row, per_row]) == [[0], [1]]
    assert plan_passes([metadata(2, 9)]) == [[0]]


def test_a_joined_set_knows_its_eots_only_if_every_set_did(clip_model):
    learner = ContextPromptLearner(clip_model, TextEncoder(clip_model), NAMES,
                                   ctx_init="a photo of a")
    known, unknown = learner(), learner()
    unknown.eot_list = None
    assert join_prompts([known, known]).eot_list == known.eot_list * 2
    assert join_prompts([known, unknown]).eot_list is None


def test_an_evaluations_frozen_features_serve_only_the_class_set(clip_model):
    encoder = TextEncoder(clip_model)
    learner = ContextPromptLearner(clip_model, encoder, NAMES, ctx_init="a photo of a")
    model = PromptedCLIP(clip_model, encoder, learner)
    novel = learner.class_tokens(NOVEL)
    with torch.no_grad():
        expected_novel = model.text_features(novel)
        expected_two = model.text_features(index=torch.tensor([1, 4]))
        with model.frozen_text_features():
            frozen = model.text_features()
            assert model.text_features() is frozen  # computed once for the evaluation
            torch.testing.assert_close(model.text_features(novel), expected_novel)
            torch.testing.assert_close(model.text_features(index=torch.tensor([1, 4])),
                                       expected_two)
        assert model.text_features() is not frozen


def test_image_conditioned_text_passes_hold_at_most_their_row_budget(clip_model):
    """Each image has its own prompts for every class: a pass takes as many images as fit
    `rows_per_text_pass` rows, and at least one."""
    encoder = TextEncoder(clip_model)
    torch.manual_seed(5)
    learner = ConditionalPromptLearner(clip_model, encoder, NAMES, n_ctx=2)
    model = PromptedCLIP(clip_model, encoder, learner)
    assert model.dtype == clip_model.dtype  # as the CoOp family's CustomCLIP
    rows = []  # per text pass
    encode = encoder.encode
    encoder.encode = lambda prompts: rows.append(prompts.eot.shape[0]) or encode(prompts)
    condition = torch.randn(5, 32)
    with torch.no_grad():
        expected = model.text_features(condition=condition)
        for budget, per_pass in ((12, [12, 12, 6]), (13, [12, 12, 6]), (4, [6] * 5)):
            rows.clear()
            model.rows_per_text_pass = budget
            torch.testing.assert_close(model.text_features(condition=condition), expected)
            assert rows == per_pass, budget
