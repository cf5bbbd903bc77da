from .transforms import INTERPOLATION_MODES, build_transform
