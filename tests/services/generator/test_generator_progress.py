"""Progress: rates, acceptance and ETA from counts; status written at most every interval, and at the end."""
from schemas.manifest import ReasonCounts
from services.generator.progress import ProgressReporter, ProgressTracker, describe


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_tracker_computes_rate_acceptance_and_eta():
    clock = Clock()
    tracker = ProgressTracker("set", "file:///s", total_items=100, total_shards=10, resumed_items=20,
                              committed_shards=2, clock=clock)
    errors = ReasonCounts()
    errors.add("corrupt", 2)
    tracker.add_read(22, errors)
    tracker.add_batch(20, accepted=15)
    tracker.add_commit()
    clock.t += 11.0
    s = tracker.status()
    assert s.done_items == 42 and s.resumed_items == 20 and s.committed_shards == 3
    assert s.samples_per_s == 2.0 and s.acceptance_rate == 0.75
    assert s.eta_s == 29.0 and s.errored == 2 and s.errors == {"corrupt": 2}
    assert "42/100 images (42%)" in describe(s) and "ETA 29 s" in describe(s)


def test_reporter_throttles_status_writes_but_always_writes_the_final_state():
    written, seen = [], []
    tracker = ProgressTracker("set", "file:///s", total_items=4, total_shards=1)
    reporter = ProgressReporter(tracker, written.append, show_bar=False, interval_s=3600, on_progress=seen.append)
    reporter.update()
    reporter.update()
    tracker.add_batch(4, accepted=1)
    final = reporter.close("succeeded", manifest_uri="file:///s/manifest.json")
    assert [s.state for s in written] == ["running", "succeeded"] and len(seen) == 3
    assert final.eta_s == 0.0 and final.manifest_uri.endswith("manifest.json")


def test_a_failing_status_write_never_stops_the_job():
    def broken(_):
        raise OSError("store down")

    reporter = ProgressReporter(ProgressTracker("s", "u", 1, 1), broken, show_bar=False)
    assert reporter.update(force=True).state == "running"
