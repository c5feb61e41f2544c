"""What a reader must be told beside a result's numbers, so that none reads as more than it is.

Pure functions over a ``metrics.json`` dict (one model x one protocol), shared by the
console table, the leaderboard and the report:

* :func:`size_warning`: one line when a protocol is too small for what is reported:
  fewer impostor comparisons than ``1 / FAR`` for a reported FAR target (the target
  cannot be resolved: TAR@FAR is flagged ``insufficient`` and means "at no false
  accept"), or fewer than :data:`MIN_GENUINE` genuine comparisons (each TAR is then
  uncertain by several points: the line gives the interval's half-width);
* :func:`smallest_supported_far`: the smallest FAR a protocol's impostors resolve (the
  threshold transfer chooses its threshold there when the asked FAR is not resolved);
* :func:`rule_differences`: where the two rule sets' TAR@FAR differ by more than the
  interval, which rule gives which and why: the budget rounded down below an integer,
  the nearest ROC point lying above the target, or one held below it by tied scores.
"""

from __future__ import annotations

import math
from typing import Sequence

from ...protocols.kinds import is_one_to_one
from ..metrics.inputs import short_far, smallest_supported_far

#: Fewer genuine comparisons than this get a warning ("a few hundred": at 300 a TAR of
#: 0.9 has a 95% interval about +-0.035 wide, at 90 about +-0.07).
MIN_GENUINE = 300
#: 1:N: fewer mated probes than this get the same warning.
MIN_MATED = MIN_GENUINE

def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def count_of(v) -> int:
    """A count from a metrics.json value (0 when absent or not a number)."""
    f = _f(v)
    return 0 if math.isnan(f) else int(f)


def _half_width(records: list[dict]) -> float:
    widths = [(_f(r.get("tar_ci_high")) - _f(r.get("tar_ci_low"))) / 2 for r in records]
    widths = [w for w in widths if not math.isnan(w)]
    return max(widths) if widths else math.nan


def subset_note(result) -> str | None:
    """One line saying a result rests on part of its protocol (``bench --where/--limit``),
    or None for a full-protocol result."""
    from ..results import RunResult

    r = RunResult.of(result)
    sub = r.subset
    if sub is None:
        return None
    return f"{r.protocol} is a subset, not the full protocol: {sub.text()}; its numbers are not {sub.of}'s"


def size_warning(result: dict) -> str | None:
    """One line saying why the result's numbers are less precise than they look, or None."""
    kind = (result.get("protocol") or {}).get("kind")
    m = result.get("metrics") or {}
    name = (result.get("protocol") or {}).get("name")
    parts = []
    if is_one_to_one(kind):
        n_gen, n_imp = count_of(m.get("n_genuine")), count_of(m.get("n_impostor"))
        records = m.get("tar_at_far") or []
        low = sorted(float(r["far_target"]) for r in records if r.get("insufficient_negatives"))
        if low:
            best = smallest_supported_far(n_imp, [r["far_target"] for r in records])
            parts.append(f"{n_imp:,} impostor comparisons cannot resolve FAR {', '.join(short_far(t) for t in low)} "
                         f"(under 1/FAR): those TAR@FAR are flagged insufficient and mean 'at no false accept'"
                         + (f"; the smallest FAR it resolves is {short_far(best)}" if best else ""))
        if "n_genuine" in m and n_gen < MIN_GENUINE:
            w = _half_width(records)
            parts.append(f"only {n_gen:,} genuine comparisons: each TAR is uncertain by up to +-{w:.3f} "
                         f"({_level(result)} interval)" if not math.isnan(w) else f"only {n_gen:,} genuine comparisons")
    # 1:N figures: a 1:N protocol's own, or (IJB templates) one block per gallery
    galleries = m.get("identification") if is_one_to_one(kind) else {"": m}
    if galleries:
        for g, block in (galleries or {}).items():
            mated = count_of(block.get("n_mated"))
            nonmated = count_of(block.get("n_nonmated"))
            low = sorted(float(r["far_target"]) for r in block.get("tpir_at_fpir") or [] if r.get("insufficient_negatives"))
            where = f"gallery {g}: " if g else ""
            if low:
                parts.append(f"{where}{nonmated:,} non-mated probes cannot resolve FPIR {', '.join(short_far(t) for t in low)}")
            if "n_mated" in block and mated < MIN_MATED:
                parts.append(f"{where}only {mated:,} mated probes")
    if not parts:
        return None
    return f"{name} is small for what is reported: " + "; ".join(parts)


def _level(result: dict) -> str:
    c = _f((result.get("settings") or {}).get("confidence"))
    return f"{c:.0%}" if not math.isnan(c) else "95%"


def _explain(t: float, m: dict, i: dict) -> str:
    """Why the two rules' operating points differ at target ``t`` (one clause)."""
    n = _f(m.get("n_impostor"))
    budget, fa_m, fa_i = int(_f(m.get("budget"))), int(_f(m.get("false_accepts"))), int(_f(i.get("false_accepts")))
    product = t * n
    rounded = "" if abs(product - round(product)) < 1e-9 else f", {short_far(t)} x {n:,.0f} = {product:.2f} rounded down"
    mf = f"mfrkit accepts at most {budget:,} false accept(s){rounded}"
    if fa_i > budget:
        return (f"{mf}; insightface takes the ROC point nearest the target, {fa_i:,} false accept(s) "
                f"(FAR {_f(i.get('far')):.3g}, above the target)")
    if fa_i < fa_m:
        return (f"{mf} and uses {fa_m:,}; insightface's nearest ROC point has {fa_i:,} (FAR {_f(i.get('far')):.3g}): "
                "tied or sparse scores put the next point farther from the target")
    return f"{mf}; insightface's nearest point has {fa_i:,} and another threshold (tied scores)"


def rule_differences(result: dict, *, block: dict | None = None) -> list[str]:
    """Targets where mfrkit's and insightface's TAR@FAR differ by more than mfrkit's
    interval width, each as one sentence (empty when they agree within it).

    ``block``: the metrics holding ``tar_at_far`` and ``insightface.tar_at_far`` (default
    ``result["metrics"]``; a breakdown group's metrics work the same way).
    """
    m = block if block is not None else (result.get("metrics") or {})
    ours = {float(r["far_target"]): r for r in m.get("tar_at_far") or []}
    theirs = {float(r["far_target"]): r for r in ((m.get("insightface") or {}).get("tar_at_far") or [])}
    out = []
    for t in sorted(ours, reverse=True):
        a, b = ours[t], theirs.get(t)
        if b is None:
            continue
        ta, tb = _f(a.get("tar")), _f(b.get("tar"))
        width = _f(a.get("tar_ci_high")) - _f(a.get("tar_ci_low"))
        if math.isnan(ta) or math.isnan(tb) or math.isnan(width) or abs(ta - tb) <= width:
            continue
        out.append(f"TAR@FAR={short_far(t)}: mfrkit {ta:.4f}, insightface {tb:.4f} (interval width {width:.4f}): "
                   f"{_explain(t, a, b)}")
    return out


# --- provenance ----------------------------------------------------------------------------------------


def provenance_status(model: dict) -> str:
    """``trained``, ``untrained`` or ``unknown`` of a result's ``model`` block (unknown
    when the block predates provenance or the model does not say)."""
    p = model.get("provenance") if isinstance(model, dict) else None
    status = p.get("status") if isinstance(p, dict) else None
    return status if status in ("trained", "untrained") else "unknown"


def provenance_warning(model: dict) -> str | None:
    """The bench's warning for a model whose weights were never trained (None otherwise)."""
    if provenance_status(model) != "untrained":
        return None
    p = model.get("provenance") or {}
    how = f" (weights {p['weights']})" if p.get("weights") else ""
    return (f"{model.get('name')} has untrained weights{how}: its numbers measure a random network, not the method; "
            "train it (mfrkit models train) and export the checkpoint")
