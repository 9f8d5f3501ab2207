"""The run's report: typed rows, read by the terminal summary, the JSON and the HTML.

Modules::

    drift         The drift section of a run: every arm's live-vs-recorded entry, one decision for
                  the session.
    html          One self-contained HTML report per run: verdicts in plain words, plots, per-call
                  numbers.
    plots         The report's plots, drawn headless with matplotlib's object API (no pyplot).
    row           The report Row: one comparison (or the calls of a test that compared nothing).
    summary       The run's summary: one :class:`~.row.Row` per comparison, as terminal lines or as
                  JSON.
"""
