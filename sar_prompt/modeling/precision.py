"""A run's precision, decided here and nowhere else.

Each method's `PREC` is one of
- `fp16`: CLIP's weights stay in half precision (as OpenAI ships them), the learnable
  tensors take the activations' dtype; no autocast.
- `amp`: CLIP in fp32, each training step autocast to float16, gradients scaled
  (`torch.amp.GradScaler`); the loss terms are computed outside autocast (`loss_inputs`).
- `fp32`: everything in fp32.

CUDA runs all three. A CPU runs fp32, unless SAR_PROMPT_CPU_HALF=1: then a CPU runs fp16
and amp as a GPU would (torch has half kernels on CPU for every op these models use), slowly;
the tests use it to check the GPU's precision paths without a GPU. Two things differ from
CUDA under amp: CPU autocast keeps fewer ops in float32 (norm, softmax, log_softmax,
layer_norm and sum run in their inputs' dtype, where CUDA's runs them in float32), and the
gradient scaler is `GradScaler("cpu")`.
"""
import functools
import os
from contextlib import nullcontext

import torch

CPU_HALF_ENV = "SAR_PROMPT_CPU_HALF"  # 1: a CPU honours PREC fp16 and amp


def _device_type(device):
    return torch.device(device).type


def half_on(device) -> bool:
    """Whether `device` runs PREC fp16 and amp: CUDA always, a CPU with SAR_PROMPT_CPU_HALF=1."""
    kind = _device_type(device)
    return kind == "cuda" or (kind == "cpu" and os.environ.get(CPU_HALF_ENV) == "1")


def effective_precision(requested: str, device) -> str:
    """The precision a run on `device` uses for the `PREC` it asks for."""
    if requested != "fp32" and not half_on(device):
        print(f"[sar_prompt] PREC {requested} needs CUDA (or {CPU_HALF_ENV}=1 on a CPU); "
              f"running in fp32 on {device}.")
        return "fp32"
    return requested


def autocast(precision: str, device):
    """The training step's context: float16 autocast under amp, nothing otherwise."""
    if precision == "amp":
        return torch.autocast(_device_type(device), dtype=torch.float16)
    return nullcontext()


def grad_scaler(precision: str, device):
    """amp's gradient scaler on `device`, or None."""
    if precision == "amp":
        return torch.amp.GradScaler(_device_type(device))
    return None


def outside_autocast(device):
    """No autocast inside: what runs here runs in its inputs' dtype."""
    return torch.autocast(_device_type(device), enabled=False)


def loss_inputs(precision: str, *tensors):
    """The tensors a loss term reads, in the dtype the term is computed in, for use
    `outside_autocast`: under amp float32 (autocast made them float16 where it could);
    otherwise their common dtype, so an fp16 run computes a term in fp16 where all its
    inputs are, and in fp32 where one is, as the reference implementations do."""
    if precision == "amp":
        dtype = torch.float32
    else:
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return tuple(t.to(dtype) for t in tensors)
