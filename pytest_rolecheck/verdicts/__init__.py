"""From calls to verdicts: :func:`compare`, tool-call comparisons, and their words.

Every verdict text (headline, advice, assertion message) is written in
the ``wording`` package and every number printed through ``numbers.py``.

Modules::

    assertions    The assertions on a :func:`~pytest_rolecheck.verdicts.compare.compare` result.
    compare       ``compare()``: from two arms of chat completions to a verdict and a readable
                  report.
    designs       The two designs of :func:`~pytest_rolecheck.compare`: what each one measures.
    drift         One arm of a drift check: its live-vs-recorded comparison as a JSON-able entry.
    numbers       The one way rolecheck prints a number: terminal, HTML, JSON-derived tables and
                  messages.
    observers     Who hears of a comparison: lets the running test list ``compare()`` made by hand.
    options       The options of :func:`~pytest_rolecheck.compare`, checked before any call is
                  made.
    prompt_sets   :func:`compare` and :func:`compare_tool_calls` over many prompts at once
                  (mappings of case ids to responses).
    rerecord      Old vs new calls of each request of a re-recorded cassette, by the drift check's
                  rule (``rolecheck diff``).
    toolcalls     Compare the tool-calling behaviour of two arms by the distribution of call
                  outcomes (pure).
    wording       Every verdict text rolecheck writes (a package): headlines, advice, reports and
                  assertion messages; ``details`` the numbers block, ``sets`` prompt sets.
"""
