"""Sample sets and samples as the API shows them: catalog rows -> `schemas.api` public models."""
from __future__ import annotations

from sqlalchemy.orm import Session

from schemas.api import (ClassStatistics, SampleBrief, SamplePublic, SampleSetDetail, SampleSetPublic, SamplesPublic,
                         TopK)
from services.api.catalog import crud
from services.api.catalog.models import Sample, SampleSet

VARIANTS = ("clean", "discretized", "adversarial")


def _name(names: list[str], label: int) -> str:
    return names[label] if 0 <= label < len(names) else str(label)


def sample_set_public(s: SampleSet) -> SampleSetPublic:
    stats = s.statistics
    return SampleSetPublic(id=s.id, uri=s.uri, created_at=s.created_at, preset=s.preset, num_rows=s.num_rows,
                           num_items=int(stats.get("clean", 0)), accepted=int(stats.get("accepted", 0)),
                           acceptance_rate=float(stats.get("acceptance_rate", 0.0)), num_classes=len(s.class_names),
                           indexing=not s.ready, indexed_rows=s.num_rows if s.ready else s.indexed_rows)


def sample_set_detail(session: Session, s: SampleSet) -> SampleSetDetail:
    per_class = [ClassStatistics(label=label, name=_name(s.class_names, label), items=n, accepted=acc,
                                 acceptance_rate=acc / n if n else 0.0)
                 for label, n, acc in crud.per_class_statistics(session, s.id)]
    kinds = set(crud.stored_kinds(session, s.id))
    return SampleSetDetail(**sample_set_public(s).model_dump(), lineage=s.lineage, statistics=s.statistics,
                           class_names=list(s.class_names), per_class=per_class,
                           variants=[v for v in VARIANTS if v in kinds], diagnostics=s.statistics.get("diagnostics"))


def image_url(sample_id: str, variant: str) -> str:
    return f"/samples/{sample_id}/image?variant={variant}"


def _brief(row: Sample, names: list[str]) -> SampleBrief:
    return SampleBrief(id=row.sample_id, kind=row.kind, prediction=row.prediction, confidence=row.confidence,
                       accepted=row.accepted,
                       top5=[TopK(label=c, name=_name(names, c), probability=p) for c, p in row.top5])


def samples_page(session: Session, s: SampleSet, page: crud.SamplePage, offset: int, limit: int) -> SamplesPublic:
    """A page of rows, each with its source item's other rows (clean <-> adversarial) and image URLs."""
    rows = page.rows
    pairs = crud.siblings(session, s.id, [r.source_id for r in rows])
    data = []
    for row in rows:
        images = {v: (image_url(pairs[(row.source_id, v)].sample_id, v) if (row.source_id, v) in pairs else None)
                  for v in VARIANTS}
        other_kind = "clean" if row.kind != "clean" else "adversarial"
        other = pairs.get((row.source_id, other_kind))
        adversarial = pairs.get((row.source_id, "adversarial"))
        data.append(SamplePublic(**_brief(row, s.class_names).model_dump(), set_id=s.id, source_id=row.source_id,
                                 label=row.label, class_name=_name(s.class_names, row.label), images=images,
                                 pair=_brief(other, s.class_names) if other else None,
                                 perturbation=adversarial.perturbation if adversarial is not None else None))
    return SamplesPublic(data=data, count=page.count, count_exact=page.count_exact, offset=offset, limit=limit,
                         next=page.next)
