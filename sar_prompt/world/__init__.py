"""A synthetic world where a tiny CLIP works: coloured shapes drawn from a seed (`render`),
its classes and their base / new / novel split (`spec`), a tiny `clip.model.CLIP` pretrained
on it contrastively (`pretrain`; the weights ship with the package, `weights`), and the world
as a dataset on disk in the CoOp family's layout (`dataset`). `sar-prompt world` runs the
base-to-new comparisons on it; docs/world.md says what it shows."""
