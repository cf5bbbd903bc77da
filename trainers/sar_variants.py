"""SAR variants: a method plus the SAR component, composed by a mixin.

`CoOpSAR` is `CoOp` with `SARMixin` in front; the mixin adds one loss term,
`TRAINER.SAR.WEIGHT * SAR loss`, to whatever terms the method computes. With WEIGHT 0 the
SAR loss is still computed (without gradients) and logged, as a diagnostic of how far the
learned similarity structure drifts, and training is exactly the method's.

SAR aligns class text features. For an image-conditioned method (CoCoOp) there is one set
per image, and TRAINER.SAR.CONDITION chooses which SAR uses, for base and novel classes
alike:
- `each_image` (default): conditioned on each image of the batch, averaged over the batch
  (and normalised). These are the features the method's own logits use, so SAR constrains
  what is trained (context and meta-net) and reuses the base classes' features.
- `batch_mean`: conditioned on the batch's mean image feature (normalised): one text pass
  per class instead of one per image and class. The same as `each_image` at batch size 1,
  CoCoOp's setting.
- `none`: the shared context alone, the meta-net's bias off: constrains only the context.
"""
import torch

from sar_prompt import novel
from sar_prompt.catalog import by_key, novel_key_for
from sar_prompt.errors import NovelClassesError
from sar_prompt.modeling.prompted_clip import mean_over_images
from sar_prompt.modeling.text_encoder import normalize
from sar_prompt.novel import normalized
from sar_prompt.novel.clean import screen
from sar_prompt.sar import SimilarityAlignment

from .cocoop import CoCoOp
from .coop import CoOp
from .kgcoop import KgCoOp
from .maple import MaPLe
from .promptsrc import PromptSRC
from .sar_gradient import GradientScaleLog


class SARMixin:
    uses_sar = True

    def check_cfg(self, cfg):
        """Every TRAINER.SAR value (the base class checks them), and the novel-class file,
        is checked before any data or model is built."""
        super().check_cfg(cfg)
        key = novel_key_for(cfg.DATASET.NAME)  # ImageNet's list for its test-only variants
        list_for = by_key(key).name if by_key(key) else cfg.DATASET.NAME
        self.novel_file = cfg.TRAINER.SAR.NOVEL_FILE or novel.default_path(key)  # fingerprinted
        # Shipped or given, the list must be for this dataset.
        self.novel_list = novel.load(self.novel_file, key, list_for)
        for problem in screen(self.novel_list.names):  # as `novel validate` reports them
            print(f"[sar_prompt] warning: {self.novel_file}: {problem}. Check the list with "
                  f"sar-prompt novel validate {self.novel_file}", flush=True)

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
        # SAR's target in fp32 in every precision (fp16 rounding of the features, divided
        # by the temperature, would dominate small drifts); the base classes on their own
        # first: encoded exactly as a method with fp32 frozen features encodes them
        # (PromptSRC's; KgCoOp's in an fp32 run), whichever asks first
        self.handcrafted_features(base, "dataset class names", dtype=torch.float32)
        target = self.handcrafted_features(base + names, f"class names and {path}",
                                           dtype=torch.float32)
        self.novel_tokens = self.model.prompt_learner.class_tokens(
            names, source=f"{path} in the learnable prompt").to(self.device)
        self.sar = SimilarityAlignment(
            target, num_base=len(base), num_novel=sar_cfg.NUM_NOVEL, loss=sar_cfg.LOSS,
            temperature=sar_cfg.TEMPERATURE, exclude_self=sar_cfg.EXCLUDE_SELF,
            seed=cfg.SEED if cfg.SEED >= 0 else None).to(self.device)
        per_step = len(names) if sar_cfg.NUM_NOVEL <= 0 else min(sar_cfg.NUM_NOVEL, len(names))
        condition = f", condition {sar_cfg.CONDITION}" if self.model.conditioned else ""
        templates = list(self.handcrafted_templates())
        shown = (repr(templates) if len(templates) <= 3 else  # PromptSRC's set has 60
                 f"{len(templates)} averaged, from {templates[0]!r}")
        print(f"[sar_prompt] SAR: {len(base)} base + {len(names)} novel classes from {path} "
              f"({novel_list.provenance.get('source')}), {per_step} novel per step, "
              f"loss {sar_cfg.LOSS}, weight {sar_cfg.WEIGHT}{condition}, templates {shown}")

    def sar_class_features(self, out, index, novel=None):
        """The learnable prompts' class text features SAR aligns: base (C, E), from the
        step's output where possible, and the sampled novel classes `index` (k, E):
        `novel` when they ran in the step's own text pass, else encoded here."""
        model = self.model
        if novel is not None:
            return out.class_text_features, (mean_over_images(novel) if novel.dim() == 3
                                              else novel)
        if not model.conditioned:
            return out.class_text_features, model.text_features(self.novel_tokens, index)
        mode = self.cfg.TRAINER.SAR.CONDITION
        if mode == "each_image":
            return out.class_text_features, model.class_text_features(
                self.novel_tokens, index, condition=out.image_features)
        condition = None
        if mode == "batch_mean":
            condition = normalize(out.image_features.mean(dim=0, keepdim=True))
        return (model.class_text_features(condition=condition),
                model.class_text_features(self.novel_tokens, index, condition))

    def random_generators(self):
        return {**super().random_generators(), "sar": self.sar.generator}

    def novel_in_text_pass(self):
        """Whether the sampled novel classes join the method's own text pass: when SAR
        trains and reads the same features as the method (not CoCoOp's other CONDITION
        modes)."""
        return (self.cfg.TRAINER.SAR.WEIGHT != 0 and torch.is_grad_enabled()
                and (not self.model.conditioned
                     or self.cfg.TRAINER.SAR.CONDITION == "each_image"))

    def step(self, image, label, extra_text=()):
        """The method's step plus the SAR term. With WEIGHT 0 the term is a diagnostic: it
        is computed, without gradients, only on the steps whose losses are printed."""
        weight = self.cfg.TRAINER.SAR.WEIGHT
        if not (weight != 0 or self.logged_this_step()):
            return super().step(image, label, extra_text)
        # sampled on the CPU by SAR's own generator: the prompts' lengths are known there
        index = self.sar.sample_novel()
        joins = self.novel_in_text_pass()
        requests = [*extra_text, *([(self.novel_tokens, index)] if joins else [])]
        out = super().step(image, label, requests)
        novel = out.extra_text[len(extra_text)] if joins else None
        with torch.set_grad_enabled(weight != 0 and torch.is_grad_enabled()):
            base_features, novel_features = self.sar_class_features(out, index, novel)
            if weight == 0:
                base_features = base_features.detach()
            out.terms["sar"] = (weight, self.sar(base_features, novel_features, index))
        if weight != 0:  # SAR's gradient against the method's, on the first steps
            self.__dict__.setdefault("gradient_scale", GradientScaleLog())(self, out, weight)
        return out


class CoOpSAR(SARMixin, CoOp):
    """CoOp + SAR."""


class KgCoOpSAR(SARMixin, KgCoOp):
    """KgCoOp + SAR."""


class CoCoOpSAR(SARMixin, CoCoOp):
    """CoCoOp + SAR, on the class text features TRAINER.SAR.CONDITION chooses."""


class MaPLeSAR(SARMixin, MaPLe):
    """MaPLe + SAR, on the class text features of MaPLe's deep text prompts."""


class PromptSRCSAR(SARMixin, PromptSRC):
    """PromptSRC + SAR, one more term beside its self-regularising ones."""
