"""Dassl trainers: CoOp, KgCoOp, CoCoOp and their SAR variants (each method + the SAR
component), and zero-shot CLIP."""
from dassl.engine import TRAINER_REGISTRY

from sar_prompt.registry import register

from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .sar import CoCoOpSAR, CoOpSAR, KgCoOpSAR, SARMixin
from .zsclip import ZeroshotCLIP

ALL = (CoOp, KgCoOp, CoCoOp, ZeroshotCLIP, CoOpSAR, KgCoOpSAR, CoCoOpSAR)

for _trainer in ALL:
    register(TRAINER_REGISTRY, _trainer)

__all__ = ["CoOp", "KgCoOp", "CoCoOp", "ZeroshotCLIP", "CoOpSAR", "KgCoOpSAR", "CoCoOpSAR",
           "SARMixin", "ALL"]
