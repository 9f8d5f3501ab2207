"""The three verdicts every comparison ends in: the one definition of their names."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Verdict"]


class Verdict(StrEnum):
    """The outcome of a comparison; each member *is* its string.

    ``Verdict.DIFFERENT == "different"``, so JSON and older comparisons keep working.

    ``equivalent``: the change is shown below the tolerance; ``different``: shown
    significant and above it; ``inconclusive``: neither (never evidence of equivalence).
    """

    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    INCONCLUSIVE = "inconclusive"

    def __repr__(self) -> str:
        # Messages print verdicts with !r; they read 'different', as when verdicts were strings.
        return str.__repr__(self.value)
