"""CoCoOp reproduces the reference implementation step for step.

The golden numbers are the per-step training losses of the reference CoCoOp
(KaiyangZhou/CoOp@ff61507, trainers/cocoop.py) run through its own train.py on upstream
Dassl (c61a1b5), on the inputs this suite builds: the tiny CLIP, the Caltech101 fixture,
TINY_TRAINER_OPTS with TRAINER.COCOOP.{N_CTX 4, CTX_INIT "a photo of a", PREC fp32}, 1 shot
(50 base images), batch 4, 2 epochs, seed 1; CPU, fp32, torch 2.14.1. The reference only
had its CUDA calls made no-ops and Dassl's warm-up scheduler and torch.load adapted to
current PyTorch; nothing was reseeded or re-initialised: our build draws the same random
numbers in the same order (CLIP's initialisation, then the meta-net), so seeding once before
building, as train.py does, gives the same meta-net and the same batches. Measured: max
per-step difference 2.4e-6 (and 1.9e-6 with the test double instead of Dassl).
"""
import pytest

from test_trainers import record_steps

# 12 steps per epoch: the constant 1e-5 warm-up epoch, then the cosine epoch at lr 0.002.
REFERENCE_LOSSES = [
    5.01535940, 3.75215721, 5.12431908, 6.12684917, 6.59307098, 6.84341908,
    5.71879673, 4.78034496, 2.88571835, 6.52235413, 4.70636129, 5.07130527,
    6.26142597, 4.85396385, 5.42002535, 4.02264309, 5.07885981, 5.02544212,
    5.82617378, 5.79158783, 4.19920301, 4.89673138, 5.27952528, 5.08512211,
]


def test_cocoop_per_step_losses_match_the_reference(build_trainer, tmp_path):
    trainer = build_trainer("CoCoOp", "TRAINER.COCOOP.N_CTX", "4", "DATALOADER.TRAIN_X.BATCH_SIZE",
                            "4", "TEST.NO_TEST", "True", output=tmp_path, shots=1)
    losses = [step["loss"] for step in record_steps(trainer)]
    assert losses == pytest.approx(REFERENCE_LOSSES, abs=1e-5)
