"""Knowledge base: CLI import/export/ask, HTTP permissions, matching quality floor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from bench.kb.evaluate import run
from octim.domain.kb.knowledge import KnowledgeBase
from octim.domain.kb.matcher import Matcher
from octim.testing import TEST_API_KEY, open_engine, token

ENTRIES = Path(__file__).resolve().parent.parent / "bench" / "kb" / "entries.jsonl"


def octim(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octim", *args], capture_output=True,
                          text=True, timeout=120, input=stdin)


def test_import_export_round_trip_and_ask(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    imported = octim("kb", "import", str(ENTRIES), "--data", data)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"imported": 40, "created": 40, "updated": 0,
                                           "rejected": 0}
    again = json.loads(octim("kb", "import", str(ENTRIES), "--data", data).stdout)
    assert again["created"] == 0 and again["updated"] == 40  # upsert by id
    exported = octim("kb", "export", "--data", data).stdout.splitlines()
    original = sorted(ENTRIES.read_text(encoding="utf-8").splitlines(),
                      key=lambda line: json.loads(line)["id"])
    # Entries imported without a visibility are public (the bot may tell buyers).
    assert [json.loads(line) for line in exported] == [
        {**json.loads(line), "visibility": "public"} for line in original]
    one = json.loads(octim("kb", "ask", "--data", data, "亲，退款几天能到账啊").stdout)
    assert one["id"] == "kb-12" and one["answered"] is True and one["answer"]
    many = octim("kb", "ask", "--data", data, stdin="什么时候发货\n讲个笑话吧\n能开发票吗\n")
    results = [json.loads(line) for line in many.stdout.splitlines()]
    assert [r["answered"] for r in results] == [True, False, True]
    assert results[0]["id"] == "kb-01" and results[2]["id"] == "kb-30"
    assert results[1]["answer"] is None and set(results[1]) == {"id", "answer", "score",
                                                                "confidence", "answered"}


def test_a_bad_file_imports_nothing_unless_skip_bad(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    lines = ENTRIES.read_text(encoding="utf-8").splitlines()[:3]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], '{"id": "x", "question": 1}', "not json",
                              lines[2]]) + "\n", encoding="utf-8")
    refused = octim("kb", "import", str(bad), "--data", data)
    assert refused.returncode == 1
    assert f"{bad}:2:" in refused.stderr and f"{bad}:3:" in refused.stderr
    assert "nothing imported" in refused.stderr
    assert not (tmp_path / "data" / "data.mdb").exists() or \
        octim("kb", "export", "--data", data).stdout == ""
    skipped = octim("kb", "import", str(bad), "--data", data, "--skip-bad")
    assert skipped.returncode == 0
    assert json.loads(skipped.stdout)["imported"] == 2
    assert json.loads(skipped.stdout)["rejected"] == 2
    assert len(octim("kb", "export", "--data", data).stdout.splitlines()) == 2


def test_matching_keeps_its_floor_on_the_tuning_half() -> None:
    """A regression guard on the tuning half of bench/kb/eval (figures as measured when
    the matcher was tuned: 72.8% / 97.1% / 3.4%; the held-out set is reported by
    bench.kb.evaluate only)."""
    result = run("tune")
    assert result["top1"] >= 0.70 and result["top3"] >= 0.95, result["top1"]
    assert result["false"] <= 0.05, [r["question"] for r in result["rows"]
                                      if not r["expected"] and r["answered"]]


def test_a_shop_entry_is_preferred_over_the_platform_one() -> None:
    kb = KnowledgeBase([
        {"id": "p", "question": "什么时候发货", "similar": [], "answer": "平台：48小时",
         "category": None, "shop": None, "enabled": True},
        {"id": "s", "question": "什么时候发货", "similar": [], "answer": "本店：当天发",
         "category": None, "shop": "s1", "enabled": True},
        {"id": "other", "question": "什么时候发货", "similar": [], "answer": "别家",
         "category": None, "shop": "s2", "enabled": True}])
    assert kb.ask("什么时候发货呀", "s1")["id"] == "s"
    assert kb.ask("什么时候发货呀", "s3")["id"] == "p"  # other shops' entries are invisible
    disabled = dict(kb.entries["s"], enabled=False)
    kb.put(disabled)
    assert kb.ask("什么时候发货呀", "s1")["id"] == "p"


async def test_http_permissions(tmp_path: Path) -> None:
    entry = {"question": "包邮吗", "similar": ["运费多少"], "answer": "满99包邮"}
    async with open_engine(tmp_path / "d") as (_, listening):
        async with httpx.AsyncClient(base_url=listening.http_url, timeout=10) as http:
            def as_(user: str, role: str, *shops: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token(user, role, *shops)}"}

            platform = {"Authorization": f"Bearer {TEST_API_KEY}"}
            assert (await http.put("/api/kb/p1", json=entry, headers=platform)).status_code \
                == 200
            admin = as_("boss", "shop_admin", "s1")
            ok = await http.put("/api/kb/s1-1", json={**entry, "shop": "s1"}, headers=admin)
            assert ok.status_code == 200 and ok.json()["shop"] == "s1"
            for body, who in (({**entry, "shop": "s2"}, admin), (entry, admin),
                              ({**entry, "shop": "s1"}, as_("a", "agent", "s1"))):
                denied = await http.put("/api/kb/x", json=body, headers=who)
                assert denied.status_code == 403, body
                assert denied.json()["error"]["code"] == "forbidden"
            takeover = await http.put("/api/kb/p1", json={**entry, "shop": "s1"}, headers=admin)
            assert takeover.status_code == 403  # a platform entry stays the platform's
            agent = as_("a", "agent", "s1")
            assert (await http.get("/api/kb/s1-1", headers=agent)).status_code == 200
            assert (await http.get("/api/kb/s1-1", headers=as_("b", "agent", "s2"))
                    ).status_code == 404
            listed = (await http.get("/api/kb", headers=as_("b", "agent", "s2"))).json()
            assert [e["id"] for e in listed] == ["p1"]
            asked = await http.post("/api/kb/ask", json={"question": "亲 包不包邮",
                                                         "shop": "s1"},
                                    headers=as_("buyer", "buyer"))
            assert asked.json()["id"] == "s1-1" and asked.json()["answered"] is True
            assert (await http.post("/api/kb/ask", json={"question": "x"})).status_code == 401
            bad = await http.put("/api/kb/p2", json={"question": "", "answer": "x"},
                                 headers=platform)
            assert bad.status_code == 422
            assert (await http.delete("/api/kb/s1-1", headers=admin)).status_code == 204
            assert (await http.get("/api/kb/s1-1", headers=platform)).status_code == 404


def test_reindexing_and_removing_leave_no_trace() -> None:
    matcher = Matcher()
    matcher.upsert("a", ["怎么申请退货"])
    matcher.upsert("b", ["什么时候发货"])
    matcher.upsert("a", ["可以开发票吗"])  # replaced: the old phrasing is gone
    assert "a" not in [m.entry for m in matcher.search("申请退货")]
    assert matcher.search("开发票")[0].entry == "a"
    matcher.remove("a")
    matcher.remove("missing")
    assert len(matcher) == 1 and "a" not in [m.entry for m in matcher.search("开发票")]
    assert all(posting for posting in matcher._postings.values())
