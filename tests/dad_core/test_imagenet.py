"""ImageNet vocabulary shipped with dad_core: wnid order, CLIP class names, the A/R subsets."""
import pytest

from dad_core import imagenet


def test_imagenet1k_wnids_are_1000_sorted_unique_ids():
    wnids = imagenet.imagenet1k_wnids()
    assert len(wnids) == 1000 == len(set(wnids))
    assert list(wnids) == sorted(wnids)
    assert all(imagenet.is_wnid(w) for w in wnids)


def test_open_clip_class_names_follow_wnid_order():
    # Spot checks from the standard ImageNet-1k label list (index: wnid -> name).
    names = imagenet.wnid_to_classname()
    assert imagenet.wnid_to_index()["n01440764"] == 0 and names["n01440764"] == "tench"
    assert imagenet.wnid_to_index()["n02123045"] == 281 and names["n02123045"] == "tabby cat"
    assert imagenet.wnid_to_index()["n02690373"] == 404 and names["n02690373"] == "airliner"
    assert imagenet.wnid_to_index()["n15075141"] == 999 and names["n15075141"] == "toilet paper"


@pytest.mark.parametrize("subset", ["imagenet-a", "imagenet-r"])
def test_200_class_subsets_lie_inside_imagenet1k(subset):
    wnids = imagenet.subset_wnids(subset)
    assert len(wnids) == 200 == len(set(wnids))
    idx = imagenet.subset_indices(subset)
    assert idx == sorted(idx) and all(0 <= i < 1000 for i in idx)
    assert [imagenet.imagenet1k_wnids()[i] for i in idx] == list(wnids)


def test_classnames_for_wnids_and_unknown_ids():
    assert imagenet.classnames_for_wnids(["n01443537"]) == ["goldfish"]
    assert imagenet.all_imagenet_wnids(["n01443537", "n01440764"])
    assert not imagenet.all_imagenet_wnids(["dog"]) and not imagenet.all_imagenet_wnids([])
    with pytest.raises(KeyError, match="n00000000"):
        imagenet.classnames_for_wnids(["n00000000"])
    with pytest.raises(ValueError, match="imagenet-x"):
        imagenet.subset_wnids("imagenet-x")
