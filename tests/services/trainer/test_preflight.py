"""Bad input fails before training starts (before Ray is even joined), with a message naming the problem."""
import shutil

import pytest

import services.trainer.launcher as launcher
from services.trainer.cli import main
from services.trainer.preflight import TrainInputError, preflight


@pytest.fixture
def no_training(monkeypatch):
    """Make any attempt to start Ray or train fail the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("training must not start on bad input")

    monkeypatch.setattr(launcher, "connect_ray", forbidden)
    monkeypatch.setattr(launcher, "ray_train_loop", forbidden)


@pytest.fixture
def set_copy(sample_set, tmp_path):
    """A copy of the fixture's sample set that a test may damage."""
    return shutil.copytree(sample_set.folder, tmp_path / "set")


def cli(sample_set, tmp_path, *extra, samples=None):
    return main(["--source", str(sample_set.source), "--samples", str(samples or sample_set.manifest),
                 "--out", str(tmp_path / "run"), "--preset", "tiny", "--student", "test_resnet", *extra])


def test_good_inputs_pass(train_config):
    plan = preflight(train_config())
    assert plan.class_names == ["tench", "goldfish", "tabby cat"] and plan.resume_epoch == 0 and not plan.warnings


def test_class_mismatch(sample_set, tmp_path, make_image_folder, no_training, capsys):
    other = make_image_folder(tmp_path / "other", classes=("n01440764", "n01443537"), per_class=2)
    assert main(["--source", str(other), "--samples", sample_set.manifest, "--out", str(tmp_path / "run"),
                 "--preset", "tiny", "--student", "test_resnet"]) == 2
    err = capsys.readouterr().err
    assert "sample set" in err and "3 classes" in err and "n02123045" in err


def test_missing_shard(sample_set, set_copy, tmp_path, no_training, capsys):
    shard = next((set_copy / "shards").glob("*.parquet"))
    shard.unlink()
    assert cli(sample_set, tmp_path, samples=set_copy / "manifest.json") == 2
    err = capsys.readouterr().err
    assert "missing 1 of" in err and shard.name in err


def test_truncated_shard(sample_set, set_copy, tmp_path, no_training, capsys):
    shard = next((set_copy / "shards").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])
    assert cli(sample_set, tmp_path, samples=set_copy / "manifest.json") == 2
    assert "wrong size" in capsys.readouterr().err


@pytest.mark.parametrize("damage", [b"{not json", b'{"format": "something-else"}'])
def test_corrupt_manifest(sample_set, set_copy, tmp_path, no_training, capsys, damage):
    (set_copy / "manifest.json").write_bytes(damage)
    assert cli(sample_set, tmp_path, samples=set_copy / "manifest.json") == 2
    assert "manifest.json" in capsys.readouterr().err


def test_unpublished_sample_set(sample_set, set_copy, tmp_path, no_training, capsys):
    (set_copy / "manifest.json").unlink()
    assert cli(sample_set, tmp_path, samples=set_copy) == 2
    assert "not published" in capsys.readouterr().err


def test_unknown_student(sample_set, tmp_path, no_training, capsys):
    assert main(["--source", str(sample_set.source), "--samples", sample_set.manifest, "--out",
                 str(tmp_path / "run"), "--preset", "tiny", "--student", "resnet_nope"]) == 2
    assert "unknown timm model 'resnet_nope'" in capsys.readouterr().err


def test_unknown_objective(sample_set, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli(sample_set, tmp_path, "--objective", "dadd")
    assert e.value.code == 2 and "invalid choice: 'dadd'" in capsys.readouterr().err


def test_stored_logits_with_randaugment_is_refused(sample_set, tmp_path, no_training, capsys):
    assert cli(sample_set, tmp_path, "--randaugment", "rand-m9-mstd0.5") == 2
    err = capsys.readouterr().err
    assert "--randaugment: must be off with stored teacher logits" in err and "set --teacher-logits to online" in err


def test_an_out_folder_of_another_run_is_not_resumed(train_config):
    from services.trainer.checkpointing import RunStore

    cfg = train_config()
    RunStore(cfg.out).write_config(train_config(objective="kd").to_dict())
    with pytest.raises(TrainInputError, match="objective: saved 'kd', now 'dad'"):
        preflight(cfg)


def test_bad_preset_override_is_refused_by_the_config_itself(train_config):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="distill.nope: unknown preset field"):
        train_config(overrides={"distill.nope": 1})


def _corrupt_same_size(shard):
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other content
    shard.write_bytes(bytes(data))


def test_same_size_corruption_is_found_before_training_naming_the_shard(sample_set, set_copy, tmp_path,
                                                                        no_training, capsys):
    shard = sorted((set_copy / "shards").glob("*.parquet"))[-1]
    _corrupt_same_size(shard)
    assert cli(sample_set, tmp_path, samples=set_copy / "manifest.json") == 2
    captured = capsys.readouterr()
    assert "verifying 3 shards" in captured.out  # the progress line
    assert f"shards/{shard.name}" in captured.err and "sha256" in captured.err and "corrupt" in captured.err


def test_skip_verify_trusts_the_manifest(train_config, sample_set, set_copy):
    _corrupt_same_size(sorted((set_copy / "shards").glob("*.parquet"))[0])
    lines = []
    preflight(train_config(samples=str(set_copy / "manifest.json"), verify_shards=False), echo=lines.append)
    assert lines == []  # nothing read
    with pytest.raises(TrainInputError, match="corrupt"):
        preflight(train_config(samples=str(set_copy / "manifest.json")), echo=lines.append)
    assert lines and lines[0].startswith("verifying")


def test_stored_logits_with_random_resized_crop_is_refused(sample_set, tmp_path, no_training, capsys):
    assert cli(sample_set, tmp_path, "--random-resized-crop", "0.35") == 2
    assert "--random-resized-crop: must be off with stored teacher logits" in capsys.readouterr().err


def test_control_rows_need_an_objective_that_trains_on_q(sample_set, tmp_path, no_training, capsys):
    assert cli(sample_set, tmp_path, "--objective", "kd", "--adversarial-rows", "all") == 2
    assert "--adversarial-rows: must be 'accepted' for objective 'kd'" in capsys.readouterr().err


def test_a_student_init_that_cannot_load_stops_before_training(sample_set, tmp_path, no_training, capsys):
    """A missing file, and timm weights absent from the (offline) cache: exit 2 naming student_init."""
    assert cli(sample_set, tmp_path, "--student-init", str(tmp_path / "none.safetensors")) == 2
    assert "student_init" in capsys.readouterr().err
    assert cli(sample_set, tmp_path, "--student-init", "pretrained") == 2
    err = capsys.readouterr().err
    assert "student_init" in err and "Hugging Face cache" in err
