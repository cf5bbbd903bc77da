"""The timing sections: training steps, the text pass alone, evaluation, and SAR's cost as
its novel classes grow. Each returns a JSON-ready record (see timing.group)."""
import gc
import json

import torch

from . import timing, work
from .build import (METHOD_CONFIGS, build_trainer, distinct_from, make_cfg, synthetic_batch,
                    write_novel_list)
from .reference_way import full_text_features, reference_inference, reference_step

FLOOR = "image encoder"


def _release(*trainers):
    """Free trainers' models before the next ones are built (one CLIP per trainer)."""
    for trainer in trainers:
        trainer.__dict__.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _caltech_names(count):
    from sar_prompt.classnames import class_names

    return class_names("caltech101")[:count]


def _floor(trainer, images):
    """The frozen image encoder alone, without a graph: no step can be faster."""
    def run():
        with torch.no_grad(), trainer.autocast():
            trainer.model.image_encoder(images)
    return run


def _novel_per_step(trainer):
    k = trainer.cfg.TRAINER.SAR.NUM_NOVEL
    return len(trainer.novel_tokens) if k <= 0 else min(k, len(trainer.novel_tokens))


def steps(setup, opts):
    """Per method X: X's and XSAR's `forward_backward`, the reference-way X step and the
    image encoder's forward, interleaved, at X's reference batch size; then each one's
    operations counted (work.py)."""
    names = _caltech_names(opts.classes)
    out = {"dataset": "Caltech101", "classes": len(names), "methods": {}}
    for method in opts.methods:
        cfg = make_cfg(setup, method, method, batch_size=opts.batch_size)
        sar_cfg = make_cfg(setup, method + "SAR", method, batch_size=opts.batch_size,
                           opts=["TRAINER.SAR.NUM_NOVEL", str(len(names))])
        ours, with_sar = build_trainer(cfg, names), build_trainer(sar_cfg, names)
        batch_size = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
        batch = synthetic_batch(setup, batch_size, len(names))
        x, xs, ref = method, method + "SAR", f"reference-way {method}"
        variants = {x: lambda: ours.forward_backward(batch),
                    xs: lambda: with_sar.forward_backward(batch),
                    ref: lambda: reference_step(ours, batch),
                    FLOOR: _floor(ours, batch["img"])}
        times = timing.rounds(variants, opts.repeats, opts.warmup,
                              timing.synchronizer(setup.device), desc=f"steps {method}")
        ratios = [timing.labelled(f"{xs}/{x}", times, xs, x, "SAR's cost over the method"),
                  timing.labelled(f"{xs}/{ref}", times, xs, ref,
                                  "SAR variant vs the method as its reference computes it"),
                  timing.labelled(f"speed-up {x}", times, ref, x,
                                  "reference-way step time / ours (>1: ours is faster)"),
                  timing.labelled(f"{x}/floor", times, x, FLOOR,
                                  "step / image-encoder forward alone"),
                  timing.labelled(f"{xs}/floor", times, xs, FLOOR,
                                  "SAR step / image-encoder forward alone")]
        out["methods"][method] = work.add_work(timing.group(
            times, ratios, config=METHOD_CONFIGS[method], batch_size=batch_size,
            classes=len(names), precision=ours.precision,
            novel_per_step=_novel_per_step(with_sar), novel_file=str(with_sar.novel_file)),
            work.count(variants))
        _release(ours, with_sar)
    return out


def text(setup, opts):
    """Per method: the class text features alone, no gradient: ours (up to the longest
    end-of-text token) vs CLIP's pass over all 77 positions. Also their largest difference."""
    names = _caltech_names(opts.classes)
    out = {"dataset": "Caltech101", "classes": len(names), "methods": {}}
    for method in opts.methods:
        trainer = build_trainer(make_cfg(setup, method, method), names)
        model = trainer.model

        def ours():
            with torch.no_grad(), trainer.autocast():
                return model.text_features()

        def full():
            with torch.no_grad(), trainer.autocast():
                return full_text_features(trainer.clip_model, model.prompt_learner())

        with torch.no_grad():
            positions = model.prompt_learner().embeddings.shape[1]
        difference = (ours().float() - full().float()).abs().max().item()
        ref = "full 77 positions"
        times = timing.rounds({"ours": ours, ref: full}, opts.repeats, opts.warmup,
                              timing.synchronizer(setup.device), desc=f"text {method}")
        out["methods"][method] = timing.group(
            times, [timing.labelled("speed-up", times, ref, "ours",
                                    "full-context pass time / ours (>1: ours is faster)")],
            classes=len(names), positions=positions,
            context=int(trainer.clip_model.positional_embedding.shape[0]),
            precision=trainer.precision, max_abs_difference=difference)
        _release(trainer)
    return out


def evaluation(setup, opts):
    """Per method: classifying `--eval-images` images among `--eval-classes` ImageNet
    classes at the test batch size: `trainer.evaluation()` + `model_inference` per batch
    vs the reference way (text re-encoded for every batch; CoCoOp: every image)."""
    from sar_prompt.classnames import class_names

    names = class_names("imagenet")[:opts.eval_classes]
    out = {"dataset": "ImageNet", "classes": len(names), "images": opts.eval_images,
           "methods": {}}
    for method in opts.methods:
        trainer = build_trainer(make_cfg(setup, method, method, dataset="ImageNet"), names)
        trainer.set_model_mode("eval")
        batch_size = trainer.cfg.DATALOADER.TEST.BATCH_SIZE
        images = synthetic_batch(setup, opts.eval_images, len(names))["img"]
        batches = images.split(batch_size)

        def ours():
            with torch.no_grad(), trainer.evaluation():
                for batch in batches:
                    trainer.model_inference(batch)

        def reference():
            for batch in batches:
                reference_inference(trainer, batch)

        ref = f"reference-way {method}"
        times = timing.rounds({method: ours, ref: reference}, opts.repeats, opts.warmup,
                              timing.synchronizer(setup.device), desc=f"eval {method}")
        out["methods"][method] = timing.group(
            times, [timing.labelled("speed-up", times, ref, method,
                                    "reference-way evaluation time / ours (>1: ours is faster)")],
            batch_size=batch_size, classes=len(names), images=opts.eval_images,
            precision=trainer.precision)
        _release(trainer)
    return out


def growth_list(setup):
    """A Caltech101 novel list of >= 200 names: the shipped ImageNet list minus Caltech101's
    classes (a benchmark input, not a list for training)."""
    from sar_prompt import novel
    from sar_prompt.classnames import class_names

    shipped = novel.default_path("imagenet")
    names = json.loads(shipped.read_text(encoding="utf-8"))["novel_classes"]
    names = distinct_from(names, class_names("caltech101"))
    return write_novel_list(
        setup.workdir / "growth_novel_classes.json", "Caltech101", names,
        f"benchmark input: the names of {shipped.name} shipped with sar_prompt that are not "
        "Caltech101 classes, to time SAR with many novel classes; not chosen for Caltech101")


def sar_growth(setup, opts):
    """CoOpSAR with NUM_NOVEL in `--novel`, each relative to CoOp, interleaved."""
    from sar_prompt.errors import ConfigError

    names = _caltech_names(opts.classes)
    path, available = growth_list(setup)
    if max(opts.novel) > available:
        raise ConfigError(f"--novel {max(opts.novel)}: the growth benchmark's novel list has "
                          f"{available} names; give at most {available}.")
    cfg = make_cfg(setup, "CoOp", "CoOp", batch_size=opts.batch_size)
    trainers = {"CoOp": build_trainer(cfg, names)}
    for k in opts.novel:
        sar_cfg = make_cfg(setup, "CoOpSAR", "CoOp", batch_size=opts.batch_size, opts=[
            "TRAINER.SAR.NUM_NOVEL", str(k), "TRAINER.SAR.NOVEL_FILE", str(path)])
        trainers[f"CoOpSAR novel={k}"] = build_trainer(sar_cfg, names)
    batch_size = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
    batch = synthetic_batch(setup, batch_size, len(names))
    variants = {name: (lambda t=t: t.forward_backward(batch)) for name, t in trainers.items()}
    times = timing.rounds(variants, opts.repeats, opts.warmup,
                          timing.synchronizer(setup.device), desc="sar_growth")
    ratios = [timing.labelled(f"{name}/CoOp", times, name, "CoOp", "SAR's cost over CoOp")
              for name in trainers if name != "CoOp"]
    record = work.add_work(timing.group(
        times, ratios, batch_size=batch_size, classes=len(names), novel_file_names=available,
        novel_per_step={name: _novel_per_step(t) for name, t in trainers.items()
                        if name != "CoOp"},
        precision=trainers["CoOp"].precision), work.count(variants))
    _release(*trainers.values())
    return record
