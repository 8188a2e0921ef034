"""Training data: each clean x with its accepted Q(x') (Sec. 3.2: train on the original *and* the augmented
samples), read straight from the sample store, sharded across DDP ranks and shuffled by row-group blocks.

One module per step, no circle: pairing (which rows train together) -> sampling (visit order) -> transforms
(online augmentation) -> datasets -> views (stored views) -> build (datasets and loaders for a TrainConfig).
Pairing lives here rather than in the reader because it is the trainer's view of the data (the reader
serves rows); it uses only the reader's public `index`.
"""
from services.trainer.data.build import TrainingData, build_datasets, train_loader, val_loader
from services.trainer.data.datasets import PairedSampleDataset, SourceDataset, collate_examples
from services.trainer.data.pairing import count_matched, holdout_mask, pair_rows, partner_rows
from services.trainer.data.sampling import BlockShuffleSampler, block_shuffle
from services.trainer.data.transforms import Transform, build_transform, to_uint8_tensor
from services.trainer.data.views import StoredViewsDataset, ViewsError, resolve_views, sampler_for, with_views

__all__ = [
    "TrainingData", "build_datasets", "train_loader", "val_loader", "PairedSampleDataset", "SourceDataset",
    "collate_examples", "count_matched", "holdout_mask", "pair_rows", "partner_rows", "BlockShuffleSampler",
    "block_shuffle", "Transform", "build_transform", "to_uint8_tensor", "StoredViewsDataset", "ViewsError",
    "resolve_views", "sampler_for", "with_views",
]
