"""MaPLe and PromptSRC reproduce their reference implementations step for step.

The golden numbers are the per-step training losses, and sums of the final learnable
tensors, of the reference trainers (MaPLe: muzairkhattak/multimodal-prompt-learning@69bce21
trainers/maple.py; PromptSRC: muzairkhattak/PromptSRC@bb95c77 trainers/promptsrc.py), each
run through its own train.py on upstream Dassl (c61a1b5), CPU, fp32, torch 2.14.1, one
thread, on the inputs this suite builds: the tiny CLIP with two vision blocks
(`write_tiny_clip(path, seed=0, vision_layers=2)`, so deep vision prompts are used), the
Caltech101 fixture, TINY_TRAINER_OPTS (16 shots, batch 16, 2 epochs), seed 1, prompt depth 2.

To run there, the references had their `.cuda()` calls made no-ops, Dassl's warm-up
scheduler and torch.load adapted to current PyTorch, and the tiny CLIP file served by their
own `clip` package. Alignment (docs/fidelity.md, docs/methods.md "Where we differ"):
- both runs reseed (Dassl's set_random_seed(1)) right before training, so the batches and
  flips are the same whatever each build drew;
- the references cast their prompts to fp16 (`.half()`) even in an fp32 run, and MaPLe
  keeps its input projection in fp16 (an fp32 run then crashes): those casts were no-ops;
  their frozen zero-shot copies were fp32. MaPLe hard-codes ViT-B/16's widths (512, 768):
  replaced by the tiny CLIP's;
- MaPLe draws its parameters as we do: the same values from the same seed, nothing loaded;
- PromptSRC creates its deep prompts inside its modified CLIP's construction, interleaved
  with CLIP's own initialisation, which no build on OpenAI's CLIP can repeat: in both runs
  they were replaced after the build by 0.02 * randn(shape, generator=manual_seed(k)) for
  the k-th prompt in the order vision input prompt, deep vision, deep text (`fixed_prompts`);
- PromptSRC's final tensors are after Gaussian prompt aggregation (GPA_MEAN 2, GPA_STD 1).
Measured max per-step loss differences: MaPLe 9.5e-7, PromptSRC 9.5e-7; final tensors'
sums within 1e-4 of the reference's (what the test checks).
"""
import pytest
import torch
from dassl.utils import set_random_seed

from test_trainers import record_steps

TOLERANCE = 1e-5

GOLDEN = {
    "MaPLe": dict(
        opts=("TRAINER.MAPLE.N_CTX", "2", "TRAINER.MAPLE.CTX_INIT", "a photo of a",
              "TRAINER.MAPLE.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", "2"),
        loss=[4.04597855, 4.30201387, 4.03446436, 3.95729017, 4.01645231, 3.95223188,
              4.04758453, 4.00263309, 4.10093212, 4.05819416, 3.93633413, 3.86768198,
              3.95674086, 3.92453313, 3.96873784, 3.92958045, 3.97101498, 4.00055504],
        # our key: (sum, sum of absolute values) of the final tensor
        final={"ctx": (-0.15344944, 5.25559649),
               "proj.weight": (-4.32345313, 256.49504790),
               "proj.bias": (-0.01481880, 3.98838912),
               "compound_prompts_text.0": (-0.23864462, 2.30198478),
               "compound_prompt_projections.0.weight": (-4.45563405, 256.16870387),
               "compound_prompt_projections.0.bias": (-0.13338680, 3.98981763)}),
    "PromptSRC": dict(
        opts=("TRAINER.PROMPTSRC.N_CTX_TEXT", "4", "TRAINER.PROMPTSRC.N_CTX_VISION", "4",
              "TRAINER.PROMPTSRC.CTX_INIT", "a photo of a", "TRAINER.PROMPTSRC.PREC", "fp32",
              "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "2",
              "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2",
              "TRAINER.PROMPTSRC.GPA_MEAN", "2", "TRAINER.PROMPTSRC.GPA_STD", "1"),
        fixed_prompts=True,
        loss=[5.70302677, 6.03129005, 5.59109783, 5.49248648, 5.50650454, 5.41947603,
              5.36153889, 5.28281546, 5.35151958, 5.33100128, 8.18190956, 8.35360909,
              8.20714092, 7.52127504, 6.75289631, 6.28798294, 6.06800127, 5.86638117],
        final={"ctx": (-0.35161474, 17.55071612),
               "vision_ctx": (0.13179584, 3.95984951),
               "vision_prompts.0": (0.26472838, 4.37445486),
               "text_prompts.0": (0.27319030, 7.32016530)}),
}


@pytest.fixture(scope="module")
def vision2_clip_path(tmp_path_factory):
    from sar_prompt.orchestration.demo import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("clip_v2") / "tiny_clip_vision2.pt", seed=0,
                           vision_layers=2)


def fixed_prompts(learner):
    """PromptSRC's prompts, vision input prompt, deep vision, deep text in order, from fixed
    generators (the reference run's were set the same way)."""
    prompts = [learner.vision_ctx, *learner.vision_prompts, *learner.text_prompts]
    with torch.no_grad():
        for k, prompt in enumerate(prompts):
            prompt.copy_(0.02 * torch.randn(prompt.shape,
                                            generator=torch.Generator().manual_seed(k)))


@pytest.mark.parametrize("method", GOLDEN)
def test_per_step_losses_and_final_prompts_match_the_reference(
        build_trainer, vision2_clip_path, tmp_path, one_thread, method):
    golden = GOLDEN[method]
    trainer = build_trainer(method, "MODEL.BACKBONE.PATH", str(vision2_clip_path),
                            *golden["opts"], "TEST.NO_TEST", "True", output=tmp_path)
    learner = trainer.model.prompt_learner
    if golden.get("fixed_prompts"):
        fixed_prompts(learner)
    set_random_seed(1)
    losses = [step["loss"] for step in record_steps(trainer)]
    assert losses == pytest.approx(golden["loss"], abs=TOLERANCE)
    final = learner.state_dict()
    assert set(final) == set(golden["final"])
    for key, (total, absolute) in golden["final"].items():
        value = final[key].double()
        assert value.sum().item() == pytest.approx(total, abs=1e-4), key
        assert value.abs().sum().item() == pytest.approx(absolute, abs=1e-4), key
