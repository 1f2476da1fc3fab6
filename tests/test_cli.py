"""The ``octim`` command as a user runs it: configuration, serve, signals,
backup and the demo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

from octim import __version__, load_settings
from octim.config import HostPort
from octim.errors import ConfigError
from octim.testing import TEST_API_KEY, TEST_SECRET
from octim.testing.client import connect
from octim.testing.process import EngineProcess

ENV = {"OCTIM_SECRET": TEST_SECRET, "OCTIM_API_KEY": TEST_API_KEY, "OCTIM_LOG_FORMAT": "json"}
PORTS = ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0"]


def octim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "octim", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_version() -> None:
    result = octim("version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"octim {__version__}"


@pytest.mark.parametrize(("env", "flags", "setting"), [
    ({"OCTIM_API_KEY": TEST_API_KEY}, [], "OCTIM_SECRET"),
    ({"OCTIM_SECRET": "short", "OCTIM_API_KEY": TEST_API_KEY}, [], "OCTIM_SECRET"),
    ({"OCTIM_SECRET": TEST_SECRET}, [], "OCTIM_API_KEY"),
    (ENV, ["--http", "localhost"], "OCTIM_HTTP"),
    (ENV, ["--ws", "127.0.0.1:99999"], "OCTIM_WS"),
    ({**ENV, "OCTIM_MAP_SIZE": "lots"}, [], "OCTIM_MAP_SIZE"),
])
def test_bad_or_missing_settings_stop_startup_with_one_line(
        tmp_path: Path, env: dict[str, str], flags: list[str], setting: str) -> None:
    result = octim("serve", "--data", str(tmp_path), *flags,
                   env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("octim: configuration error:") and setting in lines[0]


def test_every_bad_setting_is_told_at_once_and_help_names_the_required_ones(
        tmp_path: Path) -> None:
    result = octim("serve", "--data", str(tmp_path), "--http", "localhost",
                   env={"PATH": "/usr/bin:/bin", "OCTIM_SECRET": "short",
                        "OCTIM_MAP_SIZE": "lots"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("octim: configuration error:") for line in lines)
    told = " ".join(lines)
    for setting in ("OCTIM_HTTP", "OCTIM_SECRET", "OCTIM_API_KEY", "OCTIM_MAP_SIZE"):
        assert setting in told, result.stderr
    assert len(lines) == 4
    shown = octim("serve", "--help")
    assert shown.returncode == 0
    for name in ("OCTIM_SECRET", "OCTIM_API_KEY", "OCTIM_DATA", "docs/operations.md"):
        assert name in shown.stdout
    assert "``" not in octim("--help").stdout  # no reST markup in help texts


def test_a_port_in_use_names_its_listener(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = octim("serve", "--data", str(tmp_path), "--http", "127.0.0.1:0",
                       "--ws", f"127.0.0.1:{port}", env={"PATH": "/usr/bin:/bin", **ENV})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("octim: ws (OCTIM_WS): the WebSocket gateway cannot listen on "
                           f"127.0.0.1:{port}"), result.stderr


def test_settings_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "octim.toml"
    config.write_text(f'secret = "{TEST_SECRET}"\napi_key = "from-file-0123456789"\n'
                      'data = "/from/file"\nhttp = "127.0.0.1:1"\nws = "127.0.0.1:2"\n')
    settings = load_settings(config_file=config,
                             env={"OCTIM_API_KEY": "from-env-0123456789",
                                  "OCTIM_HTTP": "0.0.0.0:3"},
                             flags={"http": "127.0.0.1:4", "data": None})
    assert settings.secret == TEST_SECRET
    assert settings.api_key == "from-env-0123456789"
    assert settings.http == HostPort("127.0.0.1", 4)
    assert settings.ws == HostPort("127.0.0.1", 2)
    assert str(settings.data) == "/from/file"


def test_config_file_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings(config_file=bad, env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("secret = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=broken, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "absent.toml", env={})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_shuts_down_cleanly_on_signals_and_keeps_writes(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "data"
    with EngineProcess(["serve", "--data", str(data), *PORTS], ENV) as engine:
        ready = engine.wait_ready()
        headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
        with httpx.Client(base_url=ready["http"], headers=headers, timeout=10) as client:
            for i in range(20):
                assert client.put(f"/api/shops/s{i}", json={"name": f"店{i}"}).status_code == 200
        assert engine.stop(sig) == 0
        logs = [json.loads(line) for stream, line in engine.output()
                if stream == "err" and line.startswith("{")]
    assert logs[-1]["msg"] == "stopped"
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in logs)
    with EngineProcess(["serve", "--data", str(data), *PORTS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=headers, timeout=10) as client:
            assert client.get("/api/shops/s19").json()["name"] == "店19"
        assert engine.stop() == 0


def test_backup_while_the_engine_runs(tmp_path: Path) -> None:
    data, dest = tmp_path / "data", tmp_path / "backup"
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    with EngineProcess(["serve", "--data", str(data), *PORTS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=headers, timeout=10) as client:
            client.put("/api/shops/kept", json={"name": "备份店"}).raise_for_status()
            result = octim("backup", "--data", str(data), str(dest))
            assert result.returncode == 0, result.stderr
            assert client.get("/readyz").status_code == 200  # still serving
        assert engine.stop() == 0
    # The copy is a complete store: an engine starts on it and finds the shop.
    with EngineProcess(["serve", "--data", str(dest), *PORTS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=headers, timeout=10) as client:
            assert client.get("/api/shops/kept").json()["name"] == "备份店"
        assert engine.stop() == 0
    again = octim("backup", "--data", str(data), str(dest))
    assert again.returncode == 1 and "not empty" in again.stderr


def test_backup_of_a_missing_store_fails_clearly(tmp_path: Path) -> None:
    result = octim("backup", "--data", str(tmp_path / "absent"), str(tmp_path / "dest"))
    assert result.returncode == 1
    assert "no OctIM store" in result.stderr


def test_demo_prints_working_links(tmp_path: Path) -> None:
    env = {"OCTIM_LOG_FORMAT": "json"}
    with EngineProcess(["demo", "--data", str(tmp_path / "demo"), *PORTS], env) as demo:
        demo.wait_for(lambda s, line: "curl -H" in line)
        printed = {line.split("  ")[1].strip(): line.split()
                   for stream, line in demo.output() if stream == "out" and "  " in line}
        api_key = printed["API key"][-1]
        http = printed["HTTP API"][2]
        token = printed["agent token"][-1]
        links = [line for stream, line in demo.output()
                 if stream == "out" and "#token=" in line]
        assert sum("/agent#token=" in line for line in links) == 5  # every demo agent
        assert sum("/chat?shop=" in line for line in links) == 3  # every demo buyer
        assert sum("/monitor#token=" in line for line in links) == 2
        with httpx.Client(base_url=http, timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            assert client.get("/agent").status_code == 200
            shop = client.get("/api/shops/uniqlo-style",
                              headers={"Authorization": f"Bearer {api_key}"})
            assert shop.json()["name"] == "优衣坊旗舰店"
            tickets = client.get("/api/tickets", params={"shop": "uniqlo-style"},
                                 headers={"Authorization": f"Bearer {api_key}"}).json()
            assert sorted((t["label"], t["requester"], t["source"]["kind"], t["group"])
                          for t in tickets) == [
                ("T-1", "buyer-1", "chat", None),
                ("T-2", "email:azhen@example.com", "email", "after_sales")]  # a rule's
            key = {"Authorization": f"Bearer {api_key}"}
            one = next(t for t in tickets if t["label"] == "T-1")
            assert one["sla"]["policy"] == "standard" and one["sla"]["business_hours"]
            settings = client.get("/api/shops/uniqlo-style/ticket-settings", headers=key).json()
            assert settings["statuses"][0]["label"] == "待仓库核实"
            call = client.post("/api/inbound/call", headers=key, json={
                "shop": "uniqlo-style", "call": "c-1", "phone": "+8613800000001"}).json()
            assert call["buyer"] == "buyer-1" and "T-1" in [t["label"] for t in call["tickets"]]
            # The knowledge-base page has something learned to approve, and its link.
            assert any("/kb#token=" in line for line in links)
            assert client.get("/kb").status_code == 200
            [learned] = client.get("/api/kb-proposals", headers=key,
                                   params={"shop": "uniqlo-style"}).json()
            assert learned["question"] == "身高170该拍哪个码"
            assert client.post("/api/kb/ask", headers=key, json={
                "question": "羽绒衣能机洗吗", "shop": "uniqlo-style"}).json()["answered"]
            # The admin console's links; its shop admin reads the settings and simulates.
            [console] = [line for line in links if "/admin#token=" in line]
            assert sum("/admin?shop=" in line for line in links) == 1  # the platform's
            assert client.get("/admin").status_code == 200
            boss = {"Authorization": "Bearer " + console.split("#token=")[1].split()[0]}
            assert client.get("/api/shops/uniqlo-style/config", headers=boss).json()[
                "routing_rules"]
            simulated = client.post("/api/shops/uniqlo-style/routing/simulate", headers=boss,
                                    json={"text": "我要退货"}).json()
            assert simulated["group"] == "after_sales" and simulated["candidates"]
            # A month of demo history, so the reports page shows a month.
            week = client.get("/api/reports/overview", headers=key,
                              params={"shop": "uniqlo-style"}).json()  # the last 7 days
            assert week["totals"]["conversations"] > 100
            assert week["totals"]["first_response"]["p50_s"] is not None
            assert week["totals"]["converted"] > 0 and week["totals"]["sales"] > 0
            assert week["totals"]["tickets_created"] > 0 and week["totals"]["sla"]
            channels = client.get("/api/reports/breakdown", headers=key, params={
                "shop": "uniqlo-style", "by": "channel"}).json()["rows"]
            assert {"web", "app", "miniprogram"} <= {r["value"] for r in channels}
            life = client.get("/api/reports/lifecycle", headers=key,
                              params={"shop": "uniqlo-style"}).json()
            assert all(s["buyers"] > 0 for s in life["stages"]), life
            hot = client.get("/api/reports/hot-questions", headers=key,
                             params={"shop": "uniqlo-style"}).json()
            assert hot["top_entries"][0]["question"], hot["top_entries"]
        assert token.count(".") == 2
        conversation = printed["conversation"][1]

        async def agent_sees_the_seeded_chat_and_the_bot_answers() -> None:
            async with connect(printed["WebSocket"][1], token) as agent:
                texts = [m["body"].get("text") for m in await agent.sync(conversation)]
                assert texts[1:] == ["你好，这件羽绒服有L码吗？",
                                     "亲，L码有货的，今天下单明天发货哦～",
                                     # a service notice from the platform's order event
                                     "您的订单 demo-o1（轻薄羽绒服 男款）已发货：中通 ZT75310042。",
                                     "我在微信上，羽绒服今天能发吗？",  # from WeChat
                                     "亲，今天下午就发出，微信上也能随时找我们～"]
            # Nobody is online in the demo shop: a new buyer is served by the bot.
            async with connect(printed["WebSocket"][1], printed["buyer token"][-1]) as buyer:
                opened = await buyer.request({"type": "open", "shop": "stride-shoes",
                                              "ref": "d"}, "opened", ref="d")
                assert opened["state"] == "bot"
                await buyer.say(opened["conversation"], "d1", "亲，几天能发货呀")
                answer = await buyer.expect("msg", role="bot")
                assert answer["body"]["text"].startswith("付款后48小时内发货")

        trio.run(agent_sees_the_seeded_chat_and_the_bot_answers)
        with httpx.Client(base_url=http, timeout=10) as client:
            context = client.get(f"/api/conversations/{conversation}/context",
                                 headers={"Authorization": f"Bearer {token}"}).json()
        assert [o["id"] for o in context["orders"]] == ["demo-o1", "demo-o2"]
        assert context["orders"][0]["logistics"][-1]["status"] == "运输中"
        assert "蓝牙耳机" not in str(context)  # the other shop's order
        # The demo's internal entry: staff find it, buyers never do.
        with httpx.Client(base_url=http, timeout=10) as client:
            ask = {"question": "退货寄到哪", "shop": "uniqlo-style"}
            staff = client.post("/api/kb/ask", json=ask,
                                headers={"Authorization": f"Bearer {token}"}).json()
            buyer_view = client.post("/api/kb/ask", json=ask, headers={
                "Authorization": f"Bearer {printed['buyer token'][-1]}"}).json()
        assert staff["id"] == "uniqlo-internal-1" and staff["answered"]
        assert "内部" not in str(buyer_view) and buyer_view["id"] != "uniqlo-internal-1"
        # The demo's WeChat channel (a fake WeChat behind the real adapter): buyer-1's
        # WeChat message is in the seeded conversation, and agent-1's reply reached WeChat.
        push = next(line for stream, line in demo.output() if "/fake/push" in line).split()
        fake = push[push.index("-G") + 1].removesuffix("/fake/push")
        with httpx.Client(timeout=10) as client:
            inbox = client.get(f"{fake}/fake/inbox", params={"openid": "demo-openid-buyer-1"})
            assert inbox.json()["messages"] == ["亲，今天下午就发出，微信上也能随时找我们～"]
            pushed = client.get(f"{fake}/fake/push", params={
                "openid": "demo-openid-buyer-1", "text": "还在吗？"}).json()
            assert pushed == {"adapter_answered": 200, "body": "success"}

        async def the_wechat_messages_are_in_buyer_1s_conversation() -> None:
            async with connect(printed["WebSocket"][1], token) as agent:
                said = [(m["body"].get("text"), m.get("via")) for m in
                        await agent.sync(conversation) if m["role"] == "buyer"]
                assert said[-2:] == [("我在微信上，羽绒服今天能发吗？", "uniqlo-wechat"),
                                     ("还在吗？", "uniqlo-wechat")]

        trio.run(the_wechat_messages_are_in_buyer_1s_conversation)
        # buyer-3's carted jacket gets cheaper: a reminder, or the gate's reason why not.
        with httpx.Client(base_url=http, timeout=10) as client:
            drop = client.post("/api/events/price-change", headers=key, json={"changes": [
                {"shop": "uniqlo-style", "sku": "sku-1001", "price": 349}]}).json()
        (reminder,) = drop["results"][0]["reminders"]
        assert reminder["customer"] == "buyer-3"
        assert reminder["sent"], reminder  # the demo shop has no quiet hours
        # The demo campaign: buyer-3 (consent) got it; buyer-1 (none) was held back.
        with httpx.Client(base_url=http, timeout=10, headers=key) as client:
            (campaign,) = client.get("/api/campaigns", params={"shop": "uniqlo-style"}).json()
            deadline = time.monotonic() + 20
            while client.get(f"/api/campaigns/{campaign['id']}").json()["state"] != "finished":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            recipients = {r["customer"]: r.get("reason", r["state"]) for r in client.get(
                f"/api/campaigns/{campaign['id']}/recipients").json()}
        assert recipients == {"buyer-1": "no_consent", "buyer-3": "sent"}, recipients
        assert demo.stop(signal.SIGINT) == 0


def test_rekey_command_seals_a_clear_store_and_reports(tmp_path: Path) -> None:
    from octim.store.crypto import new_key_line

    data = tmp_path / "d"
    env = {"OCTIM_SECRET": "s" * 40, "OCTIM_API_KEY": "k" * 20}
    with EngineProcess(["serve", "--data", str(data), *PORTS, "--log-format", "json"],
                       env) as engine:
        http = engine.wait_ready()["http"]
        with httpx.Client(base_url=http, headers={"Authorization": f"Bearer {'k' * 20}"}) as c:
            c.put("/api/customers/c1", json={"nickname": "明文昵称"}).raise_for_status()
        assert engine.stop() == 0
    assert "明文昵称".encode() in (data / "data.mdb").read_bytes()
    missing = octim("rekey", "--data", str(data), env={})
    assert missing.returncode != 0 and "data key" in missing.stderr
    key = new_key_line("k1")
    done = octim("rekey", "--data", str(data), env={"OCTIM_DATA_KEY": key})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["kid"] == "k1" and report["values"]["customers"] == 1
    # Re-sealed, but LMDB's copy-on-write left the old page behind as a free page.
    assert "明文昵称".encode() in (data / "data.mdb").read_bytes()
    again = octim("rekey", "--data", str(data), "--compact", env={"OCTIM_DATA_KEY": key})
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert sum(report["values"].values()) == 0 and report["compacted"]  # resumable: no work
    assert "明文昵称".encode() not in (data / "data.mdb").read_bytes()
    # Compaction refuses to run under a live engine (it would replace its file).
    env["OCTIM_DATA_KEY"] = key
    with EngineProcess(["serve", "--data", str(data), *PORTS, "--log-format", "json"],
                       env) as engine:
        engine.wait_ready()
        busy = octim("rekey", "--data", str(data), "--compact", env={"OCTIM_DATA_KEY": key})
        assert busy.returncode != 0 and "in use" in busy.stderr
        online = octim("rekey", "--data", str(data), env={"OCTIM_DATA_KEY": key})
        assert online.returncode == 0, online.stderr  # re-sealing runs beside the engine
        assert engine.stop() == 0


def test_reports_rebuild_refuses_a_running_engine_and_replays_a_stopped_one(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    with EngineProcess(["serve", "--data", str(data), *PORTS], ENV) as engine:
        ready = engine.wait_ready()
        with httpx.Client(base_url=ready["http"], headers=headers, timeout=10) as client:
            client.put("/api/shops/s1", json={"name": "一号店"}).raise_for_status()
            client.post("/api/tickets", json={"shop": "s1", "subject": "x"}).raise_for_status()
            busy = octim("reports", "rebuild", "--data", str(data))
            assert busy.returncode == 1 and "stop it first" in busy.stderr
        assert engine.stop() == 0
    done = octim("reports", "rebuild", "--data", str(data))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["records"] >= 1 and report["buckets"] >= 2  # the shop and the platform


def test_the_wechat_adapter_command_runs_and_needs_its_secrets(tmp_path: Path) -> None:
    import hashlib

    missing = octim("wechat", "--channel", "wx", "--listen", "127.0.0.1:0")
    assert missing.returncode == 2 and "OCTIM_WECHAT_TOKEN" in missing.stderr
    env = {"OCTIM_WECHAT_TOKEN": "tok", "OCTIM_WECHAT_APPID": "app",
           "OCTIM_WECHAT_APPSECRET": "s", "OCTIM_WECHAT_CHANNEL_SECRET": "c" * 20}
    with EngineProcess(["wechat", "--channel", "wx", "--listen", "127.0.0.1:0"],
                       env) as adapter:
        line = adapter.wait_for(lambda stream, text: "wechat_adapter" in text)
        url = json.loads(line)["push_url"]
        signature = hashlib.sha1("".join(sorted(["tok", "1", "n"])).encode()).hexdigest()
        answer = httpx.get(url, params={"signature": signature, "timestamp": "1",
                                        "nonce": "n", "echostr": "hello"})
        assert answer.text == "hello"
        assert adapter.stop(signal.SIGINT) == 0
