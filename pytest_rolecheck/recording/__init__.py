"""Cassettes: the file format, the vcrpy session, and the rule for going live.

``cassette.py`` is the only module that imports vcrpy; a replay through the
plugin's own client skips it (``direct.py``).

Modules::

    announce      The lines announcing a run's planned live calls (a live run is slow and costs).
    cassette      Per-test cassettes: record the chat completions of a test once, replay them
                  offline.
    diff          The short diff a cassette mismatch shows: recorded request vs the one sent now.
    direct        Direct replay: which cassette answers a call, without vcrpy's patching.
    encoding      Format v2's packing of token lists: one line per token position, lossless.
    files         All-or-nothing file writes (stdlib only), for cassettes and reports alike.
    fix_command   The commands the cassette errors print, pasteable as they are.
    format        The cassette file: written as readable JSON, read fast and validated line by
                  line.
    mode          Record modes and the ONE rule for whether a test's calls go to the network.
    paths         Where a test's cassette lives, and which tests would share one.
    redaction     What of a call may reach a cassette: secrets replaced, volatile headers and
                  fields dropped or made steady.
    refusals      Why a replayed call was refused: the messages, whichever path found the
                  problem.
"""
