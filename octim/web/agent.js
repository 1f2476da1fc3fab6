// The agent workbench: one inbox over all of the agent's shops, the chat, the
// customer 360 panel. Speaks protocol v1 over the gateway; HTTP for context,
// canned replies, uploads and the team list.
import {
  EMOJI, Gateway, Thread, api, applyI18n, beep, bindComposer, clockTime, currentLang, duration,
  el, newId, renderBody, setLang, syncThread, t, takeToken, toaster, tokenClaims, upload,
} from "./common.js";
import { TicketDesk } from "./tickets.js";

const $ = (id) => document.getElementById(id);
const toast = toaster($("toast"));
const RECALL_WINDOW_MS = 120_000;
const OPEN_STATES = new Set(["assigned", "queued", "bot"]);

const state = {
  token: null, me: null, shops: [], gw: null,
  entries: new Map(), // conversation → inbox entry (kept current from live frames)
  threads: new Map(), // conversation → Thread
  synced: new Set(),
  current: null,
  pending: new Map(), // client id → local message waiting for its ack
  suggestions: new Map(), // conversation → {for_seq, items}
  handoffs: new Map(), // conversation → handoff data from the assigned event
  canned: [],
  typingTimer: null,
};

// -- start ---------------------------------------------------------------------------

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); renderAll(); });
state.token = takeToken(sessionStorage, "octim.agent.token");
if (state.token) start(); else showSignin();

function showSignin(message = "") {
  $("signin").hidden = false;
  $("desk").hidden = true;
  $("signin-error").textContent = message;
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token-input").value.trim();
  sessionStorage.setItem("octim.agent.token", state.token);
  start();
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem("octim.agent.token");
  state.gw?.close();
  location.reload();
});

function start() {
  const claims = tokenClaims(state.token);
  if (!claims || !["agent", "shop_admin"].includes(claims.role)) {
    showSignin(t("token_not_staff"));
    return;
  }
  state.me = claims.sub;
  state.shops = claims.shops || [];
  $("signin").hidden = true;
  $("desk").hidden = false;
  $("me").textContent = state.me;
  $("presence").value = localStorage.getItem("octim.agent.presence") || "online";
  const gw = new Gateway(state.token);
  state.gw = gw;
  gw.on("status", ({ online }) => {
    $("conn").textContent = online ? t("connected") : t("reconnecting");
    $("conn").classList.toggle("offline", !online);
  });
  gw.on("unauthorized", () => showSignin(t("token_rejected")));
  gw.on("open", onConnected);
  gw.on("inbox", (frame) => applyInbox(frame.conversations));
  gw.on("msg", onMessage);
  gw.on("event", onEvent);
  state.tickets = new TicketDesk({ token: state.token, me: state.me, shops: state.shops, toast });
  gw.on("ticket", (frame) => state.tickets.onFrame(frame));
  gw.on("call", showCall);
  gw.on("error", (frame) => { if (frame.ref === undefined) toast(`${frame.code}: ${frame.message}`); });
  gw.start().catch((error) => toast(error.message));
  loadCanned();
  setInterval(renderInbox, 1000); // waiting times tick
}

async function onConnected() {
  state.gw.send({ type: "presence", status: $("presence").value });
  state.gw.send({ type: "inbox" });
  state.synced.clear(); // catch up whatever happened while disconnected
  if (state.current) await openConversation(state.current);
}

$("presence").addEventListener("change", () => {
  localStorage.setItem("octim.agent.presence", $("presence").value);
  state.gw?.send({ type: "presence", status: $("presence").value });
});

$("notify").addEventListener("click", async () => {
  if (!("Notification" in window)) return toast(t("notifications_unsupported"));
  const result = await Notification.requestPermission();
  toast(result === "granted" ? t("notifications_on") : t("notifications_denied"));
});

// -- the two desks: conversations and tickets ------------------------------------------

function showDesk(which) {
  const tickets = which === "tickets";
  $("tab-chats").setAttribute("aria-selected", String(!tickets));
  $("tab-tickets").setAttribute("aria-selected", String(tickets));
  $("chat-pane").hidden = tickets;
  $("ticket-pane").hidden = !tickets;
  $("chat-view").hidden = tickets;
  $("customer-side").hidden = tickets;
  $("ticket-view").hidden = !tickets;
  $("ticket-side").hidden = !tickets;
  if (tickets) state.tickets.show(); else state.tickets.hide();
}
$("tab-chats").addEventListener("click", () => showDesk("chats"));
$("tab-tickets").addEventListener("click", () => showDesk("tickets"));

// -- inbox ---------------------------------------------------------------------------

function applyInbox(list) {
  const fresh = new Map();
  for (const entry of list) {
    const known = state.entries.get(entry.conversation);
    fresh.set(entry.conversation, { ...known, ...entry });
  }
  state.entries = fresh;
  renderFilters();
  renderInbox();
  if (state.current && state.entries.has(state.current)) { renderChatHead(); renderMessages(); }
}

// Mine: I own it, or I was invited to assist in it.
function isMine(entry) { return entry.agent === state.me || (entry.helpers || []).includes(state.me); }

function urgency(entry, now) {
  // Waiting buyers first: seconds waited, each VIP level counting as 30 s more.
  if (!entry.waiting_since || !OPEN_STATES.has(entry.state)) return -1;
  return (now - entry.waiting_since) / 1000 + (entry.level || 0) * 30;
}

// -- channels (docs/channels.md): where the buyer is, and where replies go --------------
const CHANNEL_ICONS = { web: "🌐", app: "📱", miniprogram: "🔷", h5: "📲", pc: "💻", api: "🔌",
  wechat: "💬", email: "✉️", phone: "☎️" };
const SOCKET_CHANNELS = new Set(["web", "app", "miniprogram", "h5", "pc"]);
const CONVERTIBLE = new Set(["link", "product", "order", "image"]);

function channelKey(e) { return e.via ? e.via.id : (e.channel || "web"); }
function channelName(e) { return e.via ? e.via.name : t("channel_" + (e.channel || "web")); }
function channelBadge(e) {
  const type = e.via ? e.via.channel : (e.channel || "web");
  return el("span.channel-label", { dataset: { channel: type, via: channelKey(e) }, title: channelName(e),
    text: `${CHANNEL_ICONS[type] || CHANNEL_ICONS.api} ${channelName(e)}` });
}
function viaName(entry, via) {
  if (entry && entry.via && entry.via.id === via) return entry.via.name;
  return SOCKET_CHANNELS.has(via) ? t("channel_" + via) : via;
}
/** Why the buyer's channel cannot carry ``kind`` (null: it can, or converts it). */
function notCarried(entry, kind) {
  const via = entry && entry.via;
  if (!via || !via.replies || kind === "note" || via.kinds.includes(kind)) return null;
  if (via.convert && CONVERTIBLE.has(kind) && via.kinds.includes("text")) return null;
  return t("kind_not_carried", { channel: via.name, kind: t("kind_" + kind) });
}

function visibleEntries() {
  const shop = $("filter-shop").value, which = $("filter-state").value, tag = $("filter-tag").value;
  const channel = $("filter-channel").value;
  const now = Date.now();
  return [...state.entries.values()].filter((e) => {
    if (shop && e.shop !== shop) return false;
    if (channel && channelKey(e) !== channel) return false;
    if (tag && !(e.tags || []).includes(tag)) return false;
    if (which === "open") return OPEN_STATES.has(e.state) && isMine(e);
    if (which === "resolved") return e.state === "resolved" || e.state === "closed" || !isMine(e);
    return true;
  }).sort((a, b) => (urgency(b, now) - urgency(a, now)) || (b.updated - a.updated));
}

function renderFilters() {
  const shops = new Map(), tags = new Set(), channels = new Map();
  for (const e of state.entries.values()) {
    shops.set(e.shop, e.shop_name || e.shop);
    for (const tag of e.tags || []) tags.add(tag);
    channels.set(channelKey(e), channelName(e));
  }
  for (const shop of state.shops) if (!shops.has(shop)) shops.set(shop, shop);
  fillSelect($("filter-shop"), [...shops].map(([id, name]) => [id, name]));
  fillSelect($("filter-tag"), [...tags].sort().map((tag) => [tag, tag]));
  fillSelect($("filter-channel"), [...channels].sort((a, b) => a[1].localeCompare(b[1])));
}

function fillSelect(select, options) {
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: t("all") }),
    ...options.map(([value, label]) => el("option", { value, text: label })));
  select.value = options.some(([value]) => value === chosen) ? chosen : "";
}

for (const id of ["filter-shop", "filter-state", "filter-tag", "filter-channel"]) $(id).addEventListener("change", renderInbox);

function renderInbox() {
  const list = $("inbox-list");
  const entries = visibleEntries();
  const now = Date.now();
  list.replaceChildren(...entries.map((e) => {
    const waited = e.waiting_since && OPEN_STATES.has(e.state) ? (now - e.waiting_since) / 1000 : null;
    const item = el("li.inbox-item", {
      tabindex: 0, role: "button", "aria-current": e.conversation === state.current ? "true" : null,
      dataset: { conversation: e.conversation, shop: e.shop },
      onclick: () => openConversation(e.conversation),
      onkeydown: (event) => { if (event.key === "Enter") openConversation(e.conversation); },
    },
    el("div.row",
      el("span.shop-label", { text: e.shop_name || e.shop }),
      channelBadge(e),
      el("span.buyer", { text: e.buyer_name || e.buyer }),
      e.level ? el("span.vip", { text: `VIP${e.level}` }) : null,
      e.unread ? el("span.badge", { text: e.unread, "aria-label": t("unread_n", { n: e.unread }) }) : null),
    el("div.row",
      el("span.preview", { text: e.preview || "" }),
      waited !== null ? el("span.wait" + (waited > 60 ? ".late" : ""), { text: duration(waited) })
        : el("span.state", { text: t("state_" + e.state) })),
    (e.tags || []).length ? el("div.row.tags", ...(e.tags || []).map((tag) => el("span.tag", { text: tag }))) : null);
    return item;
  }));
  $("inbox-empty").hidden = entries.length > 0;
  document.title = `${unreadTotal() ? `(${unreadTotal()}) ` : ""}${t("workbench_title")} - OctIM`;
}

function unreadTotal() {
  let n = 0;
  for (const e of state.entries.values()) if (isMine(e) && OPEN_STATES.has(e.state)) n += e.unread || 0;
  return n;
}

// -- live frames ------------------------------------------------------------------------

function thread(id) {
  if (!state.threads.has(id)) state.threads.set(id, new Thread(id));
  return state.threads.get(id);
}

function onMessage(frame) {
  thread(frame.conversation).add(frame);
  const entry = state.entries.get(frame.conversation);
  if (!entry) { state.gw.send({ type: "inbox" }); return; }
  entry.last_seq = Math.max(entry.last_seq, frame.seq);
  entry.updated = frame.ts;
  if (frame.kind !== "note") entry.preview = frame.recalled ? t("recalled") : previewOf(frame);
  if (frame.kind === "note") { /* a private note answers nobody: the waiting clock runs on */ }
  else if (frame.role === "buyer") entry.waiting_since ??= frame.ts;
  else if (frame.role === "agent" || frame.role === "shop_admin") entry.waiting_since = null;
  const viewing = frame.conversation === state.current && !document.hidden;
  if (frame.from !== state.me && !viewing) entry.unread = (entry.unread || 0) + 1;
  if (frame.conversation === state.current) {
    renderMessages();
    if (viewing) markRead();
  }
  if (frame.role === "buyer") {
    hideTyping();
    // The buyer wrote from another channel: where replies go has changed (the inbox says).
    const now = entry.via && entry.via.replies ? entry.via.id : null;
    if ((frame.via && !SOCKET_CHANNELS.has(frame.via) ? frame.via : null) !== now) state.gw.send({ type: "inbox" });
  }
  renderInbox();
}

function previewOf(frame) {
  if (frame.kind === "text" || frame.kind === "system") return (frame.body.text || "").slice(0, 80);
  return `[${t("kind_" + frame.kind)}]`;
}

function onEvent(frame) {
  const { conversation, event, data } = frame;
  const entry = state.entries.get(conversation);
  switch (event) {
    case "assigned":
      if (data.handoff) state.handoffs.set(conversation, data.handoff);
      if (data.agent === state.me) newConversation(conversation, data);
      state.gw.send({ type: "inbox" });
      break;
    case "typing":
      if (conversation === state.current && data.user !== state.me) showTyping();
      break;
    case "read":
      if (entry && data.user !== state.me) entry.peer_read = Math.max(entry.peer_read || 0, data.upto);
      if (conversation === state.current) renderMessages();
      break;
    case "recalled": {
      const msg = thread(conversation).messages.get(data.seq);
      if (msg) { msg.recalled = true; msg.body = {}; }
      if (conversation === state.current) renderMessages();
      break;
    }
    case "suggestions":
      state.suggestions.set(conversation, data);
      if (conversation === state.current) renderSuggestions();
      break;
    case "delivery": {  // how a reply fared on the buyer's api channel
      const msg = thread(conversation).messages.get(data.seq);
      const delivery = { status: data.status, error: data.error };
      if (msg) msg.delivery = delivery; else thread(conversation).early.set(data.seq, delivery);
      if (conversation === state.current) renderMessages();
      break;
    }
    case "mentioned":
      toast(t("mentioned_in_chat", { by: data.by, text: data.excerpt }));
      beep();
      break;
    case "invited":
      if (data.agent === state.me) toast(t("invited_to_chat", { by: data.by }));
      state.gw.send({ type: "inbox" });
      break;
    default: // unassigned, transferred, resolved, reopened, closed, rated
      state.gw.send({ type: "inbox" });
      if (conversation === state.current) renderChatHead();
  }
}

function newConversation(conversation, data) {
  beep();
  if ("Notification" in window && Notification.permission === "granted") {
    const note = new Notification(t("new_conversation"), {
      body: data.handoff ? t("handoff_reason_" + data.handoff.reason) : t("new_conversation_body"),
      tag: conversation,
    });
    note.onclick = () => { window.focus(); openConversation(conversation); };
  }
}

// -- one conversation -----------------------------------------------------------------

async function openConversation(id) {
  state.current = id;
  const entry = state.entries.get(id);
  renderChatHead();
  renderInbox();
  renderMessages();
  renderSuggestions();
  hideTyping();
  $("input").disabled = $("send").disabled = false;
  if (!state.synced.has(id)) {
    try {
      await syncThread(state.gw, thread(id));
      state.synced.add(id);
    } catch (error) { toast(error.message); }
  }
  if (state.current !== id) return;
  renderMessages();
  markRead();
  if (entry) loadCustomer(id);
  $("input").focus();
}

function markRead() {
  const entry = state.entries.get(state.current);
  const latest = thread(state.current).latest;
  if (!entry || !latest) return;
  if (entry.read >= latest && !entry.unread) return;
  entry.read = latest;
  entry.unread = 0;
  state.gw.send({ type: "read", conversation: state.current, upto: latest });
  renderInbox();
}

document.addEventListener("visibilitychange", () => { if (!document.hidden && state.current) markRead(); });

function renderChatHead() {
  const entry = state.entries.get(state.current);
  if (!entry) return;
  $("chat-title").textContent = entry.buyer_name || entry.buyer;
  const where = entry.via && entry.via.replies ? t("channel_replies", { name: entry.via.name }) : channelName(entry);
  $("chat-sub").textContent = `${entry.shop_name || entry.shop} · ${where} · ${t("state_" + entry.state)}`;
  const open = OPEN_STATES.has(entry.state) && entry.agent === state.me;  // the owner's
  $("transfer-open").disabled = !open;
  $("invite-open").disabled = entry.state === "closed";
  $("ticket-open").disabled = false;  // any conversation can become a ticket
  $("resolve").disabled = !open;
}

function renderMessages() {
  const list = $("messages");
  if (!state.current) { list.replaceChildren(); return; }
  const entry = state.entries.get(state.current) || {};
  const peerRead = entry.peer_read || 0;
  const items = thread(state.current).sorted().map((msg) => messageItem(msg, peerRead));
  const handoff = state.handoffs.get(state.current);
  if (handoff) items.unshift(el("li.notice", { text: t("handoff_reason_" + handoff.reason) }));
  for (const local of state.pending.values()) {
    if (local.conversation === state.current) items.push(messageItem(local, peerRead));
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(...items);
  if (atBottom || items.length < 30) list.scrollTop = list.scrollHeight;
}

function messageItem(msg, peerRead) {
  const mine = msg.from === state.me;
  const side = (msg.role === "system" ? "system" : mine ? "mine" : msg.role === "buyer" ? "theirs" : "staff") +
    (msg.kind === "note" ? ".internal" : "");
  let status = null, statusFailed = false;
  const entry = state.entries.get(msg.conversation);
  if (mine) {
    if (msg.sending) status = t("sending");
    else if (msg.failed) status = t("failed");
    else if (msg.delivery) {  // on the buyer's api channel: what its adapter said
      status = t("delivery_" + msg.delivery.status, { error: msg.delivery.error || "" });
      statusFailed = msg.delivery.status === "failed";
    } else if (msg.via && !SOCKET_CHANNELS.has(msg.via)) status = t("delivery_queued");  // went out through it
    else status = peerRead >= msg.seq ? t("read") : t("delivered");
  }
  const via = msg.role === "buyer" && msg.via ? viaName(entry, msg.via) : null;
  const canRecall = mine && msg.kind !== "note" && !msg.sending && !msg.recalled && Date.now() - msg.ts < RECALL_WINDOW_MS;
  return el(`li.msg.${side}`, { dataset: { seq: msg.seq ?? "", role: msg.role } },
    el("div.meta", { text: `${msg.role === "bot" ? t("bot") : msg.from} · ${clockTime(msg.ts)}${msg.kind === "note" ? " · " + t("private_note") : ""}` },
      via ? el("span.via", { dataset: { via: msg.via }, text: ` · ${via}` }) : null),
    el("div.bubble", renderBody(msg, state.token)),
    status ? el("div.status" + (statusFailed ? ".failed" : ""), { text: status }) : null,
    canRecall ? el("button.link", { type: "button", text: t("recall"), onclick: () => recall(msg.seq) }) : null);
}

function recall(seq) {
  state.gw.command({ type: "recall", conversation: state.current, seq }, (error) => toast(t("error_" + error.code, { message: error.message })));
}

function showTyping() {
  $("typing").hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, 4000);
}

function hideTyping() { $("typing").hidden = true; }

function renderSuggestions() {
  const found = state.current && state.suggestions.get(state.current);
  $("suggestions").hidden = !found || !found.items.length;
  if (!found) return;
  $("suggestion-list").replaceChildren(...found.items.map((item) => el("button.chip", {
    type: "button", title: item.answer, text: item.question,
    onclick: () => insertText(item.answer),
  })));
}

// -- composing ---------------------------------------------------------------------

function insertText(text) {
  const input = $("input");
  const at = input.selectionStart ?? input.value.length;
  input.value = input.value.slice(0, at) + text + input.value.slice(input.selectionEnd ?? at);
  input.focus();
  input.selectionStart = input.selectionEnd = at + text.length;
}

bindComposer({
  input: $("input"), form: $("compose"), picker: $("image-input"), onFile: sendFile,
  onText: (text) => { if (state.current) sendMessage($("note-mode").checked ? "note" : "text", { text }); },
  // Writing a private note is not typing to the buyer.
  onTyping: () => { if (state.current && !$("note-mode").checked) state.gw.send({ type: "typing", conversation: state.current }); },
});

async function sendFile(file) {
  if (!state.current) return;
  try {
    const uploaded = await upload(state.token, file);
    sendMessage(uploaded.kind, { upload: uploaded.id }, { url: uploaded.url });
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
}

async function sendMessage(kind, body, extra = {}) {
  const conversation = state.current;
  const refused = notCarried(state.entries.get(conversation), kind);
  if (refused) { toast(refused); return; }  // the server refuses it too (unsupported_kind)
  const id = newId();
  const local = { conversation, id, from: state.me, role: "agent", kind, body: { ...body, ...extra }, ts: Date.now(), sending: true, seq: Infinity };
  state.pending.set(id, local);
  renderMessages();
  try {
    const ack = await state.gw.request({ type: "send", conversation, id, kind, body }, "ack");
    state.pending.delete(id);
    const entryNow = state.entries.get(conversation);
    const via = entryNow && entryNow.via && entryNow.via.replies && kind !== "note" ? entryNow.via.id : undefined;
    thread(conversation).add({ type: "msg", conversation, seq: ack.seq, id, from: state.me, role: local.role, kind, body: local.body, ts: ack.ts, via });
    const entry = state.entries.get(conversation);
    if (entry) { entry.waiting_since = null; entry.preview = previewOf({ kind, body }); entry.updated = ack.ts; entry.read = ack.seq; }
  } catch (error) {
    local.sending = false;
    local.failed = true;
    toast(t("error_" + error.code, { message: error.message }));
  }
  if (state.current === conversation) renderMessages();
  renderInbox();
}

// Emoji
$("emoji-panel").append(...EMOJI.map((e) => el("button.emoji", { type: "button", text: e, "aria-label": e, onclick: () => insertText(e) })));
$("emoji-open").addEventListener("click", () => { $("emoji-panel").hidden = !$("emoji-panel").hidden; $("canned-panel").hidden = true; });

// Canned replies
$("canned-open").addEventListener("click", () => {
  $("canned-panel").hidden = !$("canned-panel").hidden;
  $("emoji-panel").hidden = true;
  if (!$("canned-panel").hidden) $("canned-search").focus();
});
$("canned-search").addEventListener("input", renderCanned);

async function loadCanned() {
  try { state.canned = await api(state.token, "/api/canned"); } catch (error) { toast(error.message); }
  renderCanned();
}

function renderCanned() {
  const query = $("canned-search").value.trim().toLowerCase();
  const shop = state.entries.get(state.current)?.shop;
  const shown = state.canned.filter((c) => (c.scope === "personal" || !shop || c.shop === shop) &&
    (!query || c.title.toLowerCase().includes(query) || c.text.toLowerCase().includes(query)));
  $("canned-list").replaceChildren(...shown.map((c) => el("li.canned-item",
    el("button.chip", { type: "button", title: c.text, onclick: () => { insertText(c.text); $("canned-panel").hidden = true; } },
      el("strong", { text: c.title }), " ", el("span.sub", { text: c.scope === "shop" ? c.shop : t("personal") })),
    c.scope === "personal" ? el("button.link", { type: "button", text: t("delete"), onclick: () => deleteCanned(c.id) }) : null)));
  if (!shown.length) $("canned-list").append(el("li.empty", { text: t("canned_empty") }));
}

$("canned-save").addEventListener("click", async () => {
  const title = $("canned-title").value.trim(), text = $("canned-text").value.trim();
  if (!title || !text) return toast(t("canned_need_both"));
  try {
    await api(state.token, `/api/canned/${newId("c")}`, { method: "PUT", json: { title, text } });
    $("canned-title").value = $("canned-text").value = "";
    await loadCanned();
  } catch (error) { toast(error.message); }
});

async function deleteCanned(id) {
  try { await api(state.token, `/api/canned/${id}`, { method: "DELETE" }); await loadCanned(); } catch (error) { toast(error.message); }
}

// Resolve and transfer
$("resolve").addEventListener("click", () => {
  if (!state.current || !confirm(t("confirm_resolve"))) return;
  state.gw.command({ type: "resolve", conversation: state.current }, (error) => toast(t("error_" + error.code, { message: error.message })));
});

let team = null;
$("transfer-open").addEventListener("click", async () => {
  const entry = state.entries.get(state.current);
  if (!entry) return;
  try { team = await api(state.token, `/api/shops/${entry.shop}/team`); } catch (error) { return toast(error.message); }
  fillTransferTargets();
  $("transfer-note").value = "";
  $("transfer-dialog").showModal();
});
$("transfer-kind").addEventListener("change", fillTransferTargets);
$("transfer-cancel").addEventListener("click", () => $("transfer-dialog").close());

function fillTransferTargets() {
  const kind = $("transfer-kind").value;
  const entry = state.entries.get(state.current);
  let options = [];
  if (kind === "to_agent") {
    options = team.agents.filter((a) => a.id !== state.me).map((a) => [a.id, `${a.name} (${t(a.status)} · ${a.load}/${a.max_concurrent})`]);
  } else if (kind === "to_group") {
    options = team.groups.map((g) => [g.id, g.name]);
  } else {
    options = state.shops.filter((s) => s !== entry.shop).map((s) => [s, s]);
  }
  $("transfer-target").replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
}

$("transfer-form").addEventListener("submit", (event) => {
  const target = $("transfer-target").value;
  if (!target) { event.preventDefault(); return toast(t("transfer_no_target")); }
  const frame = { type: "transfer", conversation: state.current, note: $("transfer-note").value };
  frame[$("transfer-kind").value] = target;
  state.gw.command(frame, (error) => toast(t("error_" + error.code, { message: error.message })));
});

$("note-mode").addEventListener("change", () => $("compose").classList.toggle("noting", $("note-mode").checked));

// -- invite a colleague to assist (协助) -------------------------------------------------

$("invite-open").addEventListener("click", async () => {
  const entry = state.entries.get(state.current);
  if (!entry) return;
  try { team = await api(state.token, `/api/shops/${entry.shop}/team`); } catch (error) { return toast(error.message); }
  const helpers = entry.helpers || [];
  const names = new Map(team.agents.map((a) => [a.id, a.name || a.id]));
  $("invite-agent").replaceChildren(...team.agents.filter((a) => a.id !== state.me && a.id !== entry.agent && !helpers.includes(a.id))
    .map((a) => el("option", { value: a.id, text: `${a.name} (${t(a.status)})` })));
  $("invite-helpers").replaceChildren(...helpers.map((id) => el("li", names.get(id) || id, " ",
    el("button.link", { type: "button", text: t("let_go"), onclick: () => { invite(id, true); $("invite-dialog").close(); } }))));
  $("invite-dialog").showModal();
});
$("invite-cancel").addEventListener("click", () => $("invite-dialog").close());
$("invite-form").addEventListener("submit", (event) => {
  const agent = $("invite-agent").value;
  if (!agent) { event.preventDefault(); return toast(t("transfer_no_target")); }
  invite(agent, false);
});

function invite(agent, remove) {
  state.gw.command({ type: "invite", conversation: state.current, agent, remove },
    (error) => toast(t("error_" + error.code, { message: error.message })));
}

// -- a ticket from this chat (工单) -----------------------------------------------------

$("ticket-open").addEventListener("click", () => {
  const entry = state.entries.get(state.current);
  if (!entry) return;
  $("ticket-subject").value = (entry.preview || "").slice(0, 200);
  $("ticket-priority").value = "normal";
  $("ticket-category").value = "";
  $("ticket-description").value = "";
  $("ticket-dialog").showModal();
});
$("ticket-cancel").addEventListener("click", () => $("ticket-dialog").close());
$("ticket-form").addEventListener("submit", async (event) => {
  const entry = state.entries.get(state.current);
  const subject = $("ticket-subject").value.trim();
  if (!entry || !subject) { event.preventDefault(); return; }
  const json = { shop: entry.shop, subject, priority: $("ticket-priority").value,
                 source: { kind: "chat", conversation: entry.conversation, seq_from: 1,
                           seq_to: Math.max(1, entry.last_seq || 1) } };
  const category = $("ticket-category").value.trim();
  const description = $("ticket-description").value.trim();
  if (category) json.category = category;
  if (description) json.description = description;
  try {
    const ticket = await api(state.token, "/api/tickets", { method: "POST", json });
    toast(t("ticket_created", { label: ticket.label }));
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
});

// -- 来电弹屏: a call rings; the caller's profile and open tickets pop up ----------------

let ringing = null;
function showCall(frame) {
  ringing = frame;
  beep();
  const profile = frame.profile || {};
  $("call-who").textContent = [frame.phone, profile.nickname || frame.buyer || t("unknown_caller"),
    profile.level ? `VIP${profile.level}` : null, frame.shop].filter(Boolean).join(" · ");
  $("call-profile").replaceChildren(...Object.entries(profile)
    .filter(([k, v]) => !["nickname", "id"].includes(k) && !(Array.isArray(v) && !v.length))
    .flatMap(([k, v]) => [el("dt", { text: t("profile_" + k) }), el("dd", { text: Array.isArray(v) ? v.join(", ") : String(v) })]));
  $("call-tickets").replaceChildren(...(frame.tickets.length ? frame.tickets.map((x) => el("li",
    el("button.link", { type: "button", dataset: { ticket: x.id }, text: `${x.label} ${x.subject} · ${t("tstatus_" + x.status)}`,
      onclick: () => { $("call-dialog").close(); showDesk("tickets"); state.tickets.open(x.id); } }))) : [el("li.empty", { text: t("none") })]));
  $("call-subject").value = t("call_subject", { phone: frame.phone || frame.buyer || "" });
  if (!$("call-dialog").open) $("call-dialog").showModal();
}
$("call-close").addEventListener("click", () => $("call-dialog").close());
$("call-form").addEventListener("submit", async () => {
  if (!ringing) return;
  const json = { shop: ringing.shop, subject: $("call-subject").value.trim() || t("call_subject", { phone: ringing.phone || "" }),
                 source: { kind: "phone" } };
  if (ringing.buyer) json.requester = ringing.buyer;
  json.description = `${t("incoming_call")}: ${ringing.phone || ringing.buyer} (${ringing.call})`;
  try {
    const ticket = await api(state.token, "/api/tickets", { method: "POST", json, headers: { "Idempotency-Key": `call-${ringing.call}` } });
    toast(t("ticket_created", { label: ticket.label }));
    showDesk("tickets");
    state.tickets.open(ticket.id);
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
});

// -- customer 360 -------------------------------------------------------------------

async function loadCustomer(id) {
  const body = $("customer-body");
  let ctx;
  try { ctx = await api(state.token, `/api/conversations/${id}/context`); } catch (error) {
    body.replaceChildren(el("p.error", { text: error.message }));
    return;
  }
  if (state.current !== id) return;
  state.context = ctx;
  const profile = ctx.profile || {};
  const entry = state.entries.get(id) || {};
  const highlighted = ctx.highlight?.order;
  body.replaceChildren(...[
    el("section.profile",
      el("h3", { text: profile.nickname || entry.buyer || "" }),
      el("dl", ...Object.entries(profile).filter(([k, v]) => !["nickname", "attributes", "id"].includes(k) &&
          v !== null && v !== "" && !(Array.isArray(v) && !v.length))
        .flatMap(([k, v]) => [el("dt", { text: t("profile_" + k) }), el("dd", { text: String(v) })]),
      ...Object.entries(profile.attributes || {}).flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: typeof v === "object" ? JSON.stringify(v) : String(v) })]))),
    ctx.lifecycle ? el("section.lifecycle", { dataset: { stage: ctx.lifecycle.stage } },
      el("h4", { text: t("lifecycle") }),
      el("p", el(`span.stage.stage-${ctx.lifecycle.stage}`, { text: t("stage_" + ctx.lifecycle.stage) }), " ",
        t("lifecycle_facts", { orders: ctx.lifecycle.orders, spent: ctx.lifecycle.spent.toFixed(2), days: ctx.lifecycle.recency_days }))) : null,
    ctx.card && Object.keys(ctx.card).length ? el("section",
      el("h4", { text: t("entry_card") }),
      el("p", { text: [ctx.card.title, ctx.card.product, ctx.card.order, ctx.card.page].filter(Boolean).join(" · ") })) : null,
    el("section.orders", el("h4", { text: t("orders") }),
      ctx.orders.length ? el("ul", ...ctx.orders.map((order) => orderItem(order, order.id === highlighted, ctx.highlight?.reason)))
        : el("p.empty", { text: t("no_orders") })),
    el("section.earlier", el("h4", { text: t("earlier_conversations") }),
      ctx.earlier_conversations.length ? el("ul", ...ctx.earlier_conversations.map((c) => el("li", {
        dataset: { conversation: c.conversation, channel: c.channel || "web" },
        text: `${new Date(c.created).toLocaleDateString()} · ${CHANNEL_ICONS[c.channel] || CHANNEL_ICONS.api} ${t("channel_" + (c.channel || "web"))} · ${t("state_" + c.state)} · ${c.agent || "-"}${c.rating ? " · ★" + c.rating : ""}`,
      }))) : el("p.empty", { text: t("none") })),
    (ctx.identities || []).length ? el("section.identities", el("h4", { text: t("identities") }),
      el("div.chips", ...ctx.identities.map((i) => el("span.tag", {
        text: i.type === "channel" ? i.name : t("identity_" + i.type) })))) : null,
    el("section.tags", el("h4", { text: t("tags") }),
      el("div.chips", ...ctx.tags.map((tag) => el("span.tag", tag, " ",
        el("button.link", { type: "button", "aria-label": t("remove_tag", { tag }), text: "×", onclick: () => setTags(ctx.tags.filter((x) => x !== tag)) })))),
      el("form.inline", { onsubmit: (event) => { event.preventDefault(); const v = event.target.elements.tag.value.trim(); if (v) setTags([...ctx.tags, v]); } },
        el("input", { name: "tag", maxlength: 32, "aria-label": t("add_tag"), placeholder: t("add_tag") }),
        el("button", { type: "submit", text: t("add") }))),
    el("section.notes", el("h4", { text: t("notes") }),
      el("ul", ...ctx.notes.map((note) => el("li", { text: `${note.text} — ${note.by || ""}` }))),
      el("form.inline", { onsubmit: (event) => { event.preventDefault(); const v = event.target.elements.note.value.trim(); if (v) addNote(v); } },
        el("input", { name: "note", maxlength: 1000, "aria-label": t("add_note"), placeholder: t("add_note") }),
        el("button", { type: "submit", text: t("add") }))),
  ].filter(Boolean));
}

function orderItem(order, highlighted, reason) {
  const items = order.items || [];
  const title = items.map((i) => i.name).join("、");
  const total = order.total ?? items.reduce((sum, i) => sum + (i.price || 0) * (i.quantity || 1), 0);
  const tracking = order.logistics || [];
  const last = tracking[tracking.length - 1];
  return el("li.order" + (highlighted ? ".highlight" : ""), { dataset: { order: order.id } },
    el("div.row", el("strong", { text: order.id }), el("span.state", { text: t("status_" + order.status) })),
    el("div", { text: `${title} · ¥${total}` }),
    highlighted && reason ? el("div.sub", { text: t("highlight") + ": " + reason }) : null,
    last ? el("details", el("summary", { text: `${last.place || ""} ${last.status || ""}` }),
      el("ol", ...tracking.map((e) => el("li", { text: `${new Date(e.time).toLocaleString()} ${e.place || ""} ${e.status || ""}` })))) : null,
    el("div.row",
      el("button.link", { type: "button", text: t("send_order_card"), onclick: () => sendMessage("order", { order: order.id, title, price: total, status: order.status }) }),
      ...items.slice(0, 3).map((item) => el("button.link", { type: "button", text: t("send_product_card", { name: item.name }),
        onclick: () => sendMessage("product", { product: item.sku, title: item.name, price: item.price }) }))));
}

// Tags and notes are the shop's own, about the conversation's buyer.
async function updateCustomer(what, method, json) {
  const ctx = state.context;
  const buyer = encodeURIComponent(ctx.profile.id || state.entries.get(state.current).buyer);
  try {
    await api(state.token, `/api/shops/${ctx.shop}/customers/${buyer}/${what}`, { method, json });
  } catch (error) { toast(error.message); return false; }
  loadCustomer(state.current);
  return true;
}

async function setTags(tags) {
  if (await updateCustomer("tags", "PUT", { tags })) state.gw.send({ type: "inbox" }); // tags show in the inbox
}

function addNote(text) { return updateCustomer("notes", "POST", { text }); }

// -- misc -----------------------------------------------------------------------------

function renderAll() { renderFilters(); renderInbox(); renderChatHead(); renderMessages(); renderCanned(); if (state.current) loadCustomer(state.current); }

