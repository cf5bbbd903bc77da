"""KgCoOp (Yao et al., CVPR 2023): CoOp plus a term that keeps each class's learned text
feature close to its hand-crafted one: loss = CE + W * (1 - mean_c cos(w_c, w_c^clip)).
Reads TRAINER.COOP (as KgCoOp's repository does), W included."""
from .coop import CoOp


class KgCoOp(CoOp):
    template_style = "kgcoop"

    def build_model(self):
        super().build_model()
        self.handcrafted = self.handcrafted_features(self.dm.dataset.classnames,
                                                     "dataset class names")

    def step(self, image, label, extra_text=()):
        out = super().step(image, label, extra_text)
        with self.loss_term(out.class_text_features, self.handcrafted) as (learned, handcrafted):
            cos = (learned * handcrafted).sum(dim=-1)
            out.terms["kg"] = (self.method_cfg.W, 1.0 - cos.mean())
        return out
