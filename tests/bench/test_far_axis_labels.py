"""The ROC's log FAR axis is labelled in numbers, not in mathtext source: names are drawn
with ``text.parse_math`` off, which left matplotlib's default log labels reading
``$\\mathdefault{10^{-6}}$`` in every report and roc.png."""

import numpy as np

from mfrkit.bench.results.plots import log_far_axis, pyplot


def test_log_far_labels_are_plain_numbers():
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.semilogx([1e-6, 1e-3, 1.0], [0.1, 0.5, 1.0])
    ax.set_xlim(1e-6, 1)
    log_far_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    plt.close(fig)
    assert labels and not any("$" in t or "mathdefault" in t for t in labels)
    assert {"1e-06", "0.001", "1"} <= set(labels)


def test_the_report_roc_uses_it():
    from mfrkit.bench.report.figures import roc_figure

    svg = roc_figure([("m", "#1f77b4", np.array([0.0, 1e-4, 1e-2, 1.0]), np.array([0.0, 0.5, 0.9, 1.0]))], "p").decode()
    assert "mathdefault" not in svg
