"""How big a cassette is per call: format v1 against format v2, same calls.

Run ``python bench/cassette_size.py``. Every shipped cassette under ``cassettes/``
is written in both formats from the same calls (whatever format it is stored
in), and so is one synthetic chat completion of 20 tokens with top-20 logprobs
in the bundled llama.cpp server's shape (token ids, bytes, float32 logprobs).
Both texts are read back and must give the same responses (checked, not
assumed). Printed: KB per call in each format, the ratio, and the time
``read_cassette`` takes per call for each (informational: replay pays it).

Target: v2 at most ``TARGET_KB`` KB per call for the synthetic 20 x top-20 call
and over all shipped cassettes; exit status 1 if missed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_rolecheck.recording.encoding import pack_body, unpack_body
from pytest_rolecheck.recording.format import FORMAT_KEY, read_cassette, render_json

ROOT = Path(__file__).resolve().parents[1]
CASSETTES = ROOT / "cassettes"
TARGET_KB = 14.0
# Synthetic tokens: English words, half with a leading space (5.0 characters on average;
# the shipped top-20 cassettes average 4.6)
WORDS = ("the", "cat", "sat", "on", "a", "warm", "mat", "and", "sang", "softly", "about")
WORDS += ("rain", "while", "her", "kitten", "chased", "bright", "paper", "stars", "across")
WORDS += ("quiet", "rooms", "nobody", "else", "could", "see", "tonight")


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def synthetic_call(rng: random.Random, tokens: int = 20, top: int = 20) -> dict[str, Any]:
    """One recorded call (v1 shape) of ``tokens`` tokens x top-``top``, llama.cpp style."""

    def entry() -> dict[str, Any]:
        token = rng.choice(("", " ")) + rng.choice(WORDS)
        return {
            "id": rng.randrange(49152),
            "token": token,
            "bytes": list(token.encode("utf-8")),
            "logprob": _f32(-rng.expovariate(0.3)),
        }

    content = []
    for _ in range(tokens):
        alternatives = sorted((entry() for _ in range(top)), key=lambda e: -e["logprob"])
        content.append({**alternatives[0], "top_logprobs": alternatives})
    messages = [
        {"role": "system", "content": "You are a helpful AI assistant"},
        {"role": "user", "content": "Produce two stanza rock song lyrics for 'Rockin with my Cat'"},
    ]
    body = {
        "choices": [
            {
                "finish_reason": "length",
                "index": 0,
                "message": {"role": "assistant", "content": "".join(e["token"] for e in content)},
                "logprobs": {"content": content},
            }
        ],
        "created": 0,
        "model": "smollm2-135m-instruct",
        "system_fingerprint": "b0-unknown",
        "object": "chat.completion",
        "usage": {"completion_tokens": tokens, "prompt_tokens": 37, "total_tokens": 37 + tokens},
        "id": "chatcmpl-0",
    }
    request = {
        "model": "smollm2-135m-instruct",
        "messages": messages,
        "logprobs": True,
        "max_tokens": tokens,
        "temperature": 0.0,
        "top_logprobs": top,
    }
    return {
        "index": 0,
        "request": {
            "method": "POST",
            "uri": "http://127.0.0.1/v1/chat/completions",
            "headers": {"content-type": "application/json", "x-rolecheck-call": "0"},
            "body": {"json": request},
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": "application/json; charset=utf-8"},
            "body": {"json": body},
        },
    }


def both_formats(doc: dict[str, Any]) -> tuple[str, str]:
    """(v1 text, v2 text) of a cassette document stored in either format."""
    items = doc["interactions"]
    plain = [
        {**i, "response": {**i["response"], "body": unpack_body(i["response"]["body"])}}
        for i in items
    ]
    packed = [
        {**i, "response": {**i["response"], "body": pack_body(i["response"]["body"])}}
        for i in plain
    ]
    v1 = render_json({**doc, FORMAT_KEY: 1, "interactions": plain}) + "\n"
    v2 = render_json({**doc, FORMAT_KEY: 2, "interactions": packed}) + "\n"
    return v1, v2


def read_ms(text: str, repeats: int) -> tuple[float, list[Any]]:
    """Median ms of read_cassette over ``text``, and the responses' JSON values."""
    with tempfile.TemporaryDirectory(prefix="rolecheck-size-") as tmp:
        path = Path(tmp) / "cassette.json"
        path.write_text(text, encoding="utf-8")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            found, _ = read_cassette(path)
            times.append((time.perf_counter() - start) * 1e3)
    bodies = [json.loads(found[i].response["body"]["string"]) for i in sorted(found)]
    return statistics.median(times), bodies


def measure(label: str, doc: dict[str, Any], repeats: int) -> tuple[str, int, int, int]:
    v1, v2 = both_formats(doc)
    ms1, bodies1 = read_ms(v1, repeats)
    ms2, bodies2 = read_ms(v2, repeats)
    if bodies1 != bodies2:
        raise SystemExit(f"{label}: v2 reads back other responses than v1")
    calls = len(doc["interactions"])
    size1, size2 = len(v1.encode("utf-8")), len(v2.encode("utf-8"))
    print(
        f"{label:<58}{calls:>6}{size1 / calls / 1024:9.1f}{size2 / calls / 1024:9.1f}"
        f"{size2 / size1:8.2f}{ms1 / calls:9.2f}{ms2 / calls:9.2f}"
    )
    return label, calls, size1, size2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="reads timed per text")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--synthetic-only", action="store_true", help="skip the shipped cassettes")
    args = parser.parse_args(argv)
    print(
        f"{'cassette':<58}{'calls':>6}{'v1 KB':>9}{'v2 KB':>9}{'ratio':>8}"
        f"{'v1 ms':>9}{'v2 ms':>9}   (KB and ms per call)"
    )
    synthetic = {
        FORMAT_KEY: 1,
        "test": "synthetic",
        "interactions": [synthetic_call(random.Random(args.seed))],
    }
    rows = [measure("synthetic: 20 tokens x top-20 (llama.cpp shape)", synthetic, args.repeats)]
    shipped = [] if args.synthetic_only else sorted(CASSETTES.rglob("*.json"))
    for path in shipped:
        doc = json.loads(path.read_text(encoding="utf-8"))
        rows.append(measure(str(path.relative_to(CASSETTES)), doc, args.repeats))
    missed = []
    synthetic_kb = rows[0][3] / 1024
    if synthetic_kb > TARGET_KB:
        missed.append(f"synthetic 20 x top-20: {synthetic_kb:.1f} KB per call")
    if shipped:
        calls = sum(r[1] for r in rows[1:])
        total1, total2 = sum(r[2] for r in rows[1:]), sum(r[3] for r in rows[1:])
        print(
            f"{'all shipped cassettes':<58}{calls:>6}{total1 / calls / 1024:9.1f}"
            f"{total2 / calls / 1024:9.1f}{total2 / total1:8.2f}"
            f"   ({total1 / 2**20:.1f} MB -> {total2 / 2**20:.1f} MB)"
        )
        if total2 / calls / 1024 > TARGET_KB:
            missed.append(f"shipped cassettes: {total2 / calls / 1024:.1f} KB per call")
    print(
        f"target missed (> {TARGET_KB:g} KB per call): " + "; ".join(missed)
        if missed
        else f"target met (v2 <= {TARGET_KB:g} KB per call)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
