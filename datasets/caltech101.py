"""Caltech101 in the CoOp layout: caltech-101/101_ObjectCategories and split_zhou_Caltech101.json."""
from .base import SplitDataset


class Caltech101(SplitDataset):
    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
