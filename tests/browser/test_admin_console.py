"""The admin console (/admin, #20) in a real browser against a real engine process: a new
shop is set up end to end in the browser (a skill group, an agent, an ordered routing
rule), the simulator explains a decision that a real buyer's conversation then confirms;
two admins editing the same rules; a knowledge-base import with a bad line; approving a
proposal makes the bot answer; another shop's settings are refused by the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from octim.testing import token

from .conftest import Running
from .test_web_client import SHOP, seed, wait_until, watch_console

NEW = "shop-n"


def unexpected(problems: list[str], *refused: int) -> list[str]:
    """The console's problems, less the browser's log line of each refusal the test
    provoked on purpose (a 412 for a stale save, a 422 for a bad import…)."""
    return [p for p in problems
            if not any(f"responded with a status of {status} " in p for status in refused)]


def console(chromium: Any, running: Running, problems: list[str], user: str = "boss",
            shops: tuple[str, ...] = (NEW,), width: int = 1280) -> Page:
    page = chromium.new_context(viewport={"width": width, "height": 900}).new_page()
    watch_console(page, problems)
    page.goto(f"{running.http}/admin#token={token(user, 'shop_admin', *shops)}")
    expect(page.locator("#page")).to_be_visible()
    return page


def test_a_new_shop_is_set_up_in_the_browser_and_the_simulator_predicts_the_real_route(
        chromium: Any, running: Running, artifacts: Path) -> None:
    problems: list[str] = []
    # The platform admin opens the shop in the browser (no shop exists yet).
    platform = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch_console(platform, problems)
    platform.goto(f"{running.http}/admin#token={token('root', 'platform_admin')}")
    expect(platform.locator("#p-platform")).to_be_visible()
    platform.fill("#sh-id", NEW)
    platform.fill("#sh-name", "新店")
    platform.fill("#sh-categories", "数码")
    platform.locator("#shop-form button[type=submit]").click()
    expect(platform.locator(f"#shops tr[data-shop='{NEW}']")).to_contain_text("营业中")
    assert running.api.get(f"/api/shops/{NEW}").json()["categories"] == ["数码"]
    platform.fill("#ov-id", "night")
    platform.fill("#ov-name", "平台夜班")
    platform.locator("#overflow-form button[type=submit]").click()
    expect(platform.locator("#overflow-agents li[data-agent='night']")).to_contain_text("平台夜班")
    assert running.api.get("/api/agents/night").json()["shops"] == ["*"]

    admin = console(chromium, running, problems)

    # Team: a skill group, then an agent in it.
    admin.fill("#g-id", "aftersale")
    admin.fill("#g-name", "售后组")
    admin.locator("#group-form button[type=submit]").click()
    expect(admin.locator("#groups li[data-group='aftersale']")).to_contain_text("售后组")
    admin.fill("#ag-id", "amy")
    admin.fill("#ag-name", "Amy")
    admin.get_by_label("售后组").check()
    admin.fill("#ag-max", "3")
    admin.locator("#agent-form button[type=submit]").click()
    expect(admin.locator("#ag-status")).to_have_text("已保存")
    row = admin.locator("#agents tr[data-agent='amy']")
    expect(row).to_contain_text("aftersale")
    expect(row).to_contain_text("离线")

    # Routing: the built-in keyword rules are listed; a new rule goes first.
    admin.locator("#t-routing").click()
    expect(admin.locator("#rules li.rule")).to_have_count(2)
    admin.locator("#add-rule").click()
    new_rule = admin.locator("#rules li.rule").last
    new_rule.locator(".r-values").fill("坏了, 不能用")
    new_rule.locator(".r-group").select_option("aftersale")
    new_rule.get_by_label("上移").click()  # now second
    admin.locator("#rules li.rule").nth(1).get_by_label("上移").click()
    expect(admin.locator("#rules li.rule").first.locator(".r-values")).to_have_value("坏了, 不能用")
    admin.locator("#routing-form button[type=submit]").click()
    expect(admin.locator("#r-status")).to_have_text("已保存")
    config = running.api.get(f"/api/shops/{NEW}/config").json()
    assert config["routing_rules"][0] == {"kind": "keywords", "values": ["坏了", "不能用"],
                                          "group": "aftersale"}

    # The agent signs in to the workbench (online); the simulator predicts the route.
    agent = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    watch_console(agent, problems)
    agent.goto(f"{running.http}/agent#token={token('amy', 'agent', NEW)}")
    admin.locator("#t-team").click()
    wait_until(lambda: running.api.get(f"/api/shops/{NEW}/agents").json()[0]["status"]
               == "online")
    admin.locator("#t-routing").click()
    admin.select_option("#s-page", "product")
    admin.fill("#s-text", "耳机坏了怎么办")
    admin.locator("#sim-form button[type=submit]").click()
    result = admin.locator("#sim-result")
    expect(result).to_contain_text("命中第 1 条规则")
    expect(result).to_contain_text("分配给 amy（按排序选出）")
    expect(result.locator("tr[data-agent='amy'][data-verdict='winner']")).to_be_visible()
    expect(admin.locator("#rules li.rule").first).to_have_class("rule fired")
    admin.screenshot(path=str(artifacts / "simulator.png"))

    # A real buyer with the same entry and words lands with that agent.
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={NEW}#token={token('b-7', 'buyer')}")
    expect(buyer.locator("#input")).to_be_enabled()
    buyer.fill("#input", "耳机坏了怎么办")
    buyer.keyboard.press("Enter")
    expect(agent.locator(".inbox-item")).to_have_count(1)
    conversations = running.api.get("/api/agents/amy").json()["conversations"]
    assert len(conversations) == 1
    trace = running.api.get(f"/api/conversations/{conversations[0]}/routing").json()
    assert trace["agent"] == "amy" and trace["traces"][-1]["group"] == "aftersale"
    assert trace["traces"][-1]["rules"] == ["keyword:坏了"]

    # Replay: the recorded decision beside today's.
    admin.fill("#rp-id", conversations[0])
    admin.locator("#replay-form button[type=submit]").click()
    expect(admin.locator("#replay-result")).to_contain_text("当时")
    expect(admin.locator("#replay-result")).to_contain_text("熟客上次的客服")

    # Service settings: an SLA policy, working hours, a notice switched off.
    admin.locator("#t-service").click()
    admin.fill("#po-id", "standard")
    admin.fill("#po-name", "标准")
    admin.get_by_label("高 首次回复").fill("30")
    admin.get_by_label("紧急 首次回复").fill("10")
    admin.locator("#po-when").get_by_label("高").check()
    admin.locator("#po-hours").check()
    admin.locator("#policy-form button[type=submit]").click()
    expect(admin.locator("#policies tr[data-policy='standard']")).to_contain_text("首次回复 30")
    admin.get_by_label("周一").fill("09:00-12:00, 13:30-18:00")
    admin.fill("#h-holidays", "2026-10-01")
    admin.locator("#hours-form button[type=submit]").click()
    expect(admin.locator("#h-status")).to_have_text("已保存")
    admin.locator("fieldset[data-notice='shipped'] .n-enabled").uncheck()
    admin.locator("#notices-form button[type=submit]").click()
    expect(admin.locator("#n-status")).to_have_text("已保存")
    [policy] = running.api.get("/api/sla-policies", params={"shop": NEW}).json()
    assert policy["conditions"]["priority"] == ["high"] and policy["business_hours"]
    assert policy["targets"] == {"high": {"first_reply": 30}, "urgent": {"first_reply": 10}}
    hours = running.api.get(f"/api/shops/{NEW}/business-hours").json()
    assert hours["weekly"] == {"mon": [["09:00", "12:00"], ["13:30", "18:00"]]}
    assert hours["holidays"] == ["2026-10-01"]
    assert running.api.get(f"/api/shops/{NEW}/notices").json()["types"]["shipped"][
        "enabled"] is False

    # Two admins edit the same settings: the second save is refused, not an overwrite.
    second = console(chromium, running, problems, user="boss2")
    second.locator("#t-routing").click()
    admin.locator("#t-routing").click()
    admin.select_option("#r-ranking", "longest_idle")
    admin.locator("#routing-form button[type=submit]").click()
    expect(admin.locator("#r-status")).to_have_text("已保存")
    second.fill("#r-sticky_days", "7")
    second.locator("#routing-form button[type=submit]").click()
    expect(second.locator("#r-status")).to_contain_text("其他管理员已修改")
    expect(second.locator("#r-sticky_days")).to_have_value("7")  # their edit is kept
    stored = running.api.get(f"/api/shops/{NEW}/config").json()["routing"]
    assert stored["ranking"] == "longest_idle" and stored["sticky_days"] == 3
    # … and leaving the page with that unsaved change asks first.
    with second.expect_event("dialog") as asked:
        second.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.dismiss()  # stay: the page and its edit are still there
    expect(second.locator("#r-sticky_days")).to_have_value("7")
    admin.locator("#lang").click()
    expect(admin.locator("#t-routing")).to_have_text("Routing")

    # The platform suspends the shop: no new conversations (the page asks first).
    platform.once("dialog", lambda dialog: dialog.accept())
    platform.reload()
    expect(platform.locator("#a-shop")).to_have_value(NEW)  # the platform's shops are listed
    platform.locator("#t-platform").click()
    platform.locator(f"#shops tr[data-shop='{NEW}'] button.suspend").click()
    expect(platform.locator(f"#shops tr[data-shop='{NEW}']")).to_contain_text("已暂停")
    assert running.api.get(f"/api/shops/{NEW}").json()["suspended"] is True
    assert not unexpected(problems, 412), problems


def test_kb_import_errors_proposals_and_another_shops_settings(
        chromium: Any, running: Running, artifacts: Path) -> None:
    seed(running)
    running.api.put("/api/kb/free", json={"shop": SHOP, "question": "包邮吗",
                                          "answer": "满99元包邮。"}).raise_for_status()
    problems: list[str] = []
    # A buyer's pick among the bot's choices becomes a proposal (the learning loop).
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    expect(buyer.locator("#input")).to_be_enabled()
    buyer.fill("#input", "拍了以后哪天到")
    buyer.keyboard.press("Enter")
    buyer.locator("#suggested button.chip", has_text="什么时候发货").click()
    expect(buyer.locator("li.msg[data-role='bot']").last).to_contain_text("付款后48小时内发货哦。")

    admin = console(chromium, running, problems, shops=(SHOP,), width=1024)
    admin.locator("#t-kb").click()
    admin.fill("#im-text", '{"question": "能开发票吗", "answer": "可以开电子发票。"}\n'
                           '{"question": "退货地址", "answer": ""}\nnot json')
    admin.locator("#import-form button[type=submit]").click()
    expect(admin.locator("#im-status")).to_contain_text("全部未导入")
    errors = admin.locator("#im-errors li")
    expect(errors).to_have_count(2)
    expect(errors.first).to_contain_text("第 2 行")
    expect(errors.first).to_contain_text("answer")
    expect(errors.last).to_contain_text("第 3 行")
    expect(admin.locator("#entries tr")).to_have_count(2)  # nothing was imported
    admin.fill("#im-text",
               '{"id": "invoice", "question": "能开发票吗", "answer": "可以开电子发票。"}')
    admin.locator("#import-form button[type=submit]").click()
    expect(admin.locator("#im-status")).to_have_text("已导入 1 条")
    expect(admin.locator("#entries tr[data-entry='invoice']")).to_be_visible()

    proposal = admin.locator("#proposals li.proposal")
    expect(proposal).to_contain_text("“拍了以后哪天到” 作为 “什么时候发货” 的相似问法")
    proposal.locator("button.approve").click()
    expect(admin.locator("#proposals li.proposal")).to_have_count(0)
    admin.locator("#t-bot").click()
    admin.fill("#try-q", "拍了以后哪天到")
    admin.locator("#try-form button[type=submit]").click()
    expect(admin.locator("#try-result")).to_contain_text("机器人回答：付款后48小时内发货哦。")
    expect(admin.locator("#try-result")).to_contain_text("置信度")
    admin.screenshot(path=str(artifacts / "try-the-bot.png"))

    # Shop A's admin: shop B is not in the page, and the server refuses it even when the
    # page is bypassed with the same token.
    expect(admin.locator("#a-shop option")).to_have_count(1)
    bearer = token("boss", "shop_admin", SHOP)
    statuses = admin.evaluate("""async (bearer) => {
        const headers = { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json",
                          "If-Match": '"1"' };
        const get = await fetch("/api/shops/shop-b/config", { headers });
        const patch = await fetch("/api/shops/shop-b/config", { method: "PATCH", headers,
            body: JSON.stringify({ routing: { ranking: "weighted" } }) });
        const agent = await fetch("/api/shops/shop-b/agents/a1", { method: "PUT", headers,
            body: JSON.stringify({ name: "x", shops: ["shop-b"] }) });
        return [get.status, patch.status, agent.status];
    }""", bearer)
    assert statuses == [404, 404, 404]
    assert "ranking" not in running.api.get("/api/shops/shop-b/config").json()["routing"]
    assert not unexpected(problems, 422, 404), problems


def test_the_platform_adds_a_webhook_sees_its_dead_letter_and_resends_it(
        chromium: Any, tmp_path: Path) -> None:
    """A real local receiver that refuses at first: the delivery dies after its attempts,
    the platform admin sees it in the console and resends it once the receiver works."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, Any]] = []
    working = threading.Event()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if working.is_set():
                received.append(json.loads(body))
            self.send_response(204 if working.is_set() else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    engine = Running(tmp_path / "data", OCTIM_WEBHOOK_ATTEMPTS="2",
                     OCTIM_WEBHOOK_BACKOFF="0.1")
    with engine.process:
        problems: list[str] = []
        page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
        watch_console(page, problems)
        page.goto(f"{engine.http}/admin#token={token('root', 'platform_admin')}")
        page.fill("#wh-id", "crm")
        page.fill("#wh-url", f"http://127.0.0.1:{server.server_address[1]}/hook")
        page.fill("#wh-events", "ticket.created")
        page.fill("#wh-secret", "s" * 20)
        page.locator("#hook-form button[type=submit]").click()
        expect(page.locator("#webhooks tr[data-hook='crm']")).to_contain_text("ticket.created")
        engine.api.put("/api/shops/s1", json={"name": "s1"}).raise_for_status()
        engine.api.post("/api/tickets", json={"shop": "s1", "subject": "丢件"}
                        ).raise_for_status()
        wait_until(lambda: engine.api.get("/api/webhooks/crm/dead").json() != [])
        page.locator("#webhooks tr[data-hook='crm'] button", has_text="发送失败的回复").click()
        letter = page.locator("#hook-dead li[data-delivery]")
        expect(letter).to_have_count(1)
        expect(letter).to_contain_text("ticket.created")
        working.set()
        letter.get_by_role("button", name="重新发送").click()
        wait_until(lambda: len(received) == 1)
        assert received[0]["event"] == "ticket.created"
        expect(page.locator("#hook-dead li[data-delivery]")).to_have_count(0)
        assert not problems, problems
        engine.api.close()
        assert engine.process.stop() == 0
    server.shutdown()
