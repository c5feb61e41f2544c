"""The report's threshold-drift section: the threshold chosen on one 1:1 protocol (the
bench's ``--transfer-from``, ``umr-ump`` by default) applied unchanged to the run's other
1:1 protocols, and each model's FNMR and FMR there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import figures as F
from ..results import RunResult
from .gallery import finite
from .html import esc, figure, fmt, interval
from .table import short_target

if TYPE_CHECKING:
    from .page import ReportBuilder


def drift(b: "ReportBuilder") -> str:
    """The threshold-drift section: each 1:1 protocol's FNMR and FMR at the transferred threshold."""
    verif = [p for p in b.protocols if p.verification]
    sources = {r.transfer["from"] for p in verif for r in p.results if r.transfer}
    if not sources:
        return ('<section id="drift"><h2>Threshold drift</h2><p class="note">No threshold transfer in these runs: the bench '
                "applies the threshold of the protocol named by --transfer-from (default umr-ump) to the run's other 1:1 "
                "protocols when that protocol is in the run.</p></section>")
    parts = ['<section id="drift"><h2>Threshold drift</h2>']
    for source in sorted(sources):
        targets = [p for p in verif if any((r.transfer or {}).get("from") == source for r in p.results)]
        src = next((p for p in verif if p.name == source), None)
        groups = ([source] if src else []) + [p.name for p in targets]
        series, rows, far = [], [], None
        for sha, label in b.labels.items():
            vals, lows, highs, cells = [], [], [], []
            for name in groups:
                r = next((x for p in verif if p.name == name for x in p.results if x.model_sha256 == sha), None)
                e = drift_entry(b, r, source) if r is not None else None
                if e is None:
                    vals.append(None), lows.append(None), highs.append(None)
                    cells.append("<td>–</td>")
                    continue
                far = e.get("far_target", far)
                vals.append(e.get("fnmr")), lows.append(e.get("fnmr_ci_low")), highs.append(e.get("fnmr_ci_high"))
                cells.append(f"<td>{fmt(e.get('fnmr'))}<span class=ci>{interval(e.get('fnmr_ci_low'), e.get('fnmr_ci_high'))}</span>"
                             f"<br><small>FMR {fmt(e.get('fmr'))}<span class=ci>{interval(e.get('fmr_ci_low'), e.get('fmr_ci_high'))}</span>"
                             f", t = {fmt(e.get('threshold'))}</small></td>")
            if any(v is not None for v in vals):
                series.append((label, b.colour[sha], vals, lows, highs))
                rows.append(f"<tr><th>{esc(label)}</th>{''.join(cells)}</tr>")
        title = f"FNMR at the {source} threshold" + (f" (FAR={short_target(far)})" if far else "")
        parts.append(f"<h3>From {esc(source)}</h3>")
        parts.append(figure(F.bar_figure(groups, series, ylabel="FNMR", title=title), title))
        head = "<tr><th>model</th>" + "".join(f"<th>{esc(g)}</th>" for g in groups) + "</tr>"
        parts.append(f'<table class="cmp">{head}{"".join(rows)}</table>')
        parts.append('<p class="note">The threshold is chosen on the first protocol (where FMR stays within the target) and '
                     "applied unchanged to the others: a masked protocol's FNMR above the first one's is the drift a deployed "
                     "threshold would suffer. Intervals: Clopper-Pearson.</p>")
    parts.append("</section>")
    return "".join(parts)


def drift_entry(b: "ReportBuilder", r: RunResult, source: str) -> dict | None:
    """FNMR/FMR at the transferred threshold: the result's ``transfer`` for a target
    protocol; for the source itself, its rates at its own threshold."""
    if (r.transfer or {}).get("from") == source:
        return r.transfer
    ts = r.transfer_source
    if r.protocol == source and ts and finite(ts.get("threshold")):
        src = b.source(r)
        rates = None if src is None else src.rates_at(float(ts["threshold"]), ts)
        if rates is None:
            return None
        return {**rates, "far_target": ts.get("far_target"), "threshold": ts["threshold"]}
    return None
