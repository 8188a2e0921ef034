import json

from services.trainer.metrics import MetricsLog, parse_metrics, read_metrics


def test_steps_relogged_after_a_resume_replace_the_killed_ones():
    lines = [
        {"type": "event", "event": "start", "step": 0},
        {"type": "step", "step": 1, "loss": 3.0},
        {"type": "epoch", "epoch": 0, "step": 1},
        {"type": "step", "step": 2, "loss": 2.5},  # killed before epoch 1's checkpoint
        {"type": "event", "event": "resume", "step": 1},
        {"type": "step", "step": 2, "loss": 2.4},
    ]
    text = [json.dumps(r) for r in lines] + ['{"type": "step", "st']  # a torn last line
    records = parse_metrics(text)
    assert [r.get("event") or r["type"] for r in records] == ["start", "step", "epoch", "resume", "step"]
    assert records[-1]["loss"] == 2.4


def test_log_appends_and_only_rank_zero_writes(tmp_path):
    MetricsLog(str(tmp_path), enabled=False).log({"type": "step", "step": 1}, flush=True)
    assert read_metrics(str(tmp_path)) == []
    for step in (1, 2):
        log = MetricsLog(str(tmp_path))
        log.log({"type": "step", "step": step})
        log.flush()
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2]
    assert all("time" in r for r in read_metrics(str(tmp_path)))


def test_rewind_drops_records_past_the_checkpoint_step_and_torn_lines(tmp_path):
    log = MetricsLog(str(tmp_path))
    for rec in ({"type": "event", "event": "start", "step": 0}, {"type": "step", "step": 10},
                {"type": "epoch", "epoch": 0, "step": 10}, {"type": "step", "step": 20}):
        log.log(rec)
    with open(log.path, "a") as f:
        f.write('{"type": "step", "st')  # torn by the kill
    assert log.rewind(10) == 2
    log.log({"type": "event", "event": "resume", "step": 10})
    log.log({"type": "step", "step": 20})
    lines = [json.loads(x) for x in open(log.path).read().splitlines()]
    assert [r.get("event") or r["type"] for r in lines] == ["start", "step", "epoch", "resume", "step"]
    assert [r["step"] for r in lines if r["type"] == "step"] == [10, 20]


def test_epoch_line_says_the_epoch_loss_accuracy_and_time():
    from services.trainer.loop import epoch_line

    summary = {"epoch": 1, "train_loss": 0.51234, "val_top1": 0.4583, "epoch_time_s": 3.14}
    assert epoch_line(summary, 3) == "epoch 2/3: train loss 0.5123, val top-1 45.8%, 3.1 s"
    assert epoch_line({**summary, "val_top1": None}, 3) == "epoch 2/3: train loss 0.5123, 3.1 s"


def test_the_final_summary_shows_accuracy_in_percent_like_the_epoch_lines():
    from services.trainer.launcher import final_summary

    records = [{"type": "epoch", "epoch": 2, "train_loss": 0.5, "val_top1": 0.4583}]
    assert final_summary(records) == "epoch 3: train loss 0.5000, val top-1 45.8%"
    assert final_summary([{**records[0], "val_top1": None}]).endswith("val top-1 n/a (no validation data)")
