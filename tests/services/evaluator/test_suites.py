import pytest

from dad_core.imagenet import imagenet1k_classnames, subset_indices, subset_wnids
from services.evaluator.suites import (SUITES, SuiteError, check_imagenet_model, imagefolder_protocol,
                                       imagenet_protocol, parse_suites)


def test_suite_tokens_resolve_under_the_data_root_or_to_explicit_locations():
    requests = parse_suites(["imagenet-val,imagenet-a=s3://b/ina", "imagefolder:/data/pacs/cartoon/",
                             "toons=imagefolder:s3://b/pacs/cartoon"], "/data")
    assert [(r.label, r.uri, r.suite.protocol) for r in requests] == [
        ("imagenet-val", "/data/imagenet-val", "imagenet-1k"),
        ("imagenet-a", "s3://b/ina", "imagenet-200"),
        ("cartoon", "/data/pacs/cartoon/", "imagefolder"),
        ("toons", "s3://b/pacs/cartoon", "imagefolder")]


@pytest.mark.parametrize("tokens, root, message", [
    (["imagenet-z"], "/d", "unknown suite 'imagenet-z'"),
    (["imagenet-val"], None, "needs --data-root"),
    (["imagenet-a", "imagenet-a"], "/d", "given twice"),
    (["imagefolder:"], "/d", "needs a location"),
    (["imagefolder:/x/imagenet-a"], "/d", "has the name of a paper suite; name it: OTHER=imagefolder:/x/imagenet-a"),
])
def test_bad_suite_tokens_fail_naming_the_suite(tokens, root, message):
    with pytest.raises(SuiteError, match=message):
        parse_suites(tokens, root)


def test_every_paper_column_has_a_suite():
    assert [s.column for s in SUITES.values()] == ["ImageNet", "V2", "R", "Sketch", "A", "C↓", "Stylized"]


def test_imagenet_protocol_scores_all_logits_and_reads_imagenetv2_index_folders():
    p = imagenet_protocol(["n01440764", "n01443537"], "imagenet-val")
    assert p.logit_indices is None and p.target_of_logit[:3] == (0, 1, -1) and len(p.target_of_logit) == 1000
    v2 = imagenet_protocol(["0", "1", "10"], "imagenet-v2")  # ImageNetV2 ships folders named by class index
    assert v2.target_of_logit[10] == 2 and v2.target_of_logit[2] == -1


def test_200_class_protocol_keeps_only_the_listed_logits():
    wnids = list(subset_wnids("imagenet-r"))
    p = imagenet_protocol(wnids[:2], "imagenet-r", subset="imagenet-r")
    assert p.logit_indices == tuple(subset_indices("imagenet-r")) and len(p.logit_indices) == 200
    assert p.target_of_logit[:3] == (0, 1, -1)
    with pytest.raises(SuiteError, match="n01440764.*not among the 200 classes of imagenet-r"):
        imagenet_protocol(["n01440764"], "imagenet-r", subset="imagenet-r")
    with pytest.raises(SuiteError, match="'dog'.*not ImageNet-1k classes"):
        imagenet_protocol(["dog"], "imagenet-val")


def test_imagenet_suites_need_a_1000_class_model():
    check_imagenet_model(imagenet1k_classnames(), "imagenet-a")
    with pytest.raises(SuiteError, match="suite 'imagenet-a' needs a model over the 1,000 ImageNet classes.*3 classes"):
        check_imagenet_model(["dog", "cat", "horse"], "imagenet-a")


def test_imagefolder_classes_map_by_name_loosely_and_unmapped_ones_are_named():
    p = imagefolder_protocol(["dog", "elephant"], ["dog", "elephant"], ["Elephant", "horse", "dog"], "pacs")
    assert p.logit_indices == (2, 0) and p.target_of_logit == (0, 1)
    mapped = imagefolder_protocol(["c0"], ["horse"], ["elephant", "horse"], "x")  # class map gave c0 -> horse
    assert mapped.logit_indices == (1,)
    with pytest.raises(SuiteError, match=r"suite 'pacs': classes \['giraffe'\] do not map"):
        imagefolder_protocol(["dog", "giraffe"], ["dog", "giraffe"], ["dog", "cat"], "pacs")
    with pytest.raises(SuiteError, match="same model class"):
        imagefolder_protocol(["a", "b"], ["dog", "Dog"], ["dog"], "pacs")
