"""as_dict / to_plain: SDK objects and numpy values into plain JSON-like data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from openai.types.chat import ChatCompletion

from pytest_rolecheck.core.jsonish import as_dict, to_plain

RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi"},
            "finish_reason": "stop",
            "logprobs": {
                "content": [
                    {
                        "token": "Hi",
                        "logprob": -0.1,
                        "bytes": [72, 105],
                        "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
                    }
                ]
            },
        }
    ],
    "vendor_extra": {"kept": True},
}


def test_deep_dump_of_an_sdk_object_is_plain() -> None:
    completion = ChatCompletion.model_validate(RESPONSE)
    data = as_dict(completion)
    assert isinstance(data["choices"][0], dict)
    assert data["choices"][0]["logprobs"]["content"][0]["bytes"] == [72, 105]
    assert data["vendor_extra"] == {"kept": True}


def test_shallow_read_keeps_nested_objects_and_extra_fields() -> None:
    completion = ChatCompletion.model_validate(RESPONSE)
    data = as_dict(completion, shallow=True)
    assert data["model"] == "m"
    assert data["vendor_extra"] == {"kept": True}  # extra fields are not lost
    choice = data["choices"][0]
    assert not isinstance(choice, dict)  # left for the caller to read
    assert as_dict(choice, shallow=True)["finish_reason"] == "stop"
    data["model"] = "changed"
    assert completion.model == "m"  # a new dict, not the instance's own


def test_mappings_are_copied_and_other_objects_refused() -> None:
    source = {"a": 1}
    copy = as_dict(source)
    assert copy == source
    assert copy is not source
    with pytest.raises(TypeError, match="expected a chat-completion response"):
        as_dict(42)


def test_to_plain_converts_numpy_and_containers_for_json() -> None:
    value = {
        "f": np.float64(0.5),
        "b": np.bool_(True),
        "m": np.arange(4.0).reshape(2, 2),
        "t": (1, 2),
        3: {np.int64(7)},
    }
    plain = to_plain(value)
    assert plain == {"f": 0.5, "b": True, "m": [[0.0, 1.0], [2.0, 3.0]], "t": [1, 2], "3": [7]}
    assert type(plain["b"]) is bool
    json.dumps(plain)  # serialisable
