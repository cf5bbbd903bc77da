"""KgCoOp (Yao et al., CVPR 2023): CoOp plus a term that keeps each class's learned text
feature close to its hand-crafted one: loss = CE + W * (1 - mean_c cos(w_c, w_c^clip))."""
from ..modeling.text_encoder import handcrafted_features
from .base import handcrafted_template
from .coop import CoOp


class KgCoOp(CoOp):
    def build_model(self):
        super().build_model()
        template = handcrafted_template(self.cfg)
        self.handcrafted = handcrafted_features(self.text_encoder, self.dm.dataset.classnames,
                                                template, "dataset class names")

    def step(self, image, label):
        out = super().step(image, label)
        cos = (out.text_features * self.handcrafted.to(out.text_features.dtype)).sum(dim=-1)
        out.terms["kg"] = (self.cfg.TRAINER.COOP.W, 1.0 - cos.mean())
        return out
