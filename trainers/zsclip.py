"""Zero-shot CLIP (Radford et al., 2021), the baseline the CoOp family reports: each class
is the dataset's hand-crafted prompt ("a photo of a {}." or the dataset's template, as in
the CoOp family's `ZeroshotCLIP`). Nothing is learnable and no optimizer is built."""
from sar_prompt.modeling.prompted_clip import HandcraftedCLIP

from .base import CLIPTrainer


class ZeroshotCLIP(CLIPTrainer):
    def build_model(self):
        clip_model = self.build_clip().to(self.device)
        names = self.dm.dataset.classnames
        templates = self.handcrafted_templates()
        print(f"[sar_prompt] zero-shot prompts: {', '.join(templates)}")
        text = self.handcrafted_features(names, "dataset class names")
        self.model = HandcraftedCLIP(self.image_encoder, clip_model.logit_scale, text)
        self.model.to(self.device)

    def model_inference(self, input):
        return self.model(input)

    def train(self):
        """Nothing to train: evaluate, as the CoOp family runs it (--eval-only)."""
        print("[sar_prompt] ZeroshotCLIP has nothing to train; evaluating.")
        self.test()

    def result_epoch(self):
        return 0
