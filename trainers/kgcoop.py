"""KgCoOp (Yao et al., CVPR 2023): CoOp plus a term that keeps each class's learned text
feature close to its hand-crafted one: loss = CE + W * (1 - mean_c cos(w_c, w_c^clip))."""
from ..config import COOP_DEFAULTS, check_number
from .coop import CoOp


class KgCoOp(CoOp):
    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        check_number(cfg, "TRAINER.COOP.W", COOP_DEFAULTS["W"],
                     "KgCoOp's weight of 1 - cos(learned, hand-crafted)")

    def build_model(self):
        super().build_model()
        self.handcrafted = self.handcrafted_features(self.dm.dataset.classnames,
                                                     "dataset class names")

    def step(self, image, label):
        out = super().step(image, label)
        cos = (out.text_features * self.handcrafted.to(out.text_features.dtype)).sum(dim=-1)
        out.terms["kg"] = (self.cfg.TRAINER.COOP.W, 1.0 - cos.mean())
        return out
