"""The pure core: parsing, distances and statistics (numpy and scipy only).

Nothing here imports pytest, openai, vcrpy, yaml or matplotlib
(``tests/test_core_purity.py`` guards it), so every rule can be tested and
benchmarked on plain arrays.

Modules::

    bounds        Confidence bounds on the size of the change between two arms.
    changes       What changed between two recordings of the same calls, or two reports (``rolecheck
                  diff``).
    contingency   Contingency-table statistics of tool-call outcomes: the 2xK table of two arms.
    cost          What calls cost: a price table, tokens per model, and the estimate of planned
                  calls.
    decision      The verdict rule shared by every comparison: :func:`decide`, and the trials
                  advice.
    descriptives  Descriptive statistics of distances: per-arm summaries, pair means, Cliff's
                  delta, text flips.
    difference    Difference tests: is the change between the arms more than chance?
    distances     The metric registry, the default metric's choice, and the all-pairs distance
                  matrix.
    divergence    Where two arms start to differ, token by token: the data behind the report's
                  plots (pure).
    drift         Suite-level drift: Holm over every arm, then a minimum effect per arm.
    fast_pairs    The built-in metrics vectorised over many pairs of calls (what
                  ``distance_matrix`` runs).
    jsonish       Turn SDK objects or plain mappings into plain JSON-like dicts (pure).
    limits        The numbers the statistics need, defined once: every entry point reads them from
                  here.
    metrics       The built-in distances between two chat-completion calls (one pair at a time,
                  readable).
    parse         Turn chat-completion responses into :class:`ParsedCall` values (pure).
    parse_responses
                  Turn Responses-API responses into :class:`ParsedCall` values (pure).
    pilot         The noise floor of an A/A pilot: the mean distance between two calls of one
                  configuration.
    planner       How many trials per arm, estimated from an A/A pilot by resampling (``rolecheck
                  plan``).
    prompt_sets   Prompt sets: one comparison over many prompts ("cases"), with a per-case
                  breakdown.
    set_planner   Cases x trials a prompt set needs, from an A/A pilot of it (``rolecheck plan
                  --cases``).
    stats         Statistics behind the verdicts: difference test, equivalence bound, descriptives.
    strata        Permutations within one stratum (a prompt-set case), and the per-case q-values.
    text_metrics  Distances between the texts of two calls: no logprobs needed, the whole answer
                  seen.
    validation    Input checks shared by the statistics: arm sizes, options, distance matrices and
                  vectors.
    verdict       The three verdicts every comparison ends in: the one definition of their names.
"""
