"""Run ``llama_cpp.server`` with the chat role ``developer`` accepted.

Usage::

    python -m pytest_rolecheck._llama_server [--developer-as-system] <llama_cpp.server args...>

The stock server (llama-cpp-python 0.3.x) validates request messages against a
union of typed dicts that has no ``developer`` member, so such a request fails
with HTTP 500 (pydantic ``literal_error``). This module applies small
patches *before* ``llama_cpp.server.app`` is imported (FastAPI builds the body
models when the routes are declared, at import time), then hands over to the
server's own ``main``:

1. ``llama_cpp.server.types.CreateChatCompletionRequest`` is replaced by a
   subclass whose ``messages`` union also accepts ``{"role": "developer",
   "content": ...}``. The message reaches the model's chat template unchanged:
   with the GGUF's own template (SmolLM2's ChatML) a developer message is
   rendered as ``<|im_start|>developer`` and, because the first message is not
   ``system``, the template still inserts its default system prompt.
2. ``llama_cpp.Llama.create_chat_completion`` is wrapped to read per-request
   options from the request's ``model`` field. ``"<alias>+<option>[+<option>]"``
   routes to the alias (the server falls back to its default model for names
   it does not know, so no second model is loaded) and applies the options:

   ``developer-as-system``
       rewrite every ``developer`` message to ``system`` before templating
       (what OpenAI is reported to do), the identical control.
   ``function-calling``
       answer with llama.cpp's ``chatml-function-calling`` handler instead of
       the model's own template: tools are described in the system message
       and the output is parsed into ``tool_calls``. Limits of that handler
       (llama-cpp-python 0.3.36): it renders only system/user/assistant
       content (a developer message keeps its header, loses its text: add
       ``+developer-as-system``), HTML-escapes message text (``"`` becomes
       ``&#34;``), ignores ``seed``, picks the function greedily even at
       temperature 1, answers tool calls without logprobs, and fails
       ``tool_choice="required"``.

   ``--developer-as-system`` on the command line turns the rewrite on for
   every request.
3. The server's error table maps an unknown option to HTTP 400
   ``invalid_request_error`` (not a 500, which the openai SDK retries).

One server process therefore serves every behaviour; the response's ``model``
field echoes the requested name, options included.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Optional

# pydantic accepts only typing_extensions.TypedDict before Python 3.12
from typing_extensions import TypedDict

SUPPORTED_SERIES = "0.3."
OPTION_SEPARATOR = "+"
DEVELOPER_AS_SYSTEM = "developer-as-system"
FUNCTION_CALLING = "function-calling"
KNOWN_OPTIONS: tuple[str, ...] = (DEVELOPER_AS_SYSTEM, FUNCTION_CALLING)
FUNCTION_CALLING_CHAT_FORMAT = "chatml-function-calling"

_PATCH_MARK = "_rolecheck_patched"


class ChatCompletionRequestDeveloperMessage(TypedDict):
    """A ``developer`` message, shaped like llama.cpp's system message."""

    # pydantic evaluates these annotations at runtime on Python 3.11, hence Optional
    role: Literal["developer"]
    content: Optional[str]  # noqa: UP045
    name: NotRequired[str]


@dataclass(frozen=True, slots=True)
class ModelName:
    """A request's ``model`` field split into the alias and its ``+`` options."""

    alias: str | None
    options: frozenset[str]


def split_model_name(model: str | None) -> ModelName:
    """Split ``"<alias>+<option>..."`` into the alias and the option set.

    Parameters
    ----------
    model : str or None
        The request's ``model`` field.

    Returns
    -------
    ModelName
        ``alias`` is ``None`` when ``model`` is ``None``.

    Raises
    ------
    ValueError
        If an option is not one of ``KNOWN_OPTIONS``.
    """
    if model is None:
        return ModelName(None, frozenset())
    alias, *options = model.split(OPTION_SEPARATOR)
    unknown = sorted(set(options) - set(KNOWN_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown model option(s) {unknown} in model {model!r}; request "
            f"'<alias>' or '<alias>+<option>' with options from {list(KNOWN_OPTIONS)}"
        )
    return ModelName(alias, frozenset(options))


def rewrite_developer_as_system(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return copies of ``messages`` with role ``developer`` replaced by ``system``.

    Parameters
    ----------
    messages : iterable of mapping
        Chat messages as plain mappings.

    Returns
    -------
    list of dict
        New dicts; other roles and all other keys are unchanged.
    """
    return [
        {**message, "role": "system"} if message.get("role") == "developer" else dict(message)
        for message in messages
    ]


def check_llama_cpp(llama_cpp: Any, types_module: Any) -> None:
    """Fail clearly when llama-cpp-python's internals are not the ones patched here.

    Parameters
    ----------
    llama_cpp : module
        The imported ``llama_cpp`` package.
    types_module : module
        The imported ``llama_cpp.server.types``.

    Raises
    ------
    RuntimeError
        If the version is not 0.3.x, the server app was imported before the
        patch, or the patched names are missing.
    """
    fix = "install the tested version: pip install 'llama-cpp-python[server]==0.3.36'"
    version = str(getattr(llama_cpp, "__version__", "unknown"))
    if not version.startswith(SUPPORTED_SERIES):
        raise RuntimeError(
            f"llama-cpp-python {version} is installed, but the developer-role patch "
            f"supports {SUPPORTED_SERIES}x only; {fix}"
        )
    if "llama_cpp.server.app" in sys.modules and not getattr(
        types_module.CreateChatCompletionRequest, _PATCH_MARK, False
    ):
        raise RuntimeError(
            "llama_cpp.server.app was imported before the developer-role patch, so its "
            "request models are already built; run the server as "
            "'python -m pytest_rolecheck._llama_server ...' in a fresh process"
        )
    request_model = getattr(types_module, "CreateChatCompletionRequest", None)
    fields = getattr(request_model, "model_fields", {})
    create = getattr(getattr(llama_cpp, "Llama", None), "create_chat_completion", None)
    params = inspect.signature(create).parameters if create is not None else {}
    if "messages" not in fields or not {"messages", "model"} <= set(params):
        raise RuntimeError(
            f"llama-cpp-python {version} does not have the internals the developer-role "
            f"patch expects (CreateChatCompletionRequest.messages, "
            f"Llama.create_chat_completion(messages, model)); {fix}"
        )


def _widen_request_model(llama_cpp: Any, types_module: Any) -> None:
    import pydantic

    base = types_module.CreateChatCompletionRequest
    if getattr(base, _PATCH_MARK, False):
        return
    message_type: Any = list[
        llama_cpp.ChatCompletionRequestMessage | ChatCompletionRequestDeveloperMessage
    ]
    # same class name, so the OpenAPI schema and error messages read as before
    widened = pydantic.create_model(
        "CreateChatCompletionRequest",
        __base__=base,
        __module__=base.__module__,
        messages=(
            message_type,
            pydantic.Field(
                default=[],
                description="A list of messages to generate completions for "
                "(role 'developer' accepted).",
            ),
        ),
    )
    setattr(widened, _PATCH_MARK, True)
    types_module.CreateChatCompletionRequest = widened


def _wrap_create_chat_completion(llama_cpp: Any, *, developer_as_system: bool) -> None:
    from llama_cpp import llama_chat_format

    llama_class = llama_cpp.Llama
    original: Callable[..., Any] = llama_class.create_chat_completion
    if getattr(original, _PATCH_MARK, False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def create_chat_completion(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        arguments = bound.arguments
        options = split_model_name(arguments.get("model")).options
        if developer_as_system or DEVELOPER_AS_SYSTEM in options:
            arguments["messages"] = rewrite_developer_as_system(arguments["messages"])
        if FUNCTION_CALLING not in options:
            return original(*bound.args, **bound.kwargs)
        llama = arguments["self"]
        # the server holds its model lock for the whole request, so swapping the
        # handler for one call cannot race with another request
        saved = llama.chat_handler
        llama.chat_handler = llama_chat_format.get_chat_completion_handler(
            FUNCTION_CALLING_CHAT_FORMAT
        )
        try:
            return original(*bound.args, **bound.kwargs)
        finally:
            llama.chat_handler = saved

    setattr(create_chat_completion, _PATCH_MARK, True)
    llama_class.create_chat_completion = create_chat_completion


def _register_option_error(errors_module: Any) -> None:
    # The server's own hook for mapping exception messages to OpenAI-style
    # errors: an unknown option becomes a 400 invalid_request_error (a 500
    # would be retried by the openai SDK and hide the message).
    import re

    def unknown_option(request: Any, match: re.Match[str]) -> tuple[int, dict[str, Any]]:
        return 400, {
            "message": match.group(0),
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }

    handler = getattr(errors_module, "RouteErrorHandler", None)
    patterns = getattr(handler, "pattern_and_formatters", None)
    if not isinstance(patterns, dict):
        return  # the error stays a 500 with the same message
    patterns.setdefault(re.compile(r"unknown model option\(s\) .*", re.DOTALL), unknown_option)


def install_patches(*, developer_as_system: bool = False) -> None:
    """Patch llama_cpp.server to accept ``developer`` and the ``+option`` model names.

    Must run before ``llama_cpp.server.app`` is imported. Idempotent.

    Parameters
    ----------
    developer_as_system : bool
        Rewrite ``developer`` to ``system`` on every request, not only on
        requests whose model name carries ``+developer-as-system``.

    Raises
    ------
    RuntimeError
        See `check_llama_cpp`.
    """
    import llama_cpp
    import llama_cpp.server.types as types_module

    check_llama_cpp(llama_cpp, types_module)
    _widen_request_model(llama_cpp, types_module)
    # imported after the widening: it binds CreateChatCompletionRequest by name
    import llama_cpp.server.errors as errors_module

    _register_option_error(errors_module)
    _wrap_create_chat_completion(llama_cpp, developer_as_system=developer_as_system)


def _parse_own_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rolecheck._llama_server",
        description="llama_cpp.server with the 'developer' chat role accepted; every "
        "other argument goes to llama_cpp.server.",
        add_help=False,
    )
    parser.add_argument(
        "--developer-as-system",
        action="store_true",
        help="rewrite developer messages to system on every request",
    )
    parser.add_argument(
        "--ignore-env-settings",
        action="store_true",
        help="ignore environment variables llama_cpp.server would read as settings",
    )
    parser.add_argument(
        "--exit-with-parent",
        type=int,
        metavar="PID",
        help="shut down when the process PID (the launcher) is gone",
    )
    return parser.parse_known_args(list(argv))


def settings_env_names(field_names: Iterable[str]) -> frozenset[str]:
    """Environment variable names llama_cpp.server reads besides its arguments.

    Its settings are pydantic ``BaseSettings`` without a prefix, so a stray
    ``PORT``, ``API_KEY`` or ``MODEL`` in the environment changes the server,
    and uvicorn's ``HOST``/``PORT`` and ``CONFIG_FILE`` override the command
    line.

    Parameters
    ----------
    field_names : iterable of str
        The settings' field names.

    Returns
    -------
    frozenset of str
        Lower-case names (pydantic-settings matches case-insensitively).
    """
    return frozenset({name.lower() for name in field_names} | {"host", "port", "config_file"})


def _scrub_settings_env() -> None:
    from llama_cpp.server.settings import Settings

    names = settings_env_names(Settings.model_fields)
    for key in [key for key in os.environ if key.lower() in names]:
        del os.environ[key]


def _exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    # a launcher killed with SIGKILL (e.g. a CI timeout) cannot stop us: notice it
    initial_ppid = os.getppid()

    def parent_alive() -> bool:
        if os.getppid() != initial_ppid:
            return False  # reparented: our launcher is gone
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while parent_alive():
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM

    threading.Thread(target=watch, name="rolecheck-exit-with-parent", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Patch llama_cpp.server and run it in the foreground.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``). ``--developer-as-system``,
        ``--ignore-env-settings`` and ``--exit-with-parent PID`` are consumed
        here, the rest is passed to ``llama_cpp.server``.

    Returns
    -------
    int
        Process exit code.
    """
    own, rest = _parse_own_args(sys.argv[1:] if argv is None else argv)
    try:
        install_patches(developer_as_system=own.developer_as_system)
    except ImportError as exc:
        print(
            f"error: cannot import llama_cpp.server ({exc}); install the local backend: "
            "pip install 'llama-cpp-python[server]==0.3.36'",
            file=sys.stderr,
        )
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if own.ignore_env_settings:
        _scrub_settings_env()
    if own.exit_with_parent is not None:
        _exit_with_parent(own.exit_with_parent)
    from llama_cpp.server import __main__ as server_main

    # llama_cpp.server's main parses sys.argv itself
    sys.argv = [sys.argv[0], *rest]
    server_main.main()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(main())
