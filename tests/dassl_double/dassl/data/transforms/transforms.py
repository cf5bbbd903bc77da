from torchvision.transforms import (
    CenterCrop, ColorJitter, Compose, GaussianBlur, Normalize, RandomApply,
    RandomCrop, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop,
    Resize, ToTensor,
)
from torchvision.transforms.functional import InterpolationMode

# Every name upstream accepts; the double implements only the common ones
# and raises NotImplementedError for the rest.
AVAI_CHOICES = [
    "random_flip", "random_resized_crop", "normalize", "instance_norm",
    "random_crop", "random_translation", "center_crop", "cutout",
    "imagenet_policy", "cifar10_policy", "svhn_policy", "randaugment",
    "randaugment_fixmatch", "randaugment2", "gaussian_noise", "colorjitter",
    "randomgrayscale", "gaussian_blur",
]
_NOT_IN_DOUBLE = {
    "instance_norm", "random_translation", "cutout", "imagenet_policy", "cifar10_policy",
    "svhn_policy", "randaugment", "randaugment_fixmatch", "randaugment2", "gaussian_noise",
}

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


def build_transform(cfg, is_train=True, choices=None):
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    for choice in choices:
        assert choice in AVAI_CHOICES
    unsupported = sorted(set(choices) & _NOT_IN_DOUBLE)
    if unsupported:
        raise NotImplementedError(f"Dassl test double does not implement transforms {unsupported}")
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    build = _build_transform_train if is_train else _build_transform_test
    return build(cfg, choices, f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}", normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = cfg.INPUT.SIZE
    tfms = []
    # without a crop, a plain resize is what brings images to SIZE
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfms.append(Resize(size, interpolation=interp))
    if "random_crop" in choices:
        print(f"+ random crop (padding = {cfg.INPUT.CROP_PADDING})")
        tfms.append(RandomCrop(size, padding=cfg.INPUT.CROP_PADDING))
    if "random_resized_crop" in choices:
        scale = cfg.INPUT.RRCROP_SCALE
        print(f"+ random resized crop (size={size}, scale={scale})")
        tfms.append(RandomResizedCrop(size, scale=scale, interpolation=interp))
    if "random_flip" in choices:
        print("+ random flip")
        tfms.append(RandomHorizontalFlip())
    if "colorjitter" in choices:
        i = cfg.INPUT
        print(f"+ color jitter (brightness={i.COLORJITTER_B}, contrast={i.COLORJITTER_C}, "
              f"saturation={i.COLORJITTER_S}, hue={i.COLORJITTER_H})")
        tfms.append(ColorJitter(brightness=i.COLORJITTER_B, contrast=i.COLORJITTER_C,
                                saturation=i.COLORJITTER_S, hue=i.COLORJITTER_H))
    if "randomgrayscale" in choices:
        print("+ random gray scale")
        tfms.append(RandomGrayscale(p=cfg.INPUT.RGS_P))
    if "gaussian_blur" in choices:
        print(f"+ gaussian blur (kernel={cfg.INPUT.GB_K})")
        tfms.append(RandomApply([GaussianBlur(cfg.INPUT.GB_K)], p=cfg.INPUT.GB_P))
    print("+ to torch tensor of range [0, 1]")
    tfms.append(ToTensor())
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfms.append(normalize)
    return Compose(tfms)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    size = cfg.INPUT.SIZE
    print(f"+ resize the smaller edge to {max(size)}")
    print(f"+ {target_size} center crop")
    print("+ to torch tensor of range [0, 1]")
    tfms = [Resize(max(size), interpolation=interp), CenterCrop(size), ToTensor()]
    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfms.append(normalize)
    return Compose(tfms)
