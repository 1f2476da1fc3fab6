"""Evaluate the KB matcher on the labelled set in this directory.

python -m bench.kb.evaluate [--min-score S]  prints top-1 accuracy on the in-scope
phrasings (answered and right) and the share of off-topic questions that got an answer.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from octim.domain.kb.matcher import Matcher

HERE = Path(__file__).parent


def load() -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    entries = [json.loads(line) for line in (HERE / "entries.jsonl").read_text().splitlines()]
    phrasings = [json.loads(line) for line in (HERE / "phrasings.jsonl").read_text().splitlines()]
    offtopic = [q for q in (HERE / "offtopic.txt").read_text().splitlines() if q.strip()]
    return entries, phrasings, offtopic


def evaluate(matcher: Matcher) -> dict[str, Any]:
    entries, phrasings, offtopic = load()
    for entry in entries:
        matcher.upsert(entry["id"], [entry["question"], *entry["similar"], entry["answer"]])
    misses = []
    correct = 0
    for case in phrasings:
        found = matcher.search(case["question"], limit=1)
        top = found[0] if found else None
        if top is not None and matcher.answers(top) and top.entry == case["expected"]:
            correct += 1
        else:
            misses.append((case["question"], case["expected"], top))
    answered_offtopic = [q for q in offtopic
                         if matcher.answers((matcher.search(q, limit=1) or [None])[0])]
    return {"top1": correct / len(phrasings), "offtopic_answered":
            len(answered_offtopic) / len(offtopic), "misses": misses,
            "offtopic": answered_offtopic}


if __name__ == "__main__":
    kwargs = {"min_score": float(sys.argv[sys.argv.index("--min-score") + 1])} \
        if "--min-score" in sys.argv else {}
    result = evaluate(Matcher(**kwargs))
    print(f"top-1 {result['top1']:.1%}  off-topic answered {result['offtopic_answered']:.1%}")
    for miss in result["misses"]:
        print("  miss", miss)
    for q in result["offtopic"]:
        print("  off-topic answered:", q)
