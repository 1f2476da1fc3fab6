"""The web client end to end in a real browser against a real engine process.

A buyer on a phone-sized screen asks, the bot answers, the buyer asks for a
person; the agent sees the conversation under the right shop with the
customer's context, replies; the buyer sees it (read states both ways), and
rates once the agent resolves; the shop admin's live monitor counts all of it.
Screenshots go to ``test-artifacts/browser/<test>/``.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.sync_api import Page, expect

from octim.auth import issue_token
from octim.testing import token

from .conftest import Running

SHOP, OTHER = "shop-a", "shop-b"
DAY = 86_400_000


def seed(running: Running) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "always"}}
            ).raise_for_status()
    api.put(f"/api/shops/{OTHER}", json={"name": "测试数码店"}).raise_for_status()
    api.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP, OTHER],
                                    "max_concurrent": 3}).raise_for_status()
    api.put("/api/kb/ship", json={"shop": SHOP, "question": "什么时候发货",
                                  "similar": ["几天能发货", "多久发货"],
                                  "answer": "付款后48小时内发货哦。", "category": "物流"}
            ).raise_for_status()
    api.put("/api/customers/b1", json={"nickname": "阿宝", "level": 3, "region": "杭州"}
            ).raise_for_status()
    api.post("/api/orders/bulk", json=[
        {"id": "o-1", "shop": SHOP, "customer": "b1", "status": "shipped",
         "items": [{"sku": "sku-1", "name": "轻薄羽绒服", "price": 399}]},
        {"id": "o-9", "shop": OTHER, "customer": "b1", "status": "paid",
         "items": [{"sku": "sku-9", "name": "蓝牙耳机", "price": 199}]}]).raise_for_status()
    api.post("/api/orders/o-1/logistics", json={"events": [
        {"time": 1_790_000_000_000, "place": "上海转运中心", "status": "运输中"}]}
             ).raise_for_status()
    api.put("/api/canned/hello", json={"shop": SHOP, "title": "问候",
                                       "text": "亲，在的，请问有什么可以帮您？"}).raise_for_status()


def watch_console(page: Page, problems: list[str]) -> None:
    page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
    page.on("console", lambda m: problems.append(f"{page.url}: {m.text}")
            if m.type == "error" else None)


def test_buyer_bot_handoff_agent_reply_rating_and_monitor(
        chromium: Any, running: Running, artifacts: Path) -> None:
    seed(running)
    http = running.http
    problems: list[str] = []
    desk = chromium.new_context(viewport={"width": 1280, "height": 800})
    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                 has_touch=True)

    monitor = desk.new_page()
    watch_console(monitor, problems)
    monitor.goto(f"{http}/monitor#token={token('boss', 'shop_admin', SHOP)}")
    row = monitor.locator(f"tr[data-shop='{SHOP}']")
    expect(row.locator("td.opened")).to_have_text("0")
    expect(row.locator("td.online")).to_have_text("0")

    agent = desk.new_page()
    watch_console(agent, problems)
    agent.goto(f"{http}/agent#token={token('a1', 'agent', SHOP, OTHER)}")
    expect(agent.locator("#conn")).to_have_text("已连接")
    expect(row.locator("td.online")).to_have_text("1")  # the monitor saw the agent arrive

    buyer = phone.new_page()
    watch_console(buyer, problems)
    query = urlencode({"shop": SHOP, "product": "sku-1", "title": "轻薄羽绒服", "price": 399})
    buyer.goto(f"{http}/chat?{query}#token={token('b1', 'buyer')}")
    expect(buyer.locator("#shop-name")).to_have_text("测试服装店")
    expect(buyer.locator(".card-title")).to_have_text("轻薄羽绒服")  # the product card

    # The bot answers from the shop's knowledge base.
    buyer.fill("#input", "几天能发货")
    buyer.keyboard.press("Enter")
    expect(buyer.locator("li.msg[data-role='bot'] .bubble")).to_contain_text("48小时内发货")
    buyer.screenshot(path=artifacts / "1-buyer-bot-answer.png")

    # 转人工: the conversation goes to the online agent.
    buyer.get_by_role("button", name="转人工").click()
    # (The seeded tracking step came first, as a notice: docs/outreach.md.)
    expect(buyer.locator("li.msg[data-role='system'] .order-notice")).to_contain_text("物流更新")
    expect(buyer.locator("li.msg[data-role='system']").filter(has_text="转接")).to_contain_text(
        "转接人工客服")
    item = agent.locator(".inbox-item")
    expect(item).to_have_count(1)
    expect(item.locator(".shop-label")).to_have_text("测试服装店")
    expect(item.locator(".buyer")).to_have_text("阿宝")
    expect(item.locator(".vip")).to_have_text("VIP3")
    expect(item.locator(".badge")).to_be_visible()  # unread
    expect(row.locator("td.active")).to_have_text("1")

    item.click()
    expect(item.locator(".badge")).to_have_count(0)
    expect(agent.locator("#chat-title")).to_have_text("阿宝")
    expect(agent.locator("#messages")).to_contain_text("几天能发货")
    expect(agent.locator("#messages")).to_contain_text("48小时内发货")  # the bot's part
    expect(agent.locator("#messages .notice")).to_contain_text("转人工")
    panel = agent.locator("#customer-body")
    expect(panel.locator("h3")).to_have_text("阿宝")
    expect(panel.locator("li.order[data-order='o-1']")).to_contain_text("轻薄羽绒服")
    expect(panel).to_contain_text("上海转运中心")
    expect(panel).not_to_contain_text("蓝牙耳机")  # the other shop's order stays private
    # One order paid with this shop, today: a new customer (客户阶段 新客).
    expect(panel.locator(".lifecycle[data-stage='new']")).to_contain_text("新客")
    expect(panel.locator(".lifecycle")).to_contain_text("已付款 1 单 · ¥399.00")
    agent.screenshot(path=artifacts / "2-agent-inbox-and-context.png")

    # A canned reply, then Shift+Enter makes a new line and Enter sends.
    agent.get_by_role("button", name="快捷回复").click()
    agent.locator("#canned-list").get_by_role("button", name=re.compile("问候")).click()
    expect(agent.locator("#input")).to_have_value("亲，在的，请问有什么可以帮您？")
    agent.keyboard.press("Enter")
    agent.locator("#input").fill("羽绒服已经发货了")
    agent.locator("#input").press("Shift+Enter")
    agent.locator("#input").press_sequentially("在上海转运中心")
    expect(agent.locator("#input")).to_have_value("羽绒服已经发货了\n在上海转运中心")
    agent.keyboard.press("Enter")
    expect(agent.locator("#input")).to_have_value("")

    theirs = buyer.locator("li.msg[data-role='agent'] .bubble")
    expect(theirs).to_have_count(2)
    expect(theirs.nth(1)).to_have_text("羽绒服已经发货了\n在上海转运中心")
    expect(buyer.locator("li.msg[data-role='agent'] .meta").first).to_contain_text("客服小美")
    # The buyer's screen is open, so it reads; the agent sees 已读 on both replies.
    expect(agent.locator("li.msg.mine .status").last).to_have_text("已读")
    buyer.screenshot(path=artifacts / "3-buyer-sees-reply.png")

    # A reload resumes the same conversation.
    buyer.reload()
    expect(buyer.locator("li.msg[data-role='agent'] .bubble")).to_have_count(2)

    # The agent resolves; the buyer rates 5 stars with a comment.
    agent.once("dialog", lambda dialog: dialog.accept())
    agent.get_by_role("button", name="结束会话").click()
    expect(buyer.locator("#rating")).to_be_visible()
    buyer.get_by_role("radio", name="5 星").click()
    buyer.fill("#rating-comment", "回复很快")
    buyer.get_by_role("button", name="提交评价").click()
    expect(buyer.locator("#rated")).to_be_visible()
    buyer.screenshot(path=artifacts / "4-buyer-rated.png")

    # The monitor counted the day: one conversation, a first response, a 5-star rating.
    expect(row.locator("td.opened")).to_have_text("1")
    expect(row.locator("td.active")).to_have_text("0")
    expect(row.locator("td.csat")).to_have_text("5.00 (1)")
    expect(row.locator("td.conversion")).to_have_text("0.0%")  # asked, paid nothing yet
    expect(row.locator("td.frt")).to_have_text(re.compile(r"\d+秒"))
    expect(monitor.locator("#total-csat")).to_contain_text("5.00")
    expect(monitor.locator("#channel-rows tr[data-channel='web'] td")).to_have_text("1")
    monitor.screenshot(path=artifacts / "5-monitor.png")

    # English is one click away.
    monitor.get_by_role("button", name="English").click()
    expect(monitor.locator(".brand")).to_have_text("Live monitor")
    assert problems == []
    desk.close()
    phone.close()


def test_workbench_sign_in_screen_and_bad_token(chromium: Any, running: Running,
                                                artifacts: Path) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{running.http}/agent")
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#token-input", token("b1", "buyer"))
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_have_text("这不是客服或店铺管理员的令牌。")
    page.fill("#token-input", "not.a.token")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_contain_text("令牌")
    forged = issue_token("another-secret-that-is-long-enough-for-hs256!", "a1", "agent",
                         shops=(SHOP,))
    page.fill("#token-input", forged)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#signin-error")).to_have_text("令牌无效或已过期，请重新登录。")
    page.screenshot(path=artifacts / "signin.png")
    page.close()


# A 1×1 PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e0d7c8a1"
                    "0000000049454e44ae426082")


def test_agent_tools_image_recall_suggestions_tags_cards_transfer(
        chromium: Any, running: Running, artifacts: Path) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    for agent_id, name in (("a1", "小美"), ("a2", "小王")):
        api.put(f"/api/agents/{agent_id}", json={"name": name, "shops": [SHOP],
                                                 "max_concurrent": 3}).raise_for_status()
    api.put("/api/kb/size", json={"shop": SHOP, "question": "怎么选尺码",
                                  "similar": ["穿多大码合适"],
                                  "answer": "身高175体重70公斤选L码。", "category": "商品"}
            ).raise_for_status()
    api.put("/api/orders/o-1", json={"shop": SHOP, "customer": "b1", "status": "paid",
                                     "items": [{"sku": "sku-1", "name": "轻薄羽绒服",
                                                "price": 399}]}).raise_for_status()
    problems: list[str] = []
    desk = chromium.new_context(viewport={"width": 1280, "height": 800})
    a1 = desk.new_page()
    watch_console(a1, problems)
    a1.goto(f"{running.http}/agent#token={token('a1', 'agent', SHOP)}")
    expect(a1.locator("#conn")).to_have_text("已连接")
    buyer = desk.new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    buyer.fill("#input", "你好")
    buyer.keyboard.press("Enter")
    a1.locator(".inbox-item").click()
    expect(a1.locator("#messages")).to_contain_text("你好")

    # Typing shows on the agent's side.
    buyer.locator("#input").press_sequentially("请问")
    expect(a1.locator("#typing")).to_be_visible()

    # KB suggestions for the buyer's question; one click puts the answer in the input.
    buyer.fill("#input", "穿多大码合适")
    buyer.keyboard.press("Enter")
    chip = a1.locator("#suggestion-list .chip")
    expect(chip).to_have_text("怎么选尺码")
    chip.click()
    expect(a1.locator("#input")).to_have_value("身高175体重70公斤选L码。")
    a1.keyboard.press("Enter")
    expect(buyer.locator("li.msg[data-role='agent']")).to_contain_text("选L码")

    # An image: uploaded over HTTP, sent, shown to the buyer.
    a1.set_input_files("#image-input", files=[{"name": "x.png", "mimeType": "image/png",
                                                "buffer": PNG}])
    image = buyer.locator("li.msg[data-role='agent'] img.photo")
    expect(image).to_have_attribute("src", re.compile("^blob:"))
    expect(image).to_have_js_property("naturalWidth", 1)  # decoded: the real 1×1 PNG

    # An order card from the customer panel.
    a1.locator("li.order[data-order='o-1']").get_by_role("button", name="发送订单卡片").click()
    expect(buyer.locator(".card[data-kind='order']")).to_contain_text("o-1")

    # Recall: the buyer sees the tombstone.
    a1.fill("#input", "发错了")
    a1.keyboard.press("Enter")
    expect(buyer.locator("li.msg[data-role='agent']").last).to_contain_text("发错了")
    a1.locator("li.msg.mine").last.get_by_role("button", name="撤回").click()
    expect(buyer.locator("li.msg[data-role='agent']").last).to_contain_text("消息已撤回")

    # Tags and notes (shop-private), and the inbox filter by tag.
    panel = a1.locator("#customer-body")
    panel.get_by_placeholder("添加标签").fill("老客")
    panel.get_by_placeholder("添加标签").press("Enter")
    expect(panel.locator(".tag")).to_contain_text("老客")
    panel.get_by_placeholder("添加备注").fill("喜欢深色")
    panel.get_by_placeholder("添加备注").press("Enter")
    expect(panel.locator("section.notes")).to_contain_text("喜欢深色")
    expect(panel).not_to_contain_text("null")
    expect(a1.locator(".inbox-item .tag")).to_have_text("老客")
    a1.select_option("#filter-tag", "老客")
    expect(a1.locator(".inbox-item")).to_have_count(1)

    # A personal canned reply.
    a1.get_by_role("button", name="快捷回复").click()
    a1.locator("#canned-panel summary").click()
    a1.fill("#canned-title", "稍等")
    a1.fill("#canned-text", "亲，请稍等一下哦")
    a1.get_by_role("button", name="保存").click()
    expect(a1.locator("#canned-list")).to_contain_text("稍等")
    a1.screenshot(path=artifacts / "1-agent-tools.png")

    # One click makes a ticket of this chat (the buyer, the shop and the chat linked).
    a1.get_by_role("button", name="建工单").click()
    a1.fill("#ticket-subject", "尺码不合适要换货")
    a1.select_option("#ticket-priority", "high")
    a1.fill("#ticket-category", "售后")
    a1.locator("#ticket-form").get_by_role("button", name="建工单").click()
    expect(a1.locator("#toast")).to_contain_text("已创建工单 T-1")
    [made] = api.get("/api/tickets", params={"shop": SHOP}).json()
    assert (made["subject"], made["priority"], made["category"], made["requester"]) == (
        "尺码不合适要换货", "high", "售后", "b1")
    assert made["source"]["kind"] == "chat" and made["source"]["conversation"]
    assert made["source"]["seq_to"] >= 2
    # The buyer sees it under 我的工单 with the public reply (not the internal note), and
    # answers there.
    api.post(f"/api/tickets/{made['id']}/comments", json={"body": "仓库核实中",
                                                          "public": False}).raise_for_status()
    api.post(f"/api/tickets/{made['id']}/comments", json={"body": "已安排换货",
                                                          "public": True}).raise_for_status()
    buyer.get_by_role("button", name="我的工单").click()
    entry = buyer.locator("li.ticket")
    expect(entry).to_contain_text("T-1")
    expect(entry).to_contain_text("尺码不合适要换货")
    expect(entry).to_contain_text("处理中")  # a staff public reply opened it
    entry.locator(".ticket-head").click()
    expect(entry.locator(".ticket-thread")).to_contain_text("已安排换货")
    expect(entry.locator(".ticket-thread")).not_to_contain_text("仓库核实中")
    entry.locator("textarea").fill("好的，谢谢")
    entry.get_by_role("button", name="回复").click()
    expect(buyer.locator("li.ticket .ticket-thread")).to_contain_text("好的，谢谢")
    thread = api.get(f"/api/tickets/{made['id']}").json()["thread"]
    assert [(e["role"], e["body"]) for e in thread][-1] == ("buyer", "好的，谢谢")
    buyer.get_by_role("button", name="我的工单").click()  # closes the panel again

    # Transfer to a colleague, with a note.
    a2 = desk.new_page()
    watch_console(a2, problems)
    a2.goto(f"{running.http}/agent#token={token('a2', 'agent', SHOP)}")
    expect(a2.locator("#conn")).to_have_text("已连接")
    a1.get_by_role("button", name="转接").click()
    a1.select_option("#transfer-target", "a2")
    a1.fill("#transfer-note", "尺码问题请跟进")
    a1.locator("#transfer-form").get_by_role("button", name="转接").click()
    expect(a2.locator(".inbox-item")).to_have_count(1)
    a2.locator(".inbox-item").click()
    expect(a2.locator("#messages")).to_contain_text("尺码问题请跟进")
    a1.select_option("#filter-tag", "")
    expect(a1.locator(".inbox-item")).to_have_count(0)  # no longer in a1's open list
    a2.screenshot(path=artifacts / "2-after-transfer.png")
    assert problems == []
    desk.close()


def test_storefront_embed_opens_the_chat_with_the_product_card(
        chromium: Any, running: Running, artifacts: Path, tmp_path: Path) -> None:
    running.api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店"}).raise_for_status()
    # The storefront is another origin: a page served by a plain HTTP server.
    site = tmp_path / "storefront"
    site.mkdir()
    (site / "index.html").write_text(f"""<!doctype html><meta charset="utf-8">
        <h1>轻薄羽绒服</h1>
        <script src="{running.http}/widget.js" data-shop="{SHOP}" data-product="sku-1"
                data-title="轻薄羽绒服" data-price="399"
                data-token="{token('b1', 'buyer')}"></script>""", encoding="utf-8")
    handler = partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    storefront = chromium.new_page(viewport={"width": 1280, "height": 800})
    storefront.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
    storefront.get_by_role("button", name="联系客服").click()
    chat = storefront.frame_locator("iframe")
    expect(chat.locator("#shop-name")).to_have_text("测试服装店")
    expect(chat.locator(".card-title")).to_have_text("轻薄羽绒服")
    chat.locator("#input").fill("有L码吗")
    chat.locator("#input").press("Enter")
    expect(chat.locator("li.msg[data-role='buyer'] .status").last).to_have_text("已送达")
    # Nobody of the shop is online: the bot answers, and 转人工 leaves a message in line.
    expect(chat.locator("li.msg[data-role='bot']")).to_have_count(1)
    chat.get_by_role("button", name="转人工").click()
    expect(chat.locator("#queue")).to_contain_text("留言")
    storefront.screenshot(path=artifacts / "storefront.png")
    storefront.set_viewport_size({"width": 390, "height": 844})  # a phone: full screen
    expect(storefront.locator("iframe")).to_have_css("width", "390px")
    storefront.close()
    server.shutdown()


def test_ticket_queue_two_agents_notes_mention_merge_and_a_real_sla_breach(
        chromium: Any, running: Running, artifacts: Path) -> None:
    """Two agents work a ticket in the workbench's ticket desk: the queue shows its SLA
    countdown moving; an internal note @mentions the colleague, who hears of it; the
    ticket is handed over, put on hold, and its first-reply target (one minute, real
    time) breaches on the engine's timer while both watch; a public reply reaches the
    buyer's view; a duplicate is merged; the history keeps every change."""
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    api.put(f"/api/shops/{SHOP}/groups/after", json={"name": "售后组"}).raise_for_status()
    for agent_id, name in (("a1", "小美"), ("a2", "小王")):
        api.put(f"/api/agents/{agent_id}", json={"name": name, "shops": [SHOP],
                                                 "groups": ["after"]}).raise_for_status()
    api.put("/api/sla-policies/std", json={
        "shop": SHOP, "name": "标准", "targets": {"normal": {"first_reply": 1,
                                                            "resolution": 600}}}
            ).raise_for_status()
    api.put(f"/api/shops/{SHOP}/ticket-settings", json={
        "fields": [{"key": "waybill", "label": "运单号", "type": "text"}],
        "statuses": [{"key": "warehouse", "label": "待仓库核实", "buyer_label": "仓库核实中",
                      "maps_to": "on_hold"}]}).raise_for_status()
    lost = api.post("/api/tickets", json={
        "shop": SHOP, "subject": "包裹丢失", "requester": "b1", "assignee": "a1",
        "order": "o-1"}).json()
    dup = api.post("/api/tickets", json={
        "shop": SHOP, "subject": "包裹还没到（重复）", "requester": "b1", "priority": "low"}
                   ).json()
    problems: list[str] = []
    pages = []
    for agent_id in ("a1", "a2"):
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        watch_console(page, problems)
        page.goto(f"{running.http}/agent#token={token(agent_id, 'agent', SHOP)}")
        expect(page.locator("#conn")).to_have_text("已连接")
        page.locator("#tab-tickets").click()
        pages.append(page)
    a1, a2 = pages

    # a1's queue ("mine"): T-1 with its first-reply countdown, which moves by itself.
    item = a1.locator(f"#ticket-list [data-ticket='{lost['id']}']")
    clock = item.locator(".sla-clock")
    expect(clock).to_have_attribute("data-state", "running")
    expect(clock).to_contain_text("首次响应 剩余 00:")
    shown = clock.inner_text()
    expect(clock).not_to_have_text(shown)
    expect(a1.locator(f"#ticket-list [data-ticket='{dup['id']}']")).to_have_count(0)

    # An internal note with an @mention: a2 is told at once.
    item.click()
    expect(a1.locator("#tv-title")).to_have_text("T-1 包裹丢失")
    a1.fill("#tv-input", "@小王 麻烦帮忙查一下物流")
    a1.keyboard.press("Enter")
    expect(a1.locator("#tv-thread li.internal")).to_contain_text("麻烦帮忙查一下物流")
    expect(a2.locator("#toast")).to_contain_text("a1 在 T-1 中提到了你")

    # a1 hands it to a2, who is told and finds it in their own queue.
    a1.select_option("#ts-assignee", "a2")
    a1.locator("#ts-save").click()
    expect(a2.locator("#toast")).to_contain_text("a1 把工单 T-1 分配给了你")
    a2_item = a2.locator(f"#ticket-list [data-ticket='{lost['id']}']")
    a2_item.click()
    expect(a2.locator("#tv-thread")).to_contain_text("麻烦帮忙查一下物流")
    # The shop's own status name (mapped onto on_hold) and its custom field. While a2
    # edits, a1 adds a note: a2's view shows it live and keeps a2's unsaved edits.
    a2.select_option("#ts-status", "custom:warehouse")
    a2.locator("#ts-custom [data-field='waybill']").fill("SF1234567")
    a2.fill("#ts-tags", "丢件")
    a1.fill("#tv-input", "仓库说今天查")
    a1.keyboard.press("Enter")
    expect(a2.locator("#tv-thread")).to_contain_text("仓库说今天查")
    expect(a2.locator("#ts-status")).to_have_value("custom:warehouse")
    expect(a2.locator("#ts-tags")).to_have_value("丢件")
    a2.locator("#ts-save").click()
    expect(a2.locator("#tv-sub")).to_contain_text("等待第三方")
    expect(a2.locator("#ts-status")).to_have_value("custom:warehouse")
    expect(a2.locator("#ts-custom [data-field='waybill']")).to_have_value("SF1234567")

    # Nobody replied to the buyer within the minute: the breach comes on its timer, to
    # the assignee's workbench, and the queue shows it late.
    expect(a2.locator("#toast")).to_contain_text("T-1 的首次响应已超时", timeout=90_000)
    expect(a2.locator("#tv-sla .sla-clock[data-metric='first_reply']")).to_have_attribute(
        "data-state", "late")
    expect(a2_item.locator(".sla-clock")).to_have_attribute("data-state", "late")
    a2.screenshot(path=str(artifacts / "ticket-breached.png"))

    # A public reply: the buyer sees it, never the internal note.
    a2.check("#tv-public")
    a2.fill("#tv-input", "已联系快递，明天给您答复")
    a2.locator("#tv-send").click()
    expect(a2.locator("#tv-thread li.public")).to_contain_text("已联系快递")
    buyer_view = httpx.get(f"{running.http}/api/tickets/{lost['id']}",
                           headers={"Authorization": f"Bearer {token('b1')}"}).json()
    assert [e["body"] for e in buyer_view["thread"]] == ["已联系快递，明天给您答复"]
    assert buyer_view["status_label"] == "仓库核实中"

    # a1 merges the duplicate into T-1 (the same buyer's open tickets are offered).
    a1.select_option("#tq-who", "")
    a1.locator(f"#ticket-list [data-ticket='{dup['id']}']").click()
    expect(a1.locator("#tv-title")).to_contain_text("T-2")
    a1.locator("#tv-merge").click()
    a1.select_option("#merge-into", lost["id"])
    a1.locator("#merge-form").get_by_role("button", name="合并").click()
    expect(a1.locator("#tv-sub")).to_contain_text("已关闭")
    expect(a1.locator("#ts-history")).to_contain_text("合并到")

    a2.select_option("#ts-status", "solved")
    a2.locator("#ts-save").click()
    expect(a2.locator("#tv-sub")).to_contain_text("已解决")
    history = api.get(f"/api/tickets/{lost['id']}/history").json()
    changes = [(h["by"], h["field"], h["after"]) for h in history]
    for change in (("a1", "assignee", "a2"), ("a2", "status", "on_hold"),
                   ("a2", "tags", ["丢件"]), ("system", "sla_breached", "first_reply"),
                   ("a2", "status", "solved")):
        assert change in changes, changes
    expect(a2.locator("#ts-history li[data-field='sla_breached']")).to_have_count(1)
    a1.screenshot(path=str(artifacts / "ticket-merged.png"))
    assert not problems, problems


def test_nobody_online_the_buyer_leaves_a_message_that_becomes_a_ticket(
        chromium: Any, running: Running, artifacts: Path) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    problems: list[str] = []
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    buyer.fill("#input", "有人在吗")
    buyer.keyboard.press("Enter")
    expect(buyer.locator("#queue")).to_contain_text("您可以留言")
    expect(buyer.locator("#leave")).to_be_visible()
    buyer.fill("#leave-text", "想换成M码，麻烦上线后联系我")
    buyer.locator("#leave-send").click()
    expect(buyer.locator("#toast")).to_contain_text("已登记为工单 T-1")
    expect(buyer.locator("li.msg[data-role='bot']")).to_contain_text("工单号 T-1")
    expect(buyer.locator("#leave")).to_be_hidden()
    buyer.locator("#tickets-open").click()
    expect(buyer.locator("li.ticket")).to_contain_text("想换成M码")
    [made] = api.get("/api/tickets", params={"shop": SHOP}).json()
    assert made["source"]["kind"] == "bot" and made["requester"] == "b1"
    assert made["description"] == "想换成M码，麻烦上线后联系我"
    buyer.screenshot(path=str(artifacts / "left-a-message.png"))
    assert not problems, problems


def test_a_call_pops_up_the_caller_in_the_workbench_and_becomes_a_ticket(
        chromium: Any, running: Running, artifacts: Path) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    api.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]}).raise_for_status()
    api.put("/api/customers/b1", json={"nickname": "阿宝", "level": 3,
                                       "phone": "+8613800001111"}).raise_for_status()
    earlier = api.post("/api/tickets", json={"shop": SHOP, "subject": "上次的退款",
                                             "requester": "b1"}).json()
    problems: list[str] = []
    a1 = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    watch_console(a1, problems)
    a1.goto(f"{running.http}/agent#token={token('a1', 'agent', SHOP)}")
    expect(a1.locator("#conn")).to_have_text("已连接")
    api.post("/api/inbound/call", json={"shop": SHOP, "call": "c-77",
                                        "phone": "+8613800001111", "agent": "a1"}
             ).raise_for_status()
    dialog = a1.locator("#call-dialog")
    expect(dialog).to_be_visible()
    expect(a1.locator("#call-who")).to_contain_text("阿宝")
    expect(a1.locator("#call-who")).to_contain_text("VIP3")
    expect(a1.locator("#call-tickets")).to_contain_text("T-1 上次的退款")
    a1.screenshot(path=str(artifacts / "call-popup.png"))
    a1.fill("#call-subject", "来电询问换货")
    a1.locator("#call-ticket").click()
    expect(a1.locator("#tv-title")).to_have_text("T-2 来电询问换货")
    expect(a1.locator("#tv-sub")).to_contain_text("电话")
    # The buyer asks for the platform to step in (平台介入).
    a1.once("dialog", lambda dialog: dialog.accept("买家要求平台仲裁"))
    a1.locator("#tv-escalate").click()
    expect(a1.locator("#toast")).to_contain_text("已提交平台介入")
    expect(a1.locator("#tv-sub")).to_contain_text("等待第三方")
    expect(a1.locator("#ts-history")).to_contain_text("平台介入")
    made = [t for t in api.get("/api/tickets", params={"shop": SHOP}).json()
            if t["id"] != earlier["id"]]
    assert [(t["source"]["kind"], t["requester"]) for t in made] == [("phone", "b1")]
    [platform] = api.get("/api/tickets", params={"shop": "*"}).json()
    assert platform["escalated_from"] == made[0]["id"]
    assert "买家要求平台仲裁" in platform["description"]
    assert not problems, problems


def test_a_private_note_mentions_a_colleague_who_is_invited_to_assist(
        chromium: Any, running: Running, artifacts: Path) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    for agent_id, name in (("a1", "小美"), ("a2", "小王")):
        api.put(f"/api/agents/{agent_id}", json={"name": name, "shops": [SHOP],
                                                 "max_concurrent": 3}).raise_for_status()
    problems: list[str] = []
    pages = {}
    for agent_id in ("a1", "a2"):
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        watch_console(page, problems)
        page.goto(f"{running.http}/agent#token={token(agent_id, 'agent', SHOP)}")
        expect(page.locator("#conn")).to_have_text("已连接")
        pages[agent_id] = page
    a2 = pages["a2"]
    a2.select_option("#presence", "busy")  # so the chat goes to a1
    a1 = pages["a1"]
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    buyer.fill("#input", "衣服有破洞")
    buyer.keyboard.press("Enter")
    a1.locator(".inbox-item").click()
    expect(a1.locator("#messages")).to_contain_text("衣服有破洞")

    a1.check("#note-mode")
    a1.fill("#input", "@小王 这个客户上次也反馈过质量问题")
    a1.keyboard.press("Enter")
    expect(a1.locator("#messages li.internal")).to_contain_text("上次也反馈过")
    expect(a2.locator("#toast")).to_contain_text("a1 在会话中提到了你")

    a1.locator("#invite-open").click()
    a1.select_option("#invite-agent", "a2")
    a1.locator("#invite-form").get_by_role("button", name="邀请协助").click()
    expect(a2.locator("#toast")).to_contain_text("a1 邀请你协助一个会话")
    a2.locator(".inbox-item").click()
    expect(a2.locator("#messages li.internal")).to_contain_text("上次也反馈过")
    a2.fill("#input", "您好，我是质检的小王，请发一张照片")
    a2.keyboard.press("Enter")
    expect(buyer.locator("li.msg[data-role='agent']")).to_contain_text("请发一张照片")
    expect(buyer.locator("#messages")).not_to_contain_text("上次也反馈过")
    buyer.reload()  # the buyer's sync leaves the note out too
    expect(buyer.locator("li.msg[data-role='agent']")).to_contain_text("请发一张照片")
    expect(buyer.locator("#messages")).not_to_contain_text("上次也反馈过")
    a1.screenshot(path=str(artifacts / "private-note.png"))
    assert not problems, problems


def test_bulk_changes_to_ticked_tickets_in_the_queue(
        chromium: Any, running: Running, artifacts: Path) -> None:
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店"}).raise_for_status()
    for agent_id, name in (("a1", "小美"), ("a2", "小王")):
        api.put(f"/api/agents/{agent_id}", json={"name": name, "shops": [SHOP]}
                ).raise_for_status()
    made = [api.post("/api/tickets", json={"shop": SHOP, "subject": f"批量{n}",
                                           "requester": "b1"}).json() for n in range(3)]
    problems: list[str] = []
    a1 = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    watch_console(a1, problems)
    a1.goto(f"{running.http}/agent#token={token('a1', 'agent', SHOP)}")
    a1.locator("#tab-tickets").click()
    a1.select_option("#tq-who", "")
    for ticket in made[:2]:
        a1.locator(f"[data-ticket='{ticket['id']}'] input.pick").check()
    expect(a1.locator("#tq-selected")).to_have_text("已选 2 个")
    a1.select_option("#tq-bulk-status", "pending")
    a1.select_option("#tq-bulk-assignee", "a2")
    a1.locator("#tq-bulk-apply").click()
    expect(a1.locator("#toast")).to_contain_text("已更新 2 个工单，0 个未能更新")
    expect(a1.locator("#tq-bulk")).to_be_hidden()
    after = {t["id"]: t for t in api.get("/api/tickets", params={"shop": SHOP}).json()}
    assert [(after[t["id"]]["status"], after[t["id"]]["assignee"]) for t in made] == [
        ("pending", "a2"), ("pending", "a2"), ("new", None)]
    assert not problems, problems


def test_the_reports_page_shows_the_figures_a_chart_the_ranking_and_exports_csv(
        chromium: Any, running: Running, artifacts: Path, tmp_path: Path) -> None:
    import trio

    from octim.testing.client import connect

    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
            ).raise_for_status()
    api.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]}).raise_for_status()

    async def a_served_and_rated_chat() -> None:
        with trio.fail_after(20):
            async with connect(running.ws, token("a1", "agent", SHOP)) as agent, \
                    connect(running.ws, token("b1")) as buyer:
                conv = (await buyer.open(SHOP, channel="app", page="product"))[
                    "conversation"]
                await buyer.say(conv, "1", "在吗")
                await agent.expect("event", event="assigned", conversation=conv)
                await agent.say(conv, "2", "在的")
                await agent.request({"type": "resolve", "conversation": conv, "ref": "r"},
                                    "event", event="resolved")
                await buyer.send({"type": "rate", "conversation": conv, "score": 5})
                await buyer.expect("event", event="rated")

    trio.run(a_served_and_rated_chat)
    api.put("/api/orders/o-1", json={"shop": SHOP, "customer": "b1", "status": "paid",
                                     "items": [{"sku": "k1", "name": "羽绒服", "price": 399}]}
            ).raise_for_status()  # the buyer pays after asking: a conversion, a new buyer
    problems: list[str] = []
    page = chromium.new_context(viewport={"width": 1280, "height": 900},
                                accept_downloads=True).new_page()
    watch_console(page, problems)
    page.goto(f"{running.http}/reports#token={token('boss', 'shop_admin', SHOP)}")
    expect(page.locator("[data-kpi='conversations'] strong")).to_have_text("1")
    expect(page.locator("[data-kpi='satisfaction'] strong")).to_have_text("100.0%")
    expect(page.locator("[data-kpi='resp_fast'] strong")).to_have_text("100.0%")
    expect(page.locator("#ranking-rows tr[data-agent='a1']")).to_contain_text("小美")
    expect(page.locator("#hot-box")).to_be_visible()  # nothing unanswered, no complaints
    expect(page.locator("#complaint-rows")).to_have_text("无")
    drawn = page.evaluate("() => Chart.getChart(document.getElementById('trend')) !== undefined")
    assert drawn
    # The funnel, the channel and entry breakdowns, the lifecycle.
    expect(page.locator("#funnel-steps [data-step='converted'] strong")).to_have_text("1")
    expect(page.locator("#funnel-steps [data-step='inquiries'] strong")).to_have_text("1")
    assert page.evaluate("() => Chart.getChart(document.getElementById('funnel')) !== undefined")
    expect(page.locator("#channel-rows tr[data-value='app']")).to_contain_text("App")
    expect(page.locator("#channel-rows tr[data-value='app'] td").nth(1)).to_have_text("1")
    expect(page.locator("#entry-rows tr[data-value='product']")).to_contain_text("商品页")
    expect(page.locator("#lifecycle-rows tr[data-stage='new'] td").nth(1)).to_have_text("1")
    expect(page.locator("[data-kpi='conversion_rate'] strong")).to_have_text("100.0%")
    page.screenshot(path=str(artifacts / "reports.png"))
    with page.expect_download() as downloading:
        page.locator("#r-csv").click()
    saved = tmp_path / "overview.csv"
    downloading.value.save_as(saved)
    content = saved.read_bytes()
    assert content.startswith("\ufeff".encode())
    header, *rows = content.decode("utf-8-sig").splitlines()
    assert header.startswith("period,conversations") and rows
    page.locator("#lang").click()
    expect(page.locator("[data-kpi='conversations'] .stat-label")).to_have_text("Conversations")
    assert not problems, problems


def test_a_wechat_message_reaches_the_workbench_and_the_reply_reaches_wechat(
        chromium: Any, running: Running, artifacts: Path) -> None:
    """The channels issue's done-when: a message from the (fake) WeChat reaches the agent
    in the workbench, the agent's reply reaches the fake WeChat, and the same buyer's web
    chat shows in the same history."""
    import trio

    from octim.channels.wechat import WeChatConfig, serve
    from octim.channels.wechat_fake import FakeWeChat
    from octim.config import HostPort

    fake = FakeWeChat().start()
    secret = "browser-wechat-secret-0123"
    config = WeChatConfig(token=fake.token, appid=fake.appid, appsecret=fake.appsecret,
                          octim=running.http, channel="wx", channel_secret=secret,
                          api_base=fake.url)
    bound: list[HostPort] = []
    stop = threading.Event()

    async def adapter() -> None:
        async with trio.open_nursery() as nursery:
            bound.append(await nursery.start(serve, config, HostPort("127.0.0.1", 0)))
            while not stop.is_set():
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(adapter,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: bool(bound))
        adapter_url = f"http://127.0.0.1:{bound[0].port}"
        api = running.api
        api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
                ).raise_for_status()
        api.put("/api/agents/a1", json={"name": "小美", "shops": [SHOP]}).raise_for_status()
        api.put("/api/customers/b1", json={"nickname": "阿宝"}).raise_for_status()
        api.put("/api/orders/o-1", json={"shop": SHOP, "customer": "b1", "status": "paid",
                                         "items": [{"sku": "sku-1", "name": "轻薄羽绒服",
                                                    "price": 399}]}).raise_for_status()
        api.put("/api/channels/wx", json={
            "shop": SHOP, "type": "api", "platform": "wechat", "name": "微信公众号",
            "secret": secret, "outbound_url": f"{adapter_url}/outbound"}).raise_for_status()
        # The platform knows b1's openid on this account: one buyer on both channels.
        api.put("/api/customers/b1/identities", json={"identities": [
            {"type": "channel", "channel": "wx", "value": "o-abao"}]}).raise_for_status()
        problems: list[str] = []
        desk = chromium.new_context(viewport={"width": 1280, "height": 800})
        agent = desk.new_page()
        watch_console(agent, problems)
        agent.goto(f"{running.http}/agent#token={token('a1', 'agent', SHOP)}")
        expect(agent.locator("#conn")).to_have_text("已连接")
        buyer = desk.new_page()
        watch_console(buyer, problems)
        buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
        buyer.fill("#input", "网页上问：羽绒服有货吗")
        buyer.keyboard.press("Enter")
        item = agent.locator(".inbox-item")
        item.click()
        expect(agent.locator("#messages")).to_contain_text("网页上问：羽绒服有货吗")
        expect(item.locator(".channel-label")).to_have_text("🌐 网页")
        # The same buyer writes on WeChat: it joins the same conversation, marked.
        pushed = fake.push(f"{adapter_url}/wechat", "o-abao", Content="微信上再问一次",
                           msg_id=7_000_000_001)
        assert pushed.text == "success", pushed.text
        wechat_line = agent.locator("li.msg[data-role='buyer']").filter(has_text="微信上再问一次")
        expect(wechat_line.locator(".via")).to_have_text(" · 微信公众号")
        expect(agent.locator("li.msg[data-role='buyer']").filter(
            has_text="网页上问").locator(".via")).to_have_text(" · 网页")
        expect(item.locator(".channel-label")).to_have_text("💬 微信公众号")
        expect(agent.locator("#chat-sub")).to_contain_text("回复将发到：微信公众号")
        expect(agent.locator(".inbox-item")).to_have_count(1)  # one conversation, one history
        # The agent answers in the workbench: the reply reaches WeChat, and the adapter's
        # receipt shows under it.
        agent.fill("#input", "有货的，今天下单明天发")
        agent.keyboard.press("Enter")
        wait_until(lambda: fake.texts_to("o-abao") == ["有货的，今天下单明天发"])
        reply = agent.locator("li.msg[data-role='agent']").filter(has_text="今天下单")
        expect(reply.locator(".status")).to_have_text("已送达")
        # The buyer's web chat shows the whole history: web, WeChat and the reply.
        expect(buyer.locator("#messages")).to_contain_text("微信上再问一次")
        expect(buyer.locator("#messages")).to_contain_text("有货的，今天下单明天发")
        # A product card cannot go to a text-only channel: refused before sending.
        agent.get_by_role("button", name="发送商品：轻薄羽绒服").click()
        expect(agent.locator(".toast")).to_contain_text("微信公众号不支持发送商品卡片")
        expect(agent.locator("li.msg[data-role='agent']")).to_have_count(1)
        # Filtering by channel.
        agent.select_option("#filter-channel", label="微信公众号")
        expect(agent.locator(".inbox-item")).to_have_count(1)
        agent.screenshot(path=str(artifacts / "wechat-in-workbench.png"))
        assert not problems, problems
    finally:
        stop.set()
        thread.join(10)
        fake.stop()


def test_a_shop_admin_creates_a_campaign_and_the_buyer_sees_it(
        chromium: Any, running: Running, artifacts: Path) -> None:
    """The proactive-messages issue's campaign in the browser: the shop admin previews a
    segment, creates a campaign, follows it to the end; the buyer sees it in the chat with
    its coupon and link, clicks, and unsubscribes; the results page counts all of it."""
    api = running.api
    api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"},
                                        "settings": {"outreach": {  # any hour of the day
                                            "quiet_start": "00:00", "quiet_end": "00:00"}}}
            ).raise_for_status()
    api.post("/api/customers/bulk", json=[
        {"id": "b1", "nickname": "阿宝", "tags": ["vip"],
         "attributes": {"marketing_consent": True}},
        {"id": "b2", "tags": ["vip"]}]).raise_for_status()  # no consent: not sent
    api.put("/api/segments/vip-a", json={"name": "会员", "shop": SHOP,
                                         "rule": {"tags_any": ["vip"]}}).raise_for_status()
    problems: list[str] = []
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    expect(buyer.locator("#input")).to_be_enabled()

    admin = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch_console(admin, problems)
    admin.goto(f"{running.http}/campaigns#token={token('boss', 'shop_admin', SHOP)}")
    expect(admin.locator("#f-segment option[value='vip-a']")).to_have_count(1)
    admin.locator("#f-preview").click()
    expect(admin.locator("#f-audience")).to_contain_text("人群 2 人，现在可触达 1 人")
    expect(admin.locator("#f-audience")).to_contain_text("未同意营销 1")
    admin.fill("#f-name", "双12 会员日")
    admin.fill("#f-text", "会员专享：羽绒服满300减50")
    admin.fill("#f-coupon-title", "满300减50")
    admin.fill("#f-coupon-threshold", "300")
    admin.fill("#f-coupon-amount", "50")
    target = f"{running.http}/api/client-config"  # a page that exists here (loopback only)
    admin.fill("#f-link", target)
    admin.fill("#f-link-title", "去会场")
    admin.fill("#f-rate", "20")
    admin.locator("#create button[type=submit]").click()
    row = admin.locator("#c-rows tr").first
    expect(row).to_have_attribute("data-state", "finished")
    expect(admin.locator("[data-figure='sent'] strong")).to_have_text("1")
    expect(admin.locator("[data-figure='targeted'] strong")).to_have_text("2")
    expect(admin.locator("#r-reasons li[data-reason='no_consent']")).to_contain_text("1")

    notice = buyer.locator(".order-notice[data-notice='campaign']")
    expect(notice).to_contain_text("会员专享：羽绒服满300减50")
    expect(notice.locator(".notice-coupon")).to_have_text("优惠券：满300减50")
    expect(notice.locator(".notice-label")).to_contain_text("双12 会员日")
    with buyer.context.expect_page() as opened:
        notice.locator("a.notice-link").click()
    landed = opened.value
    landed.wait_for_load_state()
    assert landed.url == target  # through the click redirect, to the campaign's address
    landed.close()
    buyer.screenshot(path=str(artifacts / "campaign-in-chat.png"))
    buyer.locator("button.unsubscribe").click()
    expect(buyer.locator("li.msg[data-role='system']").last).to_contain_text("已为您退订")
    expect(buyer.locator("button.unsubscribe")).to_have_count(0)
    # The results page catches up (its figures are recomputed every few seconds).
    expect(admin.locator("[data-figure='clicked'] strong")).to_have_text("1")
    expect(admin.locator("[data-figure='opted_out'] strong")).to_have_text("1")
    expect(admin.locator("[data-figure='delivered'] strong")).to_have_text("1")
    expect(admin.locator("[data-figure='read'] strong")).to_have_text("1")
    admin.screenshot(path=str(artifacts / "campaign-results.png"))
    admin.locator("#lang").click()
    expect(admin.locator("[data-figure='clicked'] .stat-label")).to_have_text("Clicked")
    assert api.get("/api/customers/b1").json()["opt_outs"] == [f"marketing:{SHOP}"]
    # The reports count it with the other proactive messages.
    admin.goto(f"{running.http}/reports#token={token('boss', 'shop_admin', SHOP)}")
    expect(admin.locator("#outreach-sent li[data-notice='campaign']")).to_have_text(
        "Offer: 1")  # the page kept the English chosen above
    expect(admin.locator("#outreach-held li[data-reason='no_consent']")).to_contain_text("1")
    assert not problems, problems


def test_a_buyers_pick_becomes_a_proposal_the_admin_approves_on_the_kb_page(
        chromium: Any, running: Running, artifacts: Path) -> None:
    """The bot-quality issue's learning loop in the browser: the bot is unsure and offers
    choices; the buyer taps one and is answered; the shop admin sees the proposal on the
    knowledge-base page, approves it, and the "try the bot" box answers that question."""
    seed(running)
    api = running.api
    for entry_id, question, answer in (("size", "尺码怎么选", "按平时的码数拍。"),
                                       ("free", "包邮吗", "满99元包邮。")):
        api.put(f"/api/kb/{entry_id}", json={"shop": SHOP, "question": question,
                                             "answer": answer}).raise_for_status()
    problems: list[str] = []
    buyer = chromium.new_context(viewport={"width": 390, "height": 780}).new_page()
    watch_console(buyer, problems)
    buyer.goto(f"{running.http}/chat?shop={SHOP}#token={token('b1', 'buyer')}")
    expect(buyer.locator("#input")).to_be_enabled()
    buyer.fill("#input", "拍了以后哪天到")
    buyer.keyboard.press("Enter")
    chip = buyer.locator("#suggested button.chip", has_text="什么时候发货")
    chip.click()
    expect(buyer.locator("li.msg[data-role='bot']").last).to_contain_text("付款后48小时内发货哦。")

    admin = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    watch_console(admin, problems)
    admin.goto(f"{running.http}/kb#token={token('boss', 'shop_admin', SHOP)}")
    proposal = admin.locator("#proposals li.proposal")
    expect(proposal).to_have_count(1)
    expect(proposal).to_contain_text("“拍了以后哪天到” 作为 “什么时候发货” 的相似问法")
    expect(proposal).to_contain_text("买家点选 ×1")
    admin.screenshot(path=str(artifacts / "kb-proposal.png"))
    proposal.locator("button.approve").click()
    expect(proposal).to_have_count(0)
    expect(admin.locator("#no-proposals")).to_be_visible()
    expect(admin.locator("tr[data-entry='ship']")).to_contain_text("拍了以后哪天到")
    admin.fill("#t-question", "拍了以后哪天到")
    admin.locator("#try button[type=submit]").click()
    expect(admin.locator("#t-result")).to_contain_text("机器人会回答：付款后48小时内发货哦。")
    # The synonym list: saved, and read back after a reload.
    admin.fill("#s-text", "出库=发货")
    admin.locator("#synonyms button[type=submit]").click()
    expect(admin.locator("#s-status")).to_have_text("已保存")
    admin.reload()
    expect(admin.locator("#s-text")).to_have_value("出库=发货")
    admin.locator("#lang").click()
    expect(admin.locator("h2").first).to_have_text("Learned from traffic, awaiting review")
    assert not problems, problems


def test_the_monitor_shows_peak_mode_and_shedding_live(
        chromium: Any, tmp_path: Path, artifacts: Path) -> None:
    """An engine whose commit budget nothing can meet (a forced budget, not real load):
    new conversations are refused, and the monitor shows it live beside the shop's peak
    mode (running conversations going on is tests/test_metrics.py's)."""
    import trio

    from octim.testing.client import connect

    from .conftest import Running

    busy = Running(tmp_path / "busy", OCTIM_ADMISSION_COMMIT_MS="0.000001")
    with busy.process:
        api = busy.api
        api.put(f"/api/shops/{SHOP}", json={"name": "测试服装店", "bot": {"mode": "off"}}
                ).raise_for_status()
        api.put(f"/api/shops/{SHOP}/peak", json={"on": True, "capacity_factor": 2}
                ).raise_for_status()
        for n in range(12):  # enough commits for the budget's p90 to be read
            api.put(f"/api/customers/c{n}", json={"nickname": "x"}).raise_for_status()
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        problems: list[str] = []
        watch_console(page, problems)
        page.goto(f"{busy.http}/monitor#token={token('boss', 'shop_admin', SHOP)}")
        row = page.locator(f"tr[data-shop='{SHOP}']")
        expect(row.locator(".badge.peak")).to_have_text("大促模式")
        expect(page.locator("#overload")).to_be_visible()
        expect(page.locator("#overload")).to_contain_text("存储提交变慢")

        async def a_newcomer_is_refused() -> None:
            async with connect(busy.ws, token("b-new")) as buyer:
                refused = await buyer.request({"type": "open", "shop": SHOP, "ref": "o"},
                                              "error", ref="o")
                assert refused["code"] == "rate_limited" and refused["retry_after"] > 0

        trio.run(a_newcomer_is_refused)
        expect(page.locator("#total-shed")).to_have_text("1")
        page.screenshot(path=str(artifacts / "monitor-overloaded.png"))
        assert httpx.get(f"{busy.http}/readyz").status_code == 503
        assert not problems, problems
        busy.api.close()
        assert busy.process.stop() == 0


def test_the_api_docs_page_works_without_internet(chromium: Any, running: Running) -> None:
    """/docs (Swagger UI) is served by the engine itself: every request the page makes
    goes to the engine (none to a CDN), and it lists the API's operations."""
    page = chromium.new_context().new_page()
    problems: list[str] = []
    watch_console(page, problems)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{running.http}/docs")
    expect(page.locator(".opblock-summary-path[data-path='/api/campaigns']").first
           ).to_be_visible()
    assert asked and all(url.startswith(running.http) for url in asked), asked
    assert not problems, problems


def wait_until(predicate: Any, timeout: float = 15) -> None:
    """Poll ``predicate()`` until it holds (a wait, not a timing)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
