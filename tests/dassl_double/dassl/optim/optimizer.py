import warnings

import torch
import torch.nn as nn

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def _staged_param_groups(model, optim_cfg):
    # "new" layers train at the base lr, everything else at lr * BASE_LR_MULT
    if not isinstance(model, nn.Module):
        raise TypeError("When staged_lr is True, model given to build_optimizer() must be an instance of nn.Module")
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    base, new = [], []
    for name, module in model.named_children():
        (new if name in new_layers else base).extend(module.parameters())
    return [{"params": base, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT}, {"params": new}]


def build_optimizer(model, optim_cfg, param_groups=None):
    c = optim_cfg
    if c.NAME not in AVAI_OPTIMS:
        raise ValueError(f"optim must be one of {AVAI_OPTIMS}, but got {c.NAME}")
    if param_groups is not None and c.STAGED_LR:
        warnings.warn("staged_lr will be ignored, if you need to use staged_lr, "
                      "please bind it with param_groups yourself.")
    if param_groups is None:
        if c.STAGED_LR:
            param_groups = _staged_param_groups(model, c)
        else:
            param_groups = model.parameters() if isinstance(model, nn.Module) else model

    betas = (c.ADAM_BETA1, c.ADAM_BETA2)
    if c.NAME in ("adam", "amsgrad"):
        return torch.optim.Adam(param_groups, lr=c.LR, weight_decay=c.WEIGHT_DECAY,
                                betas=betas, amsgrad=c.NAME == "amsgrad")
    if c.NAME == "sgd":
        return torch.optim.SGD(param_groups, lr=c.LR, momentum=c.MOMENTUM, weight_decay=c.WEIGHT_DECAY,
                               dampening=c.SGD_DAMPNING, nesterov=c.SGD_NESTEROV)
    if c.NAME == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=c.LR, momentum=c.MOMENTUM,
                                   weight_decay=c.WEIGHT_DECAY, alpha=c.RMSPROP_ALPHA)
    if c.NAME == "adamw":
        return torch.optim.AdamW(param_groups, lr=c.LR, weight_decay=c.WEIGHT_DECAY, betas=betas)
    # upstream ships its own RAdam; the double does not
    raise NotImplementedError(f"Optimizer {c.NAME} not implemented in the Dassl test double")
