"""The student's model folder loads with timm and safetensors alone, in a fresh process, to the trainer's logits."""
import json
import os
import subprocess
import sys

import torch

from dad_core import create_student
from services.trainer.checkpointing import RunStore
from services.trainer.config import TrainConfig
from services.trainer.loop import train_worker

# Runs in a fresh interpreter: only timm (and the torch it needs) and safetensors; none of this repository's
# packages may be imported by the end (the venv installs the repository, so "not importable" cannot be asked).
LOADER = r"""
import json, sys
import timm, torch
from safetensors.torch import load_file

folder, inputs, out = sys.argv[1:4]
config = json.load(open(f"{folder}/config.json"))
k = config["num_classes"]
x = torch.load(inputs)
by_dir = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
by_overlay = timm.create_model(config["architecture"], pretrained=True, num_classes=k,
                               pretrained_cfg_overlay=dict(file=f"{folder}/model.safetensors", num_classes=k)).eval()
state = load_file(f"{folder}/model.safetensors")
data = timm.data.resolve_data_config({}, model=by_dir)
with torch.no_grad():
    torch.save({"dir": by_dir(x), "overlay": by_overlay(x), "keys": sorted(state),
                "weights": {n: t.contiguous() for n, t in by_dir.state_dict().items()},
                "label_names": by_dir.pretrained_cfg["label_names"], "data": data}, out)
ours = [m for m in sys.modules if m.split(".")[0] in ("dad_core", "services", "schemas")]
assert not ours, ours
"""


def test_the_model_folder_loads_in_timm_alone_with_the_trainers_logits(tmp_path, make_image_folder):
    source = make_image_folder(tmp_path / "source", per_class=4)
    cfg = TrainConfig(source=str(source), out=str(tmp_path / "run"), preset="tiny", student="test_resnet",
                      objective="ce", epochs=1, batch_size=4, loader_workers=0, warmup_epochs=0, val_fraction=0.25,
                      progress_bar=False, lr=0.05, channels_last=True)  # channels_last: non-contiguous weights
    train_worker(cfg)
    store = RunStore(cfg.out)
    info = json.loads(open(f"{store.path}/model.json").read())
    ckpt = torch.load(f"{store.path}/checkpoints/epoch-0001.pt", weights_only=True)
    trained = create_student("test_resnet", num_classes=3)
    trained.load_state_dict(ckpt["model"])
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = trained.eval()(x)
    torch.save(x, tmp_path / "x.pt")

    folder = f"{store.path}/model"
    config = json.loads(open(f"{folder}/config.json").read())
    assert config["architecture"] == "test_resnet" and config["num_classes"] == 3
    assert config["label_names"] == info["class_names"] == ["tench", "goldfish", "tabby cat"]
    cfg_ = config["pretrained_cfg"]
    assert cfg_["input_size"] == [3, 32, 32] and cfg_["mean"] == info["mean"] and cfg_["std"] == info["std"]
    assert cfg_["num_classes"] == 3 and cfg_["tag"] == "dad_ce"
    assert cfg_.get("license") is None  # the arch's ImageNet-weights licence is not these weights' licence

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # and cwd elsewhere: not on sys.path
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-c", LOADER, folder, str(tmp_path / "x.pt"), str(tmp_path / "out.pt")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=False)
    # the same weights, bit for bit; the logits to float32 rounding (another process may pick another kernel
    # or memory layout: seen 1.5e-8 apart once)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(got["weights"][name], tensor.contiguous()), name
    torch.testing.assert_close(got["dir"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["overlay"], expected, rtol=1e-5, atol=1e-6)
    assert got["keys"] == sorted(trained.state_dict())
    assert got["label_names"] == ["tench", "goldfish", "tabby cat"]
    assert got["data"]["input_size"] == (3, 32, 32) and got["data"]["crop_pct"] == 1.0


def test_a_run_starts_from_its_student_init_file_and_records_it(tmp_path, make_image_folder):
    """With lr 0 the trained weights are the checkpoint's (backbone); the start event, checkpoint and model.json
    keep the file and its sha256; a resumed run keeps the record without reading the file again."""
    import hashlib

    from safetensors.torch import save_file

    source = make_image_folder(tmp_path / "source", per_class=4)
    imagenet = create_student("test_resnet", num_classes=1000)
    init = tmp_path / "in1k.safetensors"
    save_file({k: v.contiguous() for k, v in imagenet.state_dict().items()}, str(init))
    make = lambda epochs: TrainConfig(  # noqa: E731
        source=str(source), out=str(tmp_path / "run"), preset="tiny", student="test_resnet", objective="ce",
        epochs=epochs, batch_size=4, loader_workers=0, warmup_epochs=0, val_fraction=0.25, progress_bar=False,
        lr=0.0, student_init=str(init))
    train_worker(make(1))
    store = RunStore(str(tmp_path / "run"))
    final = torch.load(f"{store.path}/model.pth", weights_only=True)
    for name, _ in imagenet.named_parameters():
        if not name.startswith("fc."):
            assert torch.equal(final[name], imagenet.state_dict()[name]), name
    record = json.loads(open(f"{store.path}/model.json").read())["student_init"]
    assert record == {"init": "file", "path": str(init), "sha256": hashlib.sha256(init.read_bytes()).hexdigest(),
                      "head": "new (3 classes)"}
    init.unlink()  # a resume starts from the checkpoint: the file is no longer needed
    train_worker(make(2))
    events = [json.loads(line) for line in open(f"{store.path}/metrics.jsonl") if '"event"' in line]
    assert [e["student_init"] for e in events if e["event"] in ("start", "resume")] == [record, record]
    assert json.loads(open(f"{store.path}/model.json").read())["student_init"] == record
