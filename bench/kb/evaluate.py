"""Evaluate the knowledge base's matching on the labelled sets in this directory.

``python -m bench.kb.evaluate`` reports, for the evaluation set in ``eval/`` (its tuning
half, its first held-out half and the second held-out set ``held2``) and for the older
clothing set here:

* **top-1**: in-scope questions answered with the right entry;
* **top-3**: in-scope questions whose right entry is among the three best candidates
  (what the bot offers as 您是不是想问 when it does not answer);
* **wrong**: in-scope questions answered with another entry;
* **false answers**: off-topic questions answered at all;
* a precision/coverage curve over the confidence (``--curve``).

``--misses`` lists the misses of the tuning material (the tuning half and the first
held-out half, once its figures were recorded), never the second held-out set's.
Everything runs through :class:`~octim.domain.kb.knowledge.KnowledgeBase`,
the bot's own path: a buyer of a shop gets that shop's entries and the platform's.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from octim.domain.kb.knowledge import KnowledgeBase

HERE = Path(__file__).parent
L2 = 0.003
EVAL = HERE / "eval"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load() -> tuple[list[dict[str, Any]], list[dict[str, str]], list[str]]:
    """The older clothing set: entries, phrasings, off-topic questions."""
    entries = _jsonl(HERE / "entries.jsonl")
    phrasings = _jsonl(HERE / "phrasings.jsonl")
    offtopic = [q for q in (HERE / "offtopic.txt").read_text().splitlines() if q.strip()]
    return entries, phrasings, offtopic


def load_set(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``("tune" | "held" | "held2" | "old")``: entries and cases
    ``{"question", "shop", "expected"}``."""
    if name == "old":
        entries, phrasings, offtopic = load()
        return entries, ([{"question": p["question"], "shop": None, "expected": p["expected"]}
                          for p in phrasings]
                         + [{"question": q, "shop": None, "expected": None} for q in offtopic])
    return _jsonl(EVAL / "entries.jsonl"), _jsonl(EVAL / f"{name}.jsonl")


def run(name: str, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    entries, cases = load_set(name)
    kb = kb or KnowledgeBase(dict(e, enabled=True) for e in entries)
    rows = []
    for case in cases:
        result = kb.ask(case["question"], case["shop"])
        view, found = kb.search(case["question"], case["shop"], limit=3)
        rows.append({**case, "answered": result["answered"], "id": result["id"],
                     "confidence": result["confidence"], "ranked": [m.entry for m in found],
                     "features": view.features(found) if view else (0.0, 0.0, 0.0)})
    return summarise(rows)


def fit(rows: list[dict[str, Any]], rounds: int = 20_000, rate: float = 1.0
        ) -> tuple[float, ...]:
    """A logistic model of "the best match is right" over the confidence features (plain
    gradient descent; a few hundred rows)."""
    data = [(r["features"], 1.0 if r["ranked"] and r["ranked"][0] == r["expected"] else 0.0)
            for r in rows]
    w = [0.0] * (1 + len(data[0][0]))
    for _ in range(rounds):
        grad = [0.0] * len(w)
        for x, y in data:
            z = w[0] + sum(wi * xi for wi, xi in zip(w[1:], x, strict=True))
            p = 1 / (1 + math.exp(-z))
            grad[0] += p - y
            for i, xi in enumerate(x):
                grad[i + 1] += (p - y) * xi
        # An L2 penalty (not on the intercept) keeps one feature from carrying it all.
        w = [wi - rate * (g / len(data) + (L2 * wi if i else 0.0))
             for i, (wi, g) in enumerate(zip(w, grad, strict=True))]
    return tuple(round(v, 2) for v in w)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    inscope = [r for r in rows if r["expected"]]
    off = [r for r in rows if not r["expected"]]
    right = [r for r in inscope if r["answered"] and r["id"] == r["expected"]]
    wrong = [r for r in inscope if r["answered"] and r["id"] != r["expected"]]
    top3 = [r for r in inscope if r["expected"] in r["ranked"]]
    false = [r for r in off if r["answered"]]
    best = [r for r in inscope if r["ranked"][:1] == [r["expected"]]]
    return {"cases": len(inscope), "offtopic": len(off), "top1": len(right) / len(inscope),
            "best": len(best) / len(inscope),
            "top3": len(top3) / len(inscope), "wrong": len(wrong) / len(inscope),
            "false": len(false) / len(off) if off else 0.0, "rows": rows}


def curve(rows: list[dict[str, Any]], steps: int = 20) -> list[tuple[float, float, float]]:
    """(threshold, coverage, precision): answering whenever the confidence reaches the
    threshold, the share of in-scope questions answered and the share of answers right."""
    points = []
    inscope = sum(1 for r in rows if r["expected"])
    for i in range(steps + 1):
        t = i / steps
        answered = [r for r in rows if r["confidence"] >= t and r["id"]]
        good = sum(1 for r in answered if r["id"] == r["expected"])
        points.append((t, sum(1 for r in answered if r["expected"]) / inscope,
                       good / len(answered) if answered else 1.0))
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true",
                        help="list the misses of the tuning material (tune, held)")
    parser.add_argument("--curve", action="store_true", help="precision/coverage curves")
    parser.add_argument("--fit", action="store_true",
                        help="fit the confidence model on the tuning material and print it")
    parser.add_argument("--tune-only", action="store_true",
                        help="the tuning material only (tune, held), while tuning")
    args = parser.parse_args()
    if args.fit:
        print("CONFIDENCE_MODEL =", fit(run("tune")["rows"] + run("held")["rows"]))
        return
    for name in ("tune", "held") if args.tune_only else ("tune", "held", "held2", "old"):
        result = run(name)
        print(f"{name:5} top-1 {result['top1']:6.1%}  top-3 {result['top3']:6.1%}  "
              f"best {result['best']:6.1%}  wrong {result['wrong']:5.1%}  "
              f"false answers {result['false']:5.1%}  "
              f"({result['cases']} questions, {result['offtopic']} off-topic)")
        if args.curve:
            for t, coverage, precision in curve(result["rows"]):
                print(f"      confidence >= {t:.2f}: coverage {coverage:6.1%}  "
                      f"precision {precision:6.1%}")
        if args.misses and name in ("tune", "held"):
            for r in result["rows"]:
                if (r["expected"] and not (r["answered"] and r["id"] == r["expected"])) or (
                        not r["expected"] and r["answered"]):
                    print(f"  miss {r['question']!r} [{r['shop']}] want {r['expected']} got "
                          f"{r['id']} answered={r['answered']} c={r['confidence']:.2f} "
                          f"{r['ranked']}")


if __name__ == "__main__":
    main()
