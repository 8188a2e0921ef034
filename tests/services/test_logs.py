"""services.logs: Ray's known noise is dropped with its traceback, everything else passes, no colour in files."""
from __future__ import annotations

import io
import logging

import pytest

from services import logs

# What a successful demo printed before (Ray 2.60 worker output as the driver receives it).
RAY_OUTPUT = [
    "Requesting resources: {'CPU': 0.5} * 1",
    "Failed to query Ray Train Controller actor state. State API may be temporarily unavailable. Continuing to monitor.",
    "Failed to send resource request for train-abc. If this only happens transiently during network partition or "
    "CPU being overloaded, it's safe to ignore this error. If this error persists, file a GitHub issue.",
    "Traceback (most recent call last):",
    '  File "/ray/train/v2/_internal/execution/scaling_policy/autoscaling_coordinator_client.py", line 60, in send',
    "    ray.get(",
    "ray.exceptions.GetTimeoutError: Get timed out: some object(s) not ready.",
    "[2026-12-01 15:05:48,633 E 6591 6757] core_worker.cc:2465: Actor with class name: 'PreemptionWatcher' and ID: "
    "'b4a2' has constructor arguments in the object store and max_restarts > 0.",
    "Exception in thread PlacementGroupCleanerMonitor:",
    "Traceback (most recent call last):",
    '  File "/ray/train/v2/_internal/execution/controller/placement_group_cleaner.py", line 80, in _monitor_loop',
    "ray.exceptions.RpcError: Timed out while waiting for GCS to become available.",
    "Failed to register placement group with cleaner: The actor died unexpectedly before finishing this task.",
    "\tclass_name: PlacementGroupCleaner",
    "The actor is dead because its worker process has died. Worker exit type: INTENDED_USER_EXIT",
    "Monitor thread did not exit within 12.00 seconds",
    "Failed to stop PlacementGroupCleaner gracefully.",
    "Traceback (most recent call last):",
    '  File "/ray/train/v2/_internal/callbacks/placement_group_callback.py", line 126, in _stop_cleaner',
    "ray.exceptions.GetTimeoutError: Get timed out: some object(s) not ready.",
    "Found multiple active Ray instances: {'127.0.0.1:6379', '127.0.0.1:51234'}. Connecting to latest cluster.",
    "Setting up process group for: env:// [rank=0, world_size=1]",
    "Started training worker group of size 1: ",
    "- (ip=192.0.2.2, pid=7177) world_rank=0, local_rank=0, node_rank=0",
    "epoch 1/3: train loss 1.2000, val top-1 45.8%, 3.1 s",
    "ValueError: a real error of the job",
]


def test_known_noise_and_its_traceback_are_dropped_and_the_rest_kept():
    kept, in_traceback = logs.filter_lines(RAY_OUTPUT)
    assert kept == ["Requesting resources: {'CPU': 0.5} * 1", "epoch 1/3: train loss 1.2000, val top-1 45.8%, 3.1 s",
                    "ValueError: a real error of the job"]
    assert not in_traceback


def test_a_traceback_split_across_batches_is_dropped_whole():
    kept, in_traceback = logs.filter_lines(RAY_OUTPUT[2:5])
    assert kept == [] and in_traceback
    kept, in_traceback = logs.filter_lines(RAY_OUTPUT[5:7] + ["epoch 2/3: ..."], in_traceback)
    assert kept == ["epoch 2/3: ..."] and not in_traceback


def test_a_real_traceback_is_kept():
    lines = ["Traceback (most recent call last):", '  File "x.py", line 1', "RuntimeError: boom"]
    assert logs.filter_lines(lines)[0] == lines


def test_worker_output_printer_filters_and_strips_colour_codes_for_files():
    printed = []
    printer = logs._filtered_printer(lambda data, file, ignore_prefix=False: printed.extend(data["lines"]),
                                     strip_ansi=True)
    printer({"pid": 1, "is_err": True, "lines": ["\x1b[36mhello\x1b[0m", RAY_OUTPUT[1]]}, io.StringIO())
    assert printed == ["hello"]
    printer({"pid": 1, "is_err": True, "lines": [RAY_OUTPUT[1]]}, io.StringIO())  # nothing left: nothing printed
    assert printed == ["hello"]


def test_configure_job_logs_wraps_rays_printer_and_turns_colour_off_when_not_a_terminal(monkeypatch):
    import ray._private.worker as ray_worker

    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setattr(ray_worker, "print_worker_logs", ray_worker.print_worker_logs)  # restored after the test
    logs.configure_job_logs(stream=io.StringIO())
    assert hasattr(ray_worker.print_worker_logs, "__wrapped__")  # fails loudly if a Ray upgrade renames it
    import os

    assert os.environ["RAY_COLOR_PREFIX"] == "0"
    out = io.StringIO()
    ray_worker.print_worker_logs({"pid": 7, "ip": "1", "localhost": "1", "lines": RAY_OUTPUT}, out)
    text = out.getvalue()
    assert "\x1b[" not in text and "Traceback" not in text and "PreemptionWatcher" not in text
    assert "(pid=7) epoch 1/3" in text


@pytest.mark.parametrize("name", ["ray._private.authentication.authentication_token_setup", "ray._private.services"])
def test_driver_side_ray_warnings_are_filtered(name, caplog):
    logs.configure_job_logs(stream=io.StringIO(), with_ray=False)
    with caplog.at_level(logging.WARNING):
        logging.getLogger(name).warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=...")
        logging.getLogger(name).warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
