"""The evaluation suites of Sec. 4.1 and how each meets a model's logits (pure: names and indices only).

A suite is a folder layout plus a class protocol:

- `imagenet-1k` (imagenet-val, imagenet-v2, imagenet-sketch, stylized-imagenet): folders named by ImageNet
  WordNet ids (or `0`..`999`, as ImageNetV2 ships), scored over all 1,000 logits.
- `imagenet-200` (imagenet-a, imagenet-r): folders named by the 200 ids of the subset; only those 200
  logits are scored (Hendrycks et al. 2021), so a 1,000-way model is not punished for predicting a class
  the benchmark cannot contain.
- `imagenet-c`: `<corruption>/<severity>/<wnid>/` folders, each scored as imagenet-1k; the summary is mCE.
- `imagefolder` (`imagefolder:URI`): any ImageFolder whose class names (optionally through a class map)
  match the model's class names; scored on the matched logits only, like the 200-class subsets.
"""
from __future__ import annotations

import posixpath
import random
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

from dad_core import imagenet

PROTOCOLS = ("imagenet-1k", "imagenet-200", "imagenet-c", "imagefolder")
IMAGEFOLDER_PREFIX = "imagefolder:"
T = TypeVar("T")


class SuiteError(ValueError):
    """A suite that cannot be evaluated as asked (unknown, missing, classes that do not map); names it."""


@dataclass(frozen=True)
class Suite:
    name: str
    protocol: str
    column: str | None       # column of the paper's Tables 1/3; None for other suites
    folder: str | None       # default location under --data-root
    subset: str | None = None  # the 200-class list of imagenet-a / imagenet-r
    description: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.protocol == "imagenet-c"


SUITES: dict[str, Suite] = {s.name: s for s in (  # in the column order of the paper's Tables 1 and 3
    Suite("imagenet-val", "imagenet-1k", "ImageNet", "imagenet-val",
          description="ImageNet-1k validation, 50,000 images"),
    Suite("imagenet-v2", "imagenet-1k", "V2", "imagenet-v2",
          description="ImageNetV2 matched-frequency (Recht et al. 2019)"),
    Suite("imagenet-r", "imagenet-200", "R", "imagenet-r", subset="imagenet-r",
          description="ImageNet-Rendition, 200 classes (Hendrycks et al. 2021)"),
    Suite("imagenet-sketch", "imagenet-1k", "Sketch", "imagenet-sketch",
          description="ImageNet-Sketch (Wang et al. 2019)"),
    Suite("imagenet-a", "imagenet-200", "A", "imagenet-a", subset="imagenet-a",
          description="ImageNet-A natural adversarial examples, 200 classes (Hendrycks et al. 2021)"),
    Suite("imagenet-c", "imagenet-c", "C↓", "imagenet-c",
          description="ImageNet-C: 15 corruptions x 5 severities, mCE vs AlexNet (Hendrycks & Dietterich 2019)"),
    Suite("stylized-imagenet", "imagenet-1k", "Stylized", "stylized-imagenet",
          description="Stylized-ImageNet validation (Geirhos et al. 2019)"),
)}


@dataclass(frozen=True)
class SuiteRequest:
    """One suite to evaluate, at one location."""

    suite: Suite
    uri: str
    label: str  # the key in the result JSON and the table column for imagefolder suites


def _imagefolder_request(label: str | None, uri: str) -> SuiteRequest:
    if not uri:
        raise SuiteError("imagefolder: needs a location, e.g. imagefolder:/data/pacs/cartoon")
    label = label or posixpath.basename(uri.rstrip("/")) or uri
    if label in SUITES:  # its column would pass for the paper's suite in tables
        raise SuiteError(f"imagefolder suite {label!r} has the name of a paper suite; name it: OTHER=imagefolder:{uri}")
    suite = Suite(f"imagefolder:{label}", "imagefolder", None, None, description=f"ImageFolder {uri}")
    return SuiteRequest(suite, uri, label)


def parse_suites(tokens: Sequence[str], data_root: str | None,
                 locations: Mapping[str, str] | None = None) -> list[SuiteRequest]:
    """Suite tokens -> requests: `name` (under --data-root, or at `locations[name]`), `name=URI` (explicit
    location), `imagefolder:URI` (labelled by its folder name) or `LABEL=imagefolder:URI`."""
    locations = dict(locations or {})
    requests: list[SuiteRequest] = []
    for token in (t.strip() for raw in tokens for t in raw.split(",")):
        if token.startswith(IMAGEFOLDER_PREFIX):
            requests.append(_imagefolder_request(None, token[len(IMAGEFOLDER_PREFIX):]))
            continue
        name, sep, uri = token.partition("=")
        if uri.startswith(IMAGEFOLDER_PREFIX):
            requests.append(_imagefolder_request(name, uri[len(IMAGEFOLDER_PREFIX):]))
        elif name in SUITES:
            if not sep and name in locations:
                sep, uri = "=", locations[name]
            if not sep and not data_root:
                raise SuiteError(f"suite {name!r} needs --data-root (or {name}=URI)")
            uri = uri if sep else posixpath.join(data_root.rstrip("/"), SUITES[name].folder)
            requests.append(SuiteRequest(SUITES[name], uri, name))
        elif token:
            raise SuiteError(f"unknown suite {name!r}; known: {sorted(SUITES)} or imagefolder:URI")
    labels = [r.label for r in requests]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise SuiteError(f"suites given twice: {duplicates}")
    if not requests:
        raise SuiteError("no suites given")
    return requests


@dataclass(frozen=True)
class ClassProtocol:
    """How a folder's labels meet a model's logits.

    Predictions are `argmax(logits[:, logit_indices])`; position j predicts folder label `target_of_logit[j]`
    (-1: a class the folder does not have, always wrong).
    """

    target_ids: tuple[str, ...]            # folder class ids, in folder label order (per-class keys)
    logit_indices: tuple[int, ...] | None  # model logits scored; None: all of them
    target_of_logit: tuple[int, ...]


def _imagenet_index(folder_id: str) -> int | None:
    if folder_id.isdigit() and 0 <= int(folder_id) < 1000:  # ImageNetV2 folders are class indices
        return int(folder_id)
    return imagenet.wnid_to_index().get(folder_id)


def check_imagenet_model(model_classes: Sequence[str], suite: str) -> None:
    """Raise unless the model's outputs are the 1,000 ImageNet classes in the standard order."""
    ok = len(model_classes) == 1000 and (
        tuple(model_classes) == imagenet.imagenet1k_wnids() or tuple(model_classes) == imagenet.imagenet1k_classnames())
    if not ok:
        shown = ", ".join(list(model_classes)[:5])
        raise SuiteError(f"suite {suite!r} needs a model over the 1,000 ImageNet classes in the standard order; this "
                         f"model has {len(model_classes)} classes ({shown}, ...). Evaluate other label sets with "
                         "imagefolder:URI and a class map")


def imagenet_protocol(folder_ids: Sequence[str], suite: str, subset: str | None = None) -> ClassProtocol:
    """The protocol of an ImageNet-labelled folder: all 1,000 logits, or the 200 of `subset`."""
    indices = [_imagenet_index(c) for c in folder_ids]
    unknown = [c for c, i in zip(folder_ids, indices) if i is None]
    if unknown:
        raise SuiteError(f"suite {suite!r}: folders {unknown[:10]} are not ImageNet-1k classes "
                         "(expected WordNet ids such as n01440764, or 0..999)")
    if len(set(indices)) != len(indices):
        raise SuiteError(f"suite {suite!r}: two folders name the same ImageNet class")
    if subset is None:
        logit_indices, scored = None, list(range(1000))
    else:
        logit_indices = tuple(imagenet.subset_indices(subset))
        outside = [c for c, i in zip(folder_ids, indices) if i not in set(logit_indices)]
        if outside:
            raise SuiteError(f"suite {suite!r}: folders {outside[:10]} are not among the 200 classes of {subset}")
        scored = list(logit_indices)
    label_of = {i: label for label, i in enumerate(indices)}
    return ClassProtocol(tuple(folder_ids), logit_indices, tuple(label_of.get(i, -1) for i in scored))


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def imagefolder_protocol(folder_ids: Sequence[str], folder_names: Sequence[str], model_classes: Sequence[str],
                         suite: str) -> ClassProtocol:
    """Match each folder class (by its id or mapped name) to one model class; score those logits only."""
    exact = {c: i for i, c in enumerate(model_classes)}
    loose: dict[str, int] = {}
    for i, c in enumerate(model_classes):
        loose.setdefault(_normalise(c), i)
    matched, missing = [], []
    for folder_id, name in zip(folder_ids, folder_names):
        i = next((exact[n] for n in (name, folder_id) if n in exact), None)
        if i is None:
            i = next((loose[_normalise(n)] for n in (name, folder_id) if _normalise(n) in loose), None)
        (missing.append(folder_id if name == folder_id else f"{folder_id} ({name})") if i is None else matched.append(i))
    if missing:
        raise SuiteError(f"suite {suite!r}: classes {missing[:10]} do not map onto the model's classes "
                         f"({', '.join(list(model_classes)[:10])}{', ...' if len(model_classes) > 10 else ''}); "
                         "pass --class-map FILE mapping folder names to model class names")
    if len(set(matched)) != len(matched):
        twice = sorted({model_classes[i] for i in matched if matched.count(i) > 1})
        raise SuiteError(f"suite {suite!r}: several folders map onto the same model class {twice}")
    return ClassProtocol(tuple(folder_ids), tuple(matched), tuple(range(len(matched))))


def sample_items(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """At most `limit` items, a seeded sample in listing order (a prefix would cover only the first classes)."""
    if limit is None or len(items) <= limit:
        return list(items)
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]
