"""Dassl trainers: CoOp, KgCoOp, CoCoOp, MaPLe, PromptSRC and their SAR variants (each
method + the SAR component), and zero-shot CLIP."""
from dassl.engine import TRAINER_REGISTRY

from sar_prompt.dassl_glue.registry import register

from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .maple import MaPLe
from .promptsrc import PromptSRC
from .sar_variants import CoCoOpSAR, CoOpSAR, KgCoOpSAR, MaPLeSAR, PromptSRCSAR, SARMixin
from .zsclip import ZeroshotCLIP

ALL = (CoOp, KgCoOp, CoCoOp, MaPLe, PromptSRC, ZeroshotCLIP, CoOpSAR, KgCoOpSAR, CoCoOpSAR,
       MaPLeSAR, PromptSRCSAR)

for _trainer in ALL:
    register(TRAINER_REGISTRY, _trainer)

__all__ = ["CoOp", "KgCoOp", "CoCoOp", "MaPLe", "PromptSRC", "ZeroshotCLIP", "CoOpSAR",
           "KgCoOpSAR", "CoCoOpSAR", "MaPLeSAR", "PromptSRCSAR", "SARMixin", "ALL"]
