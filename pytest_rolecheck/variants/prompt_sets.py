"""Prompt sets: many cases (prompts) compared as one, each case a :class:`Variant`.

A :class:`PromptSet` is an ordered, immutable mapping ``case id -> Variant``. Every
derivation of :class:`Variant` (``with_role``, ``with_instruction``, ``with_preamble``,
``tools_in_system_prompt``, ...) is available on the set and applies to every case, so
one line builds the other arm of a comparison::

    base = load_prompt_set("prompts.yaml")              # or PromptSet.from_prompts(...)
    rolecheck.assert_variants_equivalent(base.with_role("developer"), base.with_role("system"))

Case ids name the cases in reports and cassettes. Give them explicitly (``ids=``, a
dict's keys, ``id:`` in a file) so that adding, removing or reordering cases never
renames another case; without one a case is ``case-<position>`` (1-based).

Files (``load_prompt_set``), one case per item or line::

    # prompts.yaml
    instruction: You are a helpful assistant.   # optional: shared by every `prompt` case
    role: system                                # optional: the instruction's role
    params: {temperature: 0}                    # optional: request parameters of every case
    cases:
      - id: capital
        prompt: What is the capital of France?
      - id: haiku
        messages:
          - {role: system, content: You write haiku.}
          - {role: user, content: A haiku about rain.}

    # prompts.jsonl: one object per line, with "id" and "prompt" or "messages"
    {"id": "capital", "prompt": "What is the capital of France?"}
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import RolecheckUsageError
from .messages import INSTRUCTION_ROLES, check_label
from .variant import Variant

__all__ = ["DERIVATIONS", "PromptSet", "load_prompt_set"]

# The Variant methods that return a changed Variant: the set applies each to every case.
# Read from Variant itself, so a new derivation is available on sets without a line here.
DERIVATIONS: Final[tuple[str, ...]] = tuple(
    sorted(
        name
        for name, member in vars(Variant).items()
        if not name.startswith("_")
        and name != "with_label"  # the set's own: it relabels the set, not each case
        and inspect.isfunction(member)
        and inspect.signature(member).return_annotation in ("Variant", Variant)
    )
)

_FILE_KEYS: Final = ("instruction", "role", "params", "label", "cases")
_CASE_KEYS: Final = ("id", "prompt", "messages")
_FORMAT_HINT: Final = "see 'Prompt sets' in docs/writing-tests.md for the format"


def _check_id(case_id: Any, where: str) -> str:
    if not isinstance(case_id, str | int) or isinstance(case_id, bool):
        raise RolecheckUsageError(
            f"{where}: a case id must be a string (or a whole number), got {case_id!r}."
        )
    text = str(case_id)
    if not text.strip() or text != text.strip() or "\n" in text:
        raise RolecheckUsageError(
            f"{where}: case id {text!r} must be non-empty, on one line, without leading or "
            "trailing spaces."
        )
    return text


@dataclass(frozen=True, repr=False)
class PromptSet(Mapping[str, Variant]):
    """An ordered, immutable set of cases: ``case id -> Variant``.

    Parameters
    ----------
    cases : sequence of (str, Variant)
        The cases in order; ids must be distinct.
    label : str, optional
        Names the arm in reports and cassettes. Default: the cases' common label
        (``"system"``, ``"developer+date"``), else ``"prompt-set"``.
    """

    cases: tuple[tuple[str, Variant], ...]
    label: str = ""

    def __post_init__(self) -> None:
        cases = tuple(self.cases)
        if not cases:
            raise RolecheckUsageError("a PromptSet needs at least one case.")
        seen: dict[str, int] = {}
        for position, item in enumerate(cases, start=1):
            if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[1], Variant):
                raise RolecheckUsageError(
                    f"case {position}: expected a (case id, Variant) pair, got {item!r}."
                )
            case_id = _check_id(item[0], f"case {position}")
            if case_id in seen:
                raise RolecheckUsageError(
                    f"case {position}: id {case_id!r} is already the id of case "
                    f"{seen[case_id]}; give every case its own id."
                )
            seen[case_id] = position
        check_label(self.label or None)
        object.__setattr__(self, "cases", cases)
        if not self.label:
            labels = {variant.label for _, variant in cases}
            object.__setattr__(self, "label", labels.pop() if len(labels) == 1 else "prompt-set")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_messages(
        cls,
        cases: Sequence[Sequence[Mapping[str, Any]]] | Mapping[Any, Sequence[Mapping[str, Any]]],
        /,
        *,
        ids: Sequence[str] | None = None,
        label: str | None = None,
        **params: Any,
    ) -> PromptSet:
        """One case per message list.

        Parameters
        ----------
        cases : list of message lists, or mapping of case id to message list
            The chat messages of each case.
        ids : sequence of str, optional
            One id per case (not with a mapping). Default: the mapping's keys, else
            ``case-1``, ``case-2``, ...
        label : str, optional
            The set's label.
        **params
            Request parameters of every case (``temperature=0.7``, ``tools=[...]``).

        Returns
        -------
        PromptSet

        Raises
        ------
        RolecheckUsageError
            No cases, ids of the wrong number or repeated, or a case's messages are
            invalid (the message names the case).
        """
        built = []
        for case_id, messages in _keyed(cases, ids, "message lists"):
            try:
                built.append((case_id, Variant.from_messages(messages, **params)))
            except RolecheckUsageError as exc:
                raise RolecheckUsageError(f"case {case_id!r}: {exc}") from None
        return cls(tuple(built), label or "")

    @classmethod
    def from_prompts(
        cls,
        prompts: Sequence[str] | Mapping[Any, str],
        /,
        *,
        instruction: str | None = None,
        role: str = "system",
        ids: Sequence[str] | None = None,
        label: str | None = None,
        **params: Any,
    ) -> PromptSet:
        """One case per user prompt, each under the same instruction.

        Parameters
        ----------
        prompts : list of str, or mapping of case id to str
            The user messages.
        instruction : str, optional
            The instruction message every case starts with (none if omitted).
        role : {"system", "developer"}, default "system"
            The instruction's role.
        ids, label, **params
            As in :meth:`from_messages`.

        Returns
        -------
        PromptSet
        """
        if role not in INSTRUCTION_ROLES:
            raise RolecheckUsageError(f"role must be one of {INSTRUCTION_ROLES}, got {role!r}.")
        if instruction is not None and (not isinstance(instruction, str) or not instruction):
            raise RolecheckUsageError(
                f"instruction must be a non-empty string, got {instruction!r}."
            )
        keyed = _keyed(prompts, ids, "prompts")
        head = [] if instruction is None else [{"role": role, "content": instruction}]
        return cls.from_messages(
            {case_id: [*head, _user(case_id, prompt)] for case_id, prompt in keyed},
            label=label,
            **params,
        )

    # -- mapping ---------------------------------------------------------------------------

    def __getitem__(self, case_id: str) -> Variant:
        for key, variant in self.cases:
            if key == case_id:
                return variant
        raise KeyError(case_id)

    def __iter__(self) -> Iterator[str]:
        return (case_id for case_id, _ in self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def ids(self) -> tuple[str, ...]:
        """The case ids, in order."""
        return tuple(self)

    # -- derivations -------------------------------------------------------------------

    def map(self, fn: Callable[[Variant], Variant], *, label: str | None = None) -> PromptSet:
        """Apply ``fn`` to every case (same ids); the label is ``label`` or derived."""
        derived = []
        for case_id, variant in self.cases:
            try:
                new = fn(variant)
            except RolecheckUsageError as exc:
                raise RolecheckUsageError(f"case {case_id!r}: {exc}") from None
            if not isinstance(new, Variant):
                raise RolecheckUsageError(
                    f"case {case_id!r}: map() needs a function that returns a Variant, got "
                    f"{type(new).__name__}."
                )
            derived.append((case_id, new))
        labels = {variant.label for _, variant in derived}
        return PromptSet(tuple(derived), label or (labels.pop() if len(labels) == 1 else ""))

    def with_label(self, label: str) -> PromptSet:
        """The same cases under another set label."""
        check_label(label)
        return PromptSet(self.cases, label)

    def __getattr__(self, name: str) -> Callable[..., PromptSet]:
        # Every Variant derivation, applied case by case (see DERIVATIONS).
        if name not in DERIVATIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        def derive(*args: Any, **kwargs: Any) -> PromptSet:
            return self.map(lambda v: getattr(v, name)(*args, **kwargs), label=kwargs.get("label"))

        derive.__name__ = name
        derive.__doc__ = f"``Variant.{name}`` applied to every case."
        return derive

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *DERIVATIONS})

    def __repr__(self) -> str:
        shown = ", ".join(self.ids[:5]) + (", ..." if len(self) > 5 else "")
        return f"PromptSet({self.label!r}, {len(self)} cases: {shown})"


def _keyed(values: Any, ids: Sequence[str] | None, what: str) -> list[tuple[str, Any]]:
    if isinstance(values, Mapping):
        if ids is not None:
            raise RolecheckUsageError(f"pass ids= or a mapping of id to {what}, not both.")
        return [(_check_id(k, f"case {i}"), values[k]) for i, k in enumerate(values, start=1)]
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise RolecheckUsageError(
            f"expected a list of {what} (or a mapping of case id to one), got "
            f"{type(values).__name__}."
        )
    if ids is None:
        ids = [f"case-{i}" for i in range(1, len(values) + 1)]
    elif isinstance(ids, str) or len(ids) != len(values):
        raise RolecheckUsageError(
            f"ids= must give one id per case: {len(values)} {what}, got {ids!r}."
        )
    return list(zip(ids, values, strict=True))


def _user(case_id: str, prompt: Any) -> dict[str, str]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RolecheckUsageError(
            f"case {case_id!r}: the prompt must be non-empty text, got {prompt!r}."
        )
    return {"role": "user", "content": prompt}


# --------------------------------------------------------------------------- files


def load_prompt_set(path: str | Path, *, label: str | None = None) -> PromptSet:
    """Load a prompt set from a YAML (``.yaml``/``.yml``) or JSON Lines (``.jsonl``) file.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; the format follows the extension.
    label : str, optional
        The set's label (default: the file's ``label:``, else the cases' common label).

    Returns
    -------
    PromptSet

    Raises
    ------
    RolecheckUsageError
        Missing or unreadable file, invalid YAML/JSON, a case without ``prompt`` or
        ``messages``, repeated ids: the message names ``file:line`` and the fix.
    """
    path = Path(path)
    if path.suffix not in (".yaml", ".yml", ".jsonl"):
        raise RolecheckUsageError(
            f"{path}: a prompt set file ends in .yaml, .yml or .jsonl; rename it ({_FORMAT_HINT})."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RolecheckUsageError(
            f"no prompt set file at {path}; check the path (relative paths are relative to "
            "the current directory, e.g. Path(__file__).parent / 'prompts.yaml')."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RolecheckUsageError(f"{path}: cannot read the prompt set file ({exc}).") from None
    if path.suffix == ".jsonl":
        header: Mapping[str, Any] = {}
        items = _jsonl_cases(path, text)
    else:
        header, items = _yaml_cases(path, text)
    instruction = header.get("instruction")
    role = header.get("role", "system")
    params = header.get("params", {})
    if not isinstance(params, Mapping) or "messages" in params:
        raise RolecheckUsageError(
            f"{path}: 'params' must be a mapping of request parameters (temperature: 0, ...)."
        )
    cases: list[tuple[str, Variant]] = []
    lines: dict[str, int] = {}
    for position, (line, item) in enumerate(items, start=1):
        where = f"{path}:{line}"
        if not isinstance(item, Mapping):
            raise _file_error(where, "a case is a mapping with 'id' and 'prompt' or 'messages'")
        unknown = sorted(str(k) for k in item if k not in _CASE_KEYS)
        if unknown or ("prompt" in item) == ("messages" in item):
            raise _file_error(
                where,
                "a case has an optional 'id' and exactly one of 'prompt' or 'messages'"
                + (f" (unknown keys: {', '.join(unknown)})" if unknown else ""),
            )
        case_id = _check_id(item.get("id", f"case-{position}"), where)
        if case_id in lines:
            raise _file_error(
                where, f"id {case_id!r} is already used at line {lines[case_id]}; ids are unique"
            )
        lines[case_id] = line
        try:
            if "prompt" in item:
                single = PromptSet.from_prompts(
                    [item["prompt"]], instruction=instruction, role=role, **params
                )
                variant = single.cases[0][1]
            else:
                if not isinstance(item["messages"], list):
                    raise RolecheckUsageError("'messages' must be a list of {role:, content:}")
                variant = Variant.from_messages(item["messages"], **params)
        except RolecheckUsageError as exc:
            raise _file_error(where, f"case {case_id!r}: {exc}") from None
        cases.append((case_id, variant))
    if not cases:
        raise _file_error(str(path), "at least one case")
    return PromptSet(tuple(cases), label or header.get("label") or "")


def _file_error(where: str, problem: str) -> RolecheckUsageError:
    return RolecheckUsageError(f"{where}: {problem}. Fix the file ({_FORMAT_HINT}).")


def _jsonl_cases(path: Path, text: str) -> list[tuple[int, Any]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _file_error(
                f"{path}:{number}:{exc.colno}", f"not valid JSON ({exc.msg}); one object per line"
            ) from None
    return items


def _yaml_cases(path: Path, text: str) -> tuple[Mapping[str, Any], list[tuple[int, Any]]]:
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise _file_error(
            f"{path}{at}",
            f"not valid YAML ({getattr(exc, 'problem', None) or exc}); check indentation, "
            "quotes and colons inside unquoted text",
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping) or not isinstance(data.get("cases"), list):
        raise _file_error(f"{path}:1", "the file is a mapping with a list under 'cases'")
    unknown = sorted(str(k) for k in data if k not in _FILE_KEYS)
    if unknown:
        raise _file_error(
            f"{path}:1", f"unknown top-level keys {unknown}; allowed: {', '.join(_FILE_KEYS)}"
        )
    # The line of each case: the YAML nodes keep their position, the plain data do not.
    assert isinstance(node, yaml.MappingNode)
    cases_node = next(v for k, v in node.value if k.value == "cases")
    lines = [item.start_mark.line + 1 for item in cases_node.value]
    header = {k: v for k, v in data.items() if k != "cases"}
    for key in ("instruction", "label"):
        if key in header and (not isinstance(header[key], str) or not header[key].strip()):
            raise _file_error(f"{path}:1", f"'{key}' must be non-empty text")
    return header, list(zip(lines, data["cases"], strict=True))
