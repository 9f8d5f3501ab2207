"""Every text about calls without logprobs: why a comparison went by text, and the errors.

A server that rejects or ignores ``logprobs`` (reasoning models, some OpenAI-compatible
layers) leaves only the texts to compare; the report says so in one sentence, the same
in the notes of ``str(comparison)``, the assertion message, the HTML report and the
terminal summary. ``why`` is ``rejected`` (an error answer), ``ignored`` (a 2xx answer
without logprobs) or ``off`` (``logprobs=false``: never asked).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "compared_by_text",
    "metric_needs_logprobs",
    "not_given",
    "rejected_hint",
    "required_but_missing",
    "summary_line",
]

_METRIC_WORDS: Final = {
    "edit": "edit distance",
    "hamming": "Hamming distance",
    "js_edit": "edit distance",
}
_FIX: Final = (
    "drop logprobs=true / --rolecheck-logprobs=true (the default, auto, then asks without "
    "them and compares the texts), or use a model or server that returns logprobs"
)


def not_given(why: str, detail: str, model: str | None) -> str:
    """Why the calls carry no logprobs, as the first half of a sentence."""
    who = f"the server gave no logprobs for {model}" if model else "the server gave no logprobs"
    if why == "rejected":
        return f"{who}: it rejected them ({detail}), so the calls were made without them"
    if why == "ignored":
        return f"{who}: it ignored the request for them ({detail})"
    return "no logprobs were asked for (logprobs=false)"


def compared_by_text(why: str, detail: str, model: str | None, metric: str) -> str:
    """The note of a comparison made without logprobs: why, and by which text distance."""
    how = _METRIC_WORDS.get(metric, f"metric {metric}")
    return f"{not_given(why, detail, model)}: compared by text ({how})"


def summary_line(test: str, note: str) -> str:
    """The terminal summary's line for a comparison made by text."""
    return f"by text: {test}: {note}"


def metric_needs_logprobs(metric: str, why: str, detail: str, model: str | None) -> str:
    """The error of a logprob metric asked for by name when the calls have none."""
    return (
        f"metric={metric!r} compares token logprobs, but {not_given(why, detail, model)}. "
        "Pass metric='auto' (the default: it compares the texts when there are no logprobs) "
        "or a text metric ('edit', 'hamming'), or use a model or server that returns logprobs."
    )


def required_but_missing(where: str, model: str | None, what: str) -> str:
    """The error of ``logprobs=true`` when a 2xx answer carries no logprobs."""
    return (
        f"{where}: {model or 'the model'} returned no token logprobs ({what}), and "
        f"logprobs=true requires them: {_FIX}."
    )


def rejected_hint() -> str:
    """What to do when a server refuses ``logprobs`` that ``logprobs=true`` requires."""
    return f"this model or server does not give logprobs, and logprobs=true requires them: {_FIX}."
