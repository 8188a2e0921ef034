"""Is the attack doing anything? Per-sample measures of what the attack changed, for every Q(x').

Q is not idempotent: Q(Q(x)) differs from Q(x) by about as much as Q(x') does at App. C's small step, so each
distance is taken twice -- against Q(x) (what the student sees as "the adversarial change") and against Q(Q(x))
(the same pipeline with no delta), which isolates the attack from the second pass through Q. Images are the
stored pixels in [0, 1]; `same_*` is the share of uint8 values that are identical.

    delta_l2, delta_linf   |x_T - Q(x)|, the attack's own pixel change before the final Q
    l2_vs_qx ...           Q(x') against Q(x): L2, L-inf, share of identical values, share of changed codes
    l2_vs_qqx ...          Q(x') against Q(Q(x)): the same four
    kl_vs_qx               KL(phi(Q(x)) || phi(Q(x'))), the teacher's change of mind
    conf_drop_vs_qx        p_y(Q(x)) - p_y(Q(x')), the drop of the teacher's probability of the true class
"""
from __future__ import annotations

import torch

from schemas.perturbation import DIAGNOSTIC_NAMES as DIAGNOSTICS  # the names the store and manifest use


def _distances(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L2, L-inf, share of identical uint8 values) per sample of two (B, 3, H, W) batches in [0, 1]."""
    d = (a.float() - b.float()).flatten(1)                                          # (B, D)
    same = (a.float().mul(255).round() == b.float().mul(255).round()).flatten(1).float().mean(1)
    return d.norm(dim=1), d.abs().amax(dim=1), same


def _codes_changed(a: torch.Tensor | None, b: torch.Tensor | None, n: int) -> torch.Tensor:
    if a is None or b is None:
        return torch.full((n,), float("nan"))
    return (a != b).float().mean(1).cpu()


@torch.no_grad()
def perturbation_diagnostics(discretized: torch.Tensor, requantized: torch.Tensor, adversarial: torch.Tensor,
                             delta: torch.Tensor, logits_discretized: torch.Tensor,
                             logits_adversarial: torch.Tensor, labels: torch.Tensor,
                             codes_x: torch.Tensor | None = None, codes_qx: torch.Tensor | None = None,
                             codes_adversarial: torch.Tensor | None = None,
                             requantized_rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every DIAGNOSTICS measure as a (B,) float32 CPU tensor (NaN for code shares when Q has no codes).

    discretized Q(x), requantized Q(Q(x)), adversarial Q(x'): (B, 3, H, W) in [0, 1]; delta = x_T - Q(x);
    logits of the teacher on Q(x) and Q(x'); codes (B, N) of x, of Q(x) and of x_T where Q has codes.
    `requantized_rows` (indices): Q(Q(x)) and its codes are given for these rows only (the *_vs_qqx measures are
    NaN elsewhere), since Q(Q(x)) costs a pass through Q.
    """
    n = labels.shape[0]
    rows = torch.arange(n) if requantized_rows is None else requantized_rows.cpu()
    out = {}
    out["delta_l2"] = delta.float().flatten(1).norm(dim=1)
    out["delta_linf"] = delta.float().flatten(1).abs().amax(dim=1)
    out["l2_vs_qx"], out["linf_vs_qx"], out["same_vs_qx"] = _distances(adversarial, discretized)
    for name, values in zip(("l2_vs_qqx", "linf_vs_qqx", "same_vs_qqx"),
                            _distances(adversarial[rows.to(adversarial.device)], requantized)):
        out[name] = torch.full((n,), float("nan")).index_put_((rows,), values.float().cpu())
    log_p = logits_discretized.float().log_softmax(-1)                               # (B, K)
    log_q = logits_adversarial.float().log_softmax(-1)
    out["kl_vs_qx"] = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0)
    y = labels.to(log_p.device).view(-1, 1)
    out["conf_drop_vs_qx"] = (log_p.gather(1, y).exp() - log_q.gather(1, y).exp()).view(-1)
    result = {k: v.float().cpu() for k, v in out.items()}
    result["codes_vs_qx"] = _codes_changed(codes_x, codes_adversarial, n)
    qq_codes = _codes_changed(codes_qx, None if codes_adversarial is None else codes_adversarial[rows], len(rows))
    result["codes_vs_qqx"] = torch.full((n,), float("nan")).index_put_((rows,), qq_codes)
    return {k: result[k] for k in DIAGNOSTICS}
