"""`python -m services.evaluator` end to end on tiny ImageFolders: JSON per evaluation, the paper table, errors."""
import json
import re
import shutil

import pytest

from services.evaluator.cli import main
from services.evaluator.results import list_results


@pytest.fixture
def data_root(tiny_image_folder, make_image_folder, tmp_path):
    """imagenet-val (3 wnid classes x 4 JPEGs + 1 broken file) and a PACS-like folder (dog, cat, horse)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_image_folder, root / "imagenet-val")
    (root / "imagenet-val" / "n01440764" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    make_image_folder(root / "cartoon", classes=("dog", "cat", "horse"), per_class=2)
    return root


def _only_result(out):
    results = list_results(str(out))
    assert len(results) == 1
    return results[0]


def test_student_and_teacher_runs_write_json_and_one_combined_table(data_root, imagenet_student, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--model", str(imagenet_student), "--name", "student", "--data-root", str(data_root),
                 "--suites", "imagenet-val,imagenet-c", f"val-folder=imagefolder:{data_root / 'imagenet-val'}",
                 "--build-c-from", str(data_root / "imagenet-val"), "--c-corruptions", "fog,pixelate",
                 "--c-severities", "1,5", "--c-image-size", "32", "--out", str(out), "--batch-size", "5"]) == 0
    result = _only_result(out)
    val = result["suites"]["imagenet-val"]
    assert (val["num_images"], val["num_skipped"], val["skipped_reasons"]) == (12, 1, {"corrupt": 1})
    assert val["ci95"][0] <= val["top1"] <= val["ci95"][1] and val["protocol"] == "imagenet-1k"
    assert sorted(val["per_class"]) == ["n01440764", "n01443537", "n02123045"]
    assert sum(c["total"] for c in val["per_class"].values()) == 12
    c = result["suites"]["imagenet-c"]
    assert c["metric"] == "mCE" and c["complete"] is False and set(c["ce"]) == {"fog", "pixelate"}
    assert c["num_images"] == 12 * 4 and set(c["top1_by_corruption"]["fog"]) == {"1", "5"}
    # The same folder as an imagefolder suite: wnids map through their ImageNet names onto the student's
    # classes, and scoring 3 logits instead of 1,000 can only keep or raise top-1.
    folder = result["suites"]["val-folder"]
    assert folder["protocol"] == "imagefolder" and folder["num_images"] == 12 and folder["top1"] >= val["top1"]
    assert [(m["suite"], m["metric"]) for m in result["metrics"]] == [
        ("imagenet-val", "top1"), ("imagenet-c", "mCE"), ("val-folder", "top1")]

    assert main(["--model", "teacher:tiny", "--suites", f"imagefolder:{data_root / 'cartoon'}",
                 "--out", str(out)]) == 0
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| Model | ImageNet | C↓ | cartoon | val-folder | Avg |"
    assert table[2].startswith("| student | ") and table[3].startswith("| teacher:tiny | – | – | ")
    teacher = [r for r in list_results(str(out)) if r["name"] == "teacher:tiny"][0]
    assert teacher["model"]["teacher"]["model"] == "tiny-clip-vit"
    assert sorted(teacher["suites"]["cartoon"]["per_class"]) == ["cat", "dog", "horse"]
    assert "| student |" in capsys.readouterr().out


def test_imagefolder_classes_map_through_a_class_map(data_root, three_class_checkpoint, tmp_path):
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["canine", "feline", "equine"]))
    class_map = tmp_path / "map.json"
    class_map.write_text(json.dumps({"dog": "canine", "cat": "feline", "horse": "equine"}))
    out = tmp_path / "out"
    args = ["--model", str(three_class_checkpoint), "--arch", "test_resnet", "--class-names", str(names),
            "--image-size", "32", "--suites", f"imagefolder:{data_root / 'cartoon'}", "--out", str(out)]
    assert main(args + ["--class-map", str(class_map)]) == 0
    suite = _only_result(out)["suites"]["cartoon"]
    assert suite["num_images"] == 6 and sorted(suite["per_class"]) == ["cat", "dog", "horse"]
    assert not list((out / "results").glob("*.parquet")) and "predictions" not in suite


def test_predictions_name_each_image_and_agree_with_the_counts(data_root, three_class_checkpoint, tmp_path):
    """--predictions: one row per scored image (what a paired test between two models needs)."""
    from services.evaluator.results import read_predictions

    names = tmp_path / "names.json"
    names.write_text(json.dumps(["dog", "cat", "horse"]))
    out = tmp_path / "out"
    assert main(["--model", str(three_class_checkpoint), "--arch", "test_resnet", "--class-names", str(names),
                 "--image-size", "32", "--suites", f"cartoon=imagefolder:{data_root / 'cartoon'}", "--out", str(out),
                 "--predictions", "--batch-size", "4"]) == 0
    result = _only_result(out)
    table = read_predictions(str(next((out / "results").glob("*.json")))).to_pylist()
    assert len(table) == 6 and len({r["source_id"] for r in table}) == 6 and {r["suite"] for r in table} == {"cartoon"}
    assert sum(r["label"] == r["prediction"] for r in table) == result["suites"]["cartoon"]["correct"]
    assert "predictions" not in result["suites"]["cartoon"]


@pytest.mark.parametrize("case, message", [
    ("missing-suite", "suite 'imagenet-a': source '.*imagenet-a' does not exist"),
    ("unmapped", r"suite 'cartoon': classes \['cat', 'dog', 'horse'\] do not map"),
    ("imagenet-on-3-classes", "suite 'imagenet-val' needs a model over the 1,000 ImageNet classes"),
    ("unreadable-checkpoint", "cannot load checkpoint '.*garbage.pth'"),
    ("missing-c", "suite 'imagenet-c': folder '.*imagenet-c' does not exist"),
])
def test_bad_input_fails_with_a_clear_error_naming_it(case, message, data_root, three_class_checkpoint, tmp_path,
                                                      capsys):
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    three = ["--model", str(three_class_checkpoint), "--arch", "test_resnet", "--class-names", str(tmp_path / "classes.txt")]
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    args = {"missing-suite": three + ["--suites", "imagenet-a"],
            "unmapped": three + ["--suites", f"imagefolder:{data_root / 'cartoon'}"],
            "imagenet-on-3-classes": three + ["--suites", "imagenet-val"],
            "unreadable-checkpoint": ["--model", str(garbage), "--arch", "test_resnet", "--suites", "imagenet-val"],
            "missing-c": three + ["--suites", "imagenet-c"]}[case]
    assert main(args + ["--data-root", str(data_root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err
    assert not (tmp_path / "out" / "results").exists()


def test_a_checkpoint_and_results_on_s3_are_read_listed_and_combined_by_the_table_command(s3_server, data_root, imagenet_student,
                                                                    tmp_path, capsys):
    _, options = s3_server
    storage = [f"--storage-option=endpoint_url={options['endpoint_url']}", "--storage-option=key=testing",
               "--storage-option=secret=testing"]
    import s3fs

    s3fs.S3FileSystem(**options).put(str(imagenet_student), "dad-test/runs/train-1", recursive=True)
    out = "s3://dad-test/evaluations/run-1"
    assert main(["--model", "s3://dad-test/runs/train-1", "--suites", "imagenet-val", "--data-root", str(data_root),
                 "--out", out, "--limit", "5", *storage]) == 0
    (result,) = list_results(out, {"endpoint_url": options["endpoint_url"], "key": "testing", "secret": "testing"})
    assert result["suites"]["imagenet-val"]["num_images"] + result["suites"]["imagenet-val"]["num_skipped"] == 5
    assert result["name"] == "train-1" and result["model"]["checkpoint"] == "s3://dad-test/runs/train-1/model.pth"
    capsys.readouterr()
    assert main(["table", out, *storage, "--out", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text().startswith("| Model | ImageNet | Avg |")


def test_a_c_set_built_from_any_imagefolder_is_scored_by_class_name(data_root, tmp_path):
    out = tmp_path / "out"
    assert main(["--model", "teacher:tiny", "--suites", "imagenet-c", "--build-c-from", str(data_root / "cartoon"),
                 "--c-corruptions", "snow", "--c-severities", "2", "--c-image-size", "32", "--out", str(out),
                 "--storage-option", "secret=hunter2"]) == 0
    result = _only_result(out)
    c = result["suites"]["imagenet-c"]
    assert c["uri"] == str(out / "imagenet-c-built") and c["num_images"] == 6 and c["complete"] is False
    assert sorted(c["per_class"]) == ["cat", "dog", "horse"] and set(c["ce"]) == {"snow"}
    assert "hunter2" not in (out / "results" / f"{result['id']}.json").read_text()
