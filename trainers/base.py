"""What every CLIP prompt-tuning trainer shares, on top of Dassl's TrainerX: loading CLIP,
freezing it, optimising only the prompt learner, precision and AMP, per-step loss terms,
checkpoints that hold only learnable parameters, and a machine-readable test result."""
import os.path as osp
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from dassl.engine import TrainerX
from dassl.metrics import compute_accuracy
from dassl.optim import build_optimizer, build_lr_scheduler
from dassl.utils import load_pretrained_weights
from dassl.utils import torchtools

from .. import run_result
from ..catalog import template_for
from ..config import PRECISIONS, check_choice, require_keys, required_trainer_keys
from ..errors import ConfigError
from ..modeling.backbone import effective_precision, load_clip
from ..modeling.prompted_clip import PromptedCLIP
from ..modeling.text_encoder import TextEncoder, handcrafted_features

# Buffers older CoOp-family checkpoints saved; they depend on the class set, so never load.
CLASS_DEPENDENT_KEYS = ("token_prefix", "token_suffix", "token_midfix")


def handcrafted_template(cfg):
    """The frozen hand-crafted prompt: TRAINER.COOP.TEMPLATE, else the dataset's template."""
    return cfg.TRAINER.COOP.TEMPLATE or template_for(cfg.DATASET.NAME)


@dataclass
class StepOutput:
    """One training step's logits, the class text features they used, and its loss terms
    as name -> (weight, value); the step's loss is the weighted sum."""
    logits: torch.Tensor
    text_features: torch.Tensor
    terms: "OrderedDict[str, tuple]" = field(default_factory=OrderedDict)

    def total(self):
        return sum(w * v for w, v in self.terms.values() if w != 0)


class PromptTuningTrainer(TrainerX):
    """Subclasses implement `build_prompt_learner` and, for extra loss terms, `step`."""

    uses_sar = False

    def check_cfg(self, cfg):
        require_keys(cfg, required_trainer_keys(sar=self.uses_sar), type(self).__name__)
        check_choice(cfg.TRAINER.COOP.PREC, PRECISIONS, "TRAINER.COOP.PREC")

    # -- model -------------------------------------------------------------------------
    def build_prompt_learner(self, clip_model, text_encoder, classnames):
        raise NotImplementedError

    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        self.precision = effective_precision(cfg.TRAINER.COOP.PREC, self.device)
        print(f"[sar_prompt] loading CLIP {cfg.MODEL.BACKBONE.NAME} ({self.precision})")
        clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH, self.precision)
        resolution = clip_model.visual.input_resolution
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise ConfigError(f"INPUT.SIZE is {tuple(cfg.INPUT.SIZE)}, but this CLIP takes "
                              f"{resolution}x{resolution} images; set INPUT.SIZE "
                              f"({resolution}, {resolution}).")
        for p in clip_model.parameters():
            p.requires_grad_(False)
        self.clip_model = clip_model
        self.text_encoder = TextEncoder(clip_model)
        learner = self.build_prompt_learner(clip_model, self.text_encoder, classnames)
        self.model = PromptedCLIP(clip_model, self.text_encoder, learner)
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)
        self.model.to(self.device)
        learnable = [p for p in self.model.prompt_learner.parameters() if p.requires_grad]
        print(f"[sar_prompt] learnable parameters: {sum(p.numel() for p in learnable):,}")
        self.optim = build_optimizer(learnable, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "amp" else None

    def handcrafted_features(self, names, source):
        """Normalised features of the frozen hand-crafted prompt for `names`. Each name is
        encoded once per run, so KgCoOp's term and SAR's target share the base classes'."""
        cache = self.__dict__.setdefault("_handcrafted_cache", {})
        todo = [n for n in dict.fromkeys(names) if n not in cache]
        if todo:
            feats = handcrafted_features(self.text_encoder, todo, handcrafted_template(self.cfg),
                                         source)
            cache.update(zip(todo, feats))
        return torch.stack([cache[n] for n in names])

    def autocast(self):
        if self.precision == "amp":
            return torch.amp.autocast("cuda")
        return nullcontext()

    # -- training ----------------------------------------------------------------------
    def step(self, image, label) -> StepOutput:
        """The method's forward pass and loss terms for one batch (CoOp: cross-entropy)."""
        text = self.model.text_features()
        logits = self.model.logits(self.model.encode_images(image), text)
        out = StepOutput(logits, text)
        out.terms["ce"] = (1.0, torch.nn.functional.cross_entropy(logits, label))
        return out

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            out = self.step(image, label)
            loss = out.total()
        if self.scaler is not None:
            self.optim.zero_grad()
            self.detect_anomaly(loss)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(out.logits, label)[0].item()}
        if len(out.terms) > 1:
            summary.update({name: value.item() for name, (_, value) in out.terms.items()})
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def model_inference(self, input):
        return self.model(input)

    # -- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def test(self, split=None):
        with self.model.frozen_text_features():
            accuracy = super().test(split)
        resolved = split or self.cfg.TEST.SPLIT
        if resolved != "val" or self.val_loader is None:
            checkpoint = getattr(self, "loaded_checkpoint", None)
            # after training: the last epoch run, or the resumed one if none was left to run
            epoch = checkpoint["epoch"] if checkpoint else max(self.epoch + 1, self.start_epoch)
            run_result.write_run_result(self.cfg, accuracy, epoch, checkpoint)
        return accuracy

    # -- checkpoints -------------------------------------------------------------------
    def load_model(self, directory, epoch=None):
        """Load the learnable prompt parameters; class-dependent tensors are rebuilt for the
        current classes, so a base-class checkpoint evaluates on new classes."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = "model-best.pth.tar" if epoch is None else f"model.pth.tar-{epoch}"
        for name in self.get_model_names():
            path = osp.join(directory, name, model_file)
            if not osp.exists(path):
                raise FileNotFoundError(
                    f"No checkpoint at {path}. Train first, or check --model-dir / --load-epoch "
                    f"(the epochs saved there: {_saved_epochs(osp.join(directory, name))}).")
            checkpoint = torchtools.load_checkpoint(path)
            state = {k: v for k, v in checkpoint["state_dict"].items()
                     if k.split(".")[-1] not in CLASS_DEPENDENT_KEYS}
            print(f'Loading weights to {name} from "{path}" (epoch = {checkpoint["epoch"]})')
            self._models[name].load_state_dict(state)
            self.loaded_checkpoint = {"path": osp.abspath(path), "epoch": checkpoint["epoch"]}


def _saved_epochs(folder):
    import glob

    found = sorted(int(p.rsplit("-", 1)[1]) for p in glob.glob(osp.join(folder, "model.pth.tar-*"))
                   if p.rsplit("-", 1)[1].isdigit())
    return ", ".join(map(str, found)) or "none"
