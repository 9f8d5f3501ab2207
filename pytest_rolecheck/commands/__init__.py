"""The ``rolecheck`` subcommands: thin argparse adapters over the packages above.

Modules::

    cassettes     ``rolecheck cassettes upgrade``: rewrite cassettes in the current file format.
    compare       ``rolecheck compare``: run one experiment outside pytest and print the verdict.
    diff          ``rolecheck diff``: what changed between two recordings (or two JSON reports).
    plan          ``rolecheck plan``: how many trials per arm, from an A/A pilot (the CLI adapter).
    plan_sets     ``rolecheck plan --cases``: cases x trials per case for a prompt set, from an
                  A/A pilot.
    report        ``rolecheck report``: the HTML report (and PNG plots) of a saved JSON report.
    serve         ``rolecheck serve``: the bundled local model behind an OpenAI-compatible server.
"""
