"""Dassl trainers: CoOp and KgCoOp, and their SAR variants (each method + the SAR component)."""
from dassl.engine import TRAINER_REGISTRY

from ..registry import register
from .coop import CoOp
from .kgcoop import KgCoOp
from .sar import CoOpSAR, KgCoOpSAR, SARMixin

ALL = (CoOp, KgCoOp, CoOpSAR, KgCoOpSAR)

for _trainer in ALL:
    register(TRAINER_REGISTRY, _trainer)
