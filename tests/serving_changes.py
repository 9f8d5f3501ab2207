"""Real serving changes of the bundled model, made locally for the end-to-end drift tests.

Test helpers, not shipped. Every change is made here from the installed GGUF
(nothing is downloaded): the same weights re-quantised to another type, the
model's own chat template with another server-side default system line, and
another chat template altogether. ``start_*`` run a real llama.cpp server with
each and yield its OpenAI base URL.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import gguf
from gguf import quants

from pytest_rolecheck.running.local import DEFAULT_PARALLEL, LocalServer, find_model

# Put in place of SmolLM2's own default system line when a request has none. The
# apostrophe is deliberate: the template quotes the line, so it must be escaped.
DEFAULT_SYSTEM = "You are a pirate. Answer like one, matey, and don't forget to say arr."
# SmolLM2's own default system line, as its template quotes it.
SHIPPED_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# A Zephyr-style template: other role markers, the same messages.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def requantize(src: Path, dst: Path, qtype: str = "Q4_0") -> Path:
    """Write ``src`` re-quantised to ``qtype`` (a GGML type name) at ``dst``.

    Every quantised tensor is dequantised and quantised again as ``qtype``
    where its rows split into whole blocks; float tensors (the norms) are
    copied as they are, and so is every metadata key but the file type.
    """
    target = gguf.GGMLQuantizationType[qtype]
    block, _ = gguf.GGML_QUANT_SIZES[target]
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for field in reader.fields.values():
        # GGUF.* are the reader's virtual fields; the writer adds the architecture itself
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        kind = field.types[0]
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = gguf.LlamaFileType[f"MOSTLY_{qtype}"]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    for tensor in reader.tensors:
        data, dtype = tensor.data, tensor.tensor_type
        floats = dtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        if not floats and dtype != target and int(tensor.shape[0]) % block == 0:
            data, dtype = quants.quantize(quants.dequantize(data, dtype), target), target
        writer.add_tensor(tensor.name, data, raw_dtype=dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def model_template(model: Path) -> str:
    """The chat template stored in the GGUF file ``model``."""
    field = gguf.GGUFReader(model).fields[gguf.Keys.Tokenizer.CHAT_TEMPLATE]
    return str(field.contents())


def template_with_default_system(model: Path, dst: Path, system: str = DEFAULT_SYSTEM) -> Path:
    """The model's own template with ``system`` as its default system line, written to ``dst``.

    SmolLM2's template adds a system line when a request has none; only that
    line changes. It sits in a single-quoted Jinja string, so backslashes and
    quotes in ``system`` are escaped.
    """
    template = model_template(model)
    if template.count(SHIPPED_SYSTEM) != 1:
        raise ValueError(f"{model}'s template has no default system line to replace")
    quoted = system.replace("\\", "\\\\").replace("'", "\\'")
    dst.write_text(template.replace(SHIPPED_SYSTEM, quoted), encoding="utf-8")
    return dst


def other_template(dst: Path) -> Path:
    """A Zephyr-style chat template (no default system line), written to ``dst``."""
    dst.write_text(ZEPHYR_TEMPLATE, encoding="utf-8")
    return dst


def free_port(avoid: int | None = None) -> int:
    """A port free on the loopback interface right now, other than ``avoid``."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != avoid:
            return port


@contextlib.contextmanager
def start_shipped(*, port: int | None = None, parallel: int = DEFAULT_PARALLEL) -> Iterator[str]:
    """The bundled model as shipped; yields the server's base URL."""
    with LocalServer(port=port, parallel=parallel) as server:
        yield server.base_url


@contextlib.contextmanager
def start_requantized(model: Path) -> Iterator[str]:
    """A re-quantised copy of the bundled model (see `requantize`); yields the base URL."""
    with LocalServer(model_path=model) as server:
        yield server.base_url


@contextlib.contextmanager
def start_with_template(template: Path) -> Iterator[str]:
    """The bundled model rendered with another chat template file; yields the base URL."""
    with LocalServer(chat_template=template) as server:
        yield server.base_url


def shipped_model() -> Path:
    """The bundled GGUF (the source of every change)."""
    return find_model()
