import random
from collections import defaultdict

from dassl.utils import check_isfile


class Datum:
    """One sample: image path plus class label, domain label and class name (read-only)."""

    def __init__(self, impath="", label=0, domain=0, classname=""):
        assert isinstance(impath, str)
        assert check_isfile(impath)  # note: the default "" therefore fails, as upstream
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    impath = property(lambda self: self._impath)
    label = property(lambda self: self._label)
    domain = property(lambda self: self._domain)
    classname = property(lambda self: self._classname)


class DatasetBase:
    """Container of Datum lists: labelled train, optional unlabelled train, optional val, test."""

    dataset_dir = ""
    domains = []

    def __init__(self, train_x=None, train_u=None, val=None, test=None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    train_x = property(lambda self: self._train_x)
    train_u = property(lambda self: self._train_u)
    val = property(lambda self: self._val)
    test = property(lambda self: self._test)
    lab2cname = property(lambda self: self._lab2cname)
    classnames = property(lambda self: self._classnames)
    num_classes = property(lambda self: self._num_classes)

    @staticmethod
    def get_num_classes(data_source):
        # labels are assumed to be 0..K-1, so K = largest label + 1
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source):
        mapping = {item.label: item.classname for item in data_source}
        labels = sorted(mapping)
        return {k: mapping[k] for k in labels}, [mapping[k] for k in labels]

    def check_input_domains(self, source_domains, target_domains):
        assert len(source_domains) > 0, "source_domains (list) is empty"
        assert len(target_domains) > 0, "target_domains (list) is empty"
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains):
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    def generate_fewshot_dataset(self, *data_sources, num_shots=-1, repeat=False):
        """Keep `num_shots` items per class from each source. The sequence of
        `random` calls matches upstream so a given seed picks the same items."""
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources
        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            subset = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    subset.extend(random.sample(items, num_shots))
                elif repeat:
                    subset.extend(random.choices(items, k=num_shots))
                else:
                    subset.extend(items)
            output.append(subset)
        return output[0] if len(output) == 1 else output

    def split_dataset_by_label(self, data_source):
        groups = defaultdict(list)  # insertion order = order of first appearance
        for item in data_source:
            groups[item.label].append(item)
        return groups

    def split_dataset_by_domain(self, data_source):
        groups = defaultdict(list)
        for item in data_source:
            groups[item.domain].append(item)
        return groups
