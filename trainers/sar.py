"""SAR variants: a method plus the SAR component, composed by a mixin.

`CoOpSAR` is `CoOp` with `SARMixin` in front; the mixin adds one loss term,
`TRAINER.SAR.WEIGHT * SAR loss`, to whatever terms the method computes. With WEIGHT 0 the
SAR loss is still computed (without gradients) and logged, as a diagnostic of how far the
learned similarity structure drifts, and training is exactly the method's.
"""
import torch

from .. import novel
from ..catalog import by_key, novel_key_for
from ..config import SAR_DEFAULTS, check_choice, check_number
from ..errors import NovelClassesError
from ..novel import normalized
from ..sar import LOSSES, SimilarityAlignment
from .coop import CoOp
from .base import handcrafted_template
from .kgcoop import KgCoOp


class SARMixin:
    uses_sar = True

    def check_cfg(self, cfg):
        """Every TRAINER.SAR value, and the novel-class file, is checked before any data or
        model is built."""
        super().check_cfg(cfg)
        check_choice(cfg.TRAINER.SAR.LOSS, LOSSES, "TRAINER.SAR.LOSS")
        for key, meaning, strict in (
                ("WEIGHT", "lambda, the weight of the SAR loss; 0 turns SAR off", False),
                ("TEMPERATURE", "the softmax temperature of the kl loss", True)):
            check_number(cfg, f"TRAINER.SAR.{key}", SAR_DEFAULTS[key], meaning, positive=strict)
        check_number(cfg, "TRAINER.SAR.NUM_NOVEL", SAR_DEFAULTS["NUM_NOVEL"],
                     "novel classes sampled per step; 0 = all", integer=True)
        key = novel_key_for(cfg.DATASET.NAME)  # ImageNet's list for its test-only variants
        list_for = by_key(key).name if by_key(key) else cfg.DATASET.NAME
        self.novel_file = cfg.TRAINER.SAR.NOVEL_FILE or novel.default_path(key)  # fingerprinted
        # Shipped or given, the list must be for this dataset.
        self.novel_list = novel.load(self.novel_file, key, list_for)

    def build_model(self):
        super().build_model()
        cfg, sar_cfg = self.cfg, self.cfg.TRAINER.SAR
        novel_list, path = self.novel_list, self.novel_file
        base = list(self.dm.dataset.classnames)
        base_keys = {normalized(n) for n in base}
        names = [n for n in novel_list.names if normalized(n) not in base_keys]
        if len(names) < len(novel_list.names):
            print(f"[sar_prompt] SAR: {len(novel_list.names) - len(names)} novel names in {path} "
                  "are training classes of this run; they are left out.")
        if not names:
            raise NovelClassesError(f"{path}: every novel class is a training class of "
                                    "this run; SAR has nothing to regularise with.")
        template = handcrafted_template(cfg)
        target = self.handcrafted_features(base + names, f"class names and {path}")
        self.novel_tokens = self.model.prompt_learner.class_tokens(
            names, source=f"{path} in the learnable prompt").to(self.device)
        self.sar = SimilarityAlignment(
            target, num_base=len(base), num_novel=sar_cfg.NUM_NOVEL, loss=sar_cfg.LOSS,
            temperature=sar_cfg.TEMPERATURE, exclude_self=sar_cfg.EXCLUDE_SELF,
            seed=cfg.SEED if cfg.SEED >= 0 else None).to(self.device)
        per_step = len(names) if sar_cfg.NUM_NOVEL <= 0 else min(sar_cfg.NUM_NOVEL, len(names))
        print(f"[sar_prompt] SAR: {len(base)} base + {len(names)} novel classes from {path} "
              f"({novel_list.provenance.get('source')}), {per_step} novel per step, "
              f"loss {sar_cfg.LOSS}, weight {sar_cfg.WEIGHT}, template {template!r}")

    def random_generators(self):
        return {**super().random_generators(), "sar": self.sar.generator}

    def step(self, image, label):
        out = super().step(image, label)
        weight = self.cfg.TRAINER.SAR.WEIGHT
        index = self.sar.sample_novel()
        with torch.set_grad_enabled(weight != 0 and torch.is_grad_enabled()):
            novel_features = self.model.text_features(self.novel_tokens, index.to(self.device))
            base_features = out.text_features if weight != 0 else out.text_features.detach()
            out.terms["sar"] = (weight, self.sar(base_features, novel_features, index))
        return out


class CoOpSAR(SARMixin, CoOp):
    """CoOp + SAR."""


class KgCoOpSAR(SARMixin, KgCoOp):
    """KgCoOp + SAR."""

