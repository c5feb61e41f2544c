"""The report stage: results read back from run folders as tables and one HTML page.

==================  =====================================================================
``leaderboard``     one row per (model, protocol) from every ``metrics.json`` under a
                    folder, the latest run winning (``mfrkit leaderboard``)
``table``           the comparison table: models x (protocol, headline metric) with
                    intervals, as Markdown, CSV or LaTeX (``leaderboard --table``)
``page``            ``mfrkit report``: the self-contained HTML page (sections in order)
``scores``          what the page reads of a 1:1 result's comparisons (pair list or
                    all-pairs histogram)
``impostors``       an all-pairs result's hardest impostor pairs, found again from the
                    run's ``embeddings.parquet``
``gallery``         the images results refer to (crops as the model saw them)
``tiles``           the page's image sections: hardest comparisons / probes, failures to acquire
``drift``           the page's threshold-drift section
``figures``         inline SVG figures (ROC, DET, CMC, histograms, bars)
``html``            escaping, inline images, number formats, the stylesheet
==================  =====================================================================

Everything here reads results through :class:`mfrkit.bench.results.RunResult`, never
the ``metrics.json`` keys by hand.
"""
