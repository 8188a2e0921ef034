"""benchmarks/read_throughput.py (`make bench-read`) runs at a tiny N: the trainer's loader over a set written by
the real writer delivers clean + Q(x') images, decode figures come out for PNG and JPEG, and the S3 parts
(generator listing + planning, trainer dataset open) work on the moto server."""
from __future__ import annotations

from benchmarks.read_throughput import decode_per_core, loader_throughput, photo_pool, shard_index_reads, upload
from benchmarks.scale import fabricate, listing_and_planning, trainer_open
from tests.conftest import S3_BUCKET


def test_read_throughput_tiny(tmp_path):
    pool = photo_pool(None, 8, 32)
    assert pool.shape == (8, 32, 32, 3)
    decode = decode_per_core(pool)
    assert set(decode) == {"png (store, zlib 1)", "jpeg q95", "jpeg q90"}
    assert all(v["images_per_cpu_s"] > 0 and v["KB_per_image"] > 0 for v in decode.values())
    set_root = fabricate(tmp_path / "store", 64, 10, shard_items=32, images=pool, accept_rate=1.0)
    out = loader_throughput(str(set_root), {}, batch_size=16, batches=2, out=tmp_path / "run")
    assert out["steady_batches"] == 2 and out["steady_images"] == 2 * 16 * 2  # every clean x has its Q(x')
    assert out["images_per_s_wall"] > 0 and out["images_per_worker_cpu_s"] > 0


def test_s3_listing_and_open_tiny(tmp_path, s3_server):
    _, options = s3_server
    bucket = f"s3://{S3_BUCKET}/read-bench"
    listing = listing_and_planning(tmp_path, 300, 100, (bucket, options))
    assert listing["generator_shards"] == 3
    tiny = fabricate(tmp_path / "tiny", 300, 10, shard_items=100)
    opened = trainer_open(upload(tiny, f"{bucket}/open/scale", options), options)
    assert opened["trainer_pairs"] == 300
    reads = shard_index_reads(f"{bucket}/open/scale", options)
    assert set(reads) == {"index_read_sequential_s", "index_read_8_threads_s"}
