// The buyer chat widget: /chat?shop=…&product=…&title=…&price=…&image=…&order=…
// with the buyer's token in the fragment (#token=…) the first time; it stays in
// localStorage so a reload resumes the same conversation.
import {
  EMOJI, Gateway, Thread, api, applyI18n, bindComposer, clockTime, currentLang, duration, el,
  newId, renderBody, setLang, syncThread, t, takeToken, toaster, tokenClaims, upload,
} from "./common.js";

const $ = (id) => document.getElementById(id);
const toast = toaster($("toast"));
const params = new URLSearchParams(location.search);
const shop = params.get("shop");
const CONTEXT_FIELDS = ["product", "order", "title", "price", "image", "page", "category", "status"];

const state = {
  token: null, me: null, gw: null, conversation: null, thread: null, convState: null,
  pending: new Map(), names: new Map(), peerRead: 0, score: 0, rated: false, typingTimer: null,
};

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); render(); renderStars(); });
state.token = takeToken(localStorage, "octim.buyer.token");
const claims = state.token && tokenClaims(state.token);
if (!shop || !claims || claims.role !== "buyer") {
  $("no-token").hidden = false;
  if (!shop) $("no-token").textContent = t("no_shop");
  $("compose").hidden = true;
} else start();

function context() {
  const found = {};
  for (const field of CONTEXT_FIELDS) {
    const value = params.get(field);
    if (value !== null && value !== "") found[field] = field === "price" && !Number.isNaN(Number(value)) ? Number(value) : value;
  }
  return found;
}

function start() {
  state.me = claims.sub;
  const gw = new Gateway(state.token);
  state.gw = gw;
  gw.on("status", ({ online }) => {
    $("conn").textContent = online ? "" : t("reconnecting");
    $("conn").classList.toggle("offline", !online);
  });
  gw.on("unauthorized", () => { $("no-token").hidden = false; localStorage.removeItem("octim.buyer.token"); });
  gw.on("open", openConversation);
  gw.on("msg", (frame) => {
    if (frame.conversation !== state.conversation) return;
    state.thread.add(frame);
    if (frame.role !== "buyer") hideTyping();
    render();
    markRead();
  });
  gw.on("event", onEvent);
  gw.on("error", (frame) => { if (frame.ref === undefined) toast(t("error_" + frame.code, { message: frame.message })); });
  gw.start().catch((error) => toast(error.message));
  renderStars();
  $("tickets-open").hidden = false;
}

// -- 我的工单: the buyer's tickets, their public replies, and a reply box ----------------

$("tickets-open").addEventListener("click", async () => {
  const panel = $("tickets");
  panel.hidden = !panel.hidden;
  if (!panel.hidden) await loadTickets();
});

async function loadTickets() {
  let tickets;
  try { tickets = await api(state.token, "/api/tickets"); } catch (error) { return toast(error.message); }
  $("tickets-empty").hidden = tickets.length > 0;
  $("ticket-list").replaceChildren(...tickets.map((ticket) => el("li.ticket", {
    dataset: { ticket: ticket.id },
  }, [
    el("button.ticket-head", { type: "button", onclick: () => openTicket(ticket.id) }, [
      el("strong", { text: ticket.label }), el("span", { text: ` ${ticket.subject} ` }),
      el("span.status", { text: ticket.status_label }),
    ]),
    el("div.ticket-body", { hidden: true }),
  ])));
}

async function openTicket(id) {
  const item = document.querySelector(`li.ticket[data-ticket="${CSS.escape(id)}"]`);
  const body = item.querySelector(".ticket-body");
  let ticket;
  try { ticket = await api(state.token, `/api/tickets/${encodeURIComponent(id)}`); } catch (error) { return toast(error.message); }
  const input = el("textarea", { rows: 2, maxLength: 10000, placeholder: t("ticket_reply_hint") });
  body.replaceChildren(
    el("ol.ticket-thread", {}, ticket.thread.map((entry) => el("li", {
      class: entry.role === "buyer" ? "mine" : undefined,
      text: `${entry.role === "buyer" ? t("me") : t("service")}: ${entry.body}`,
    }))),
    input,
    el("button", { type: "button", text: t("ticket_reply"), onclick: async () => {
      const text = input.value.trim();
      if (!text) return;
      try {
        await api(state.token, `/api/tickets/${encodeURIComponent(id)}/comments`, { method: "POST", json: { body: text, public: true } });
        await loadTickets();
        await openTicket(id);
      } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
    } }),
  );
  body.hidden = false;
}

async function openConversation() {
  try {
    const opened = await state.gw.request({ type: "open", shop, context: context() }, "opened");
    if (opened.conversation !== state.conversation) {
      state.conversation = opened.conversation;
      state.thread = new Thread(opened.conversation);
      state.rated = false;
    }
    state.convState = opened.state;
    await syncThread(state.gw, state.thread);
    // Routing starts with the buyer's first message; until the next `queued` event
    // tells the position, say that a person is coming.
    const asked = state.thread.sorted().some((m) => m.role === "buyer" && m.kind === "text");
    $("queue").hidden = opened.state !== "queued" || !asked;
    if (!$("queue").hidden && !$("queue").textContent) $("queue").textContent = t("queue_waiting");
    const mine = await state.gw.request({ type: "inbox" }, "inbox");
    const entry = mine.conversations.find((c) => c.conversation === state.conversation);
    if (entry) {
      state.peerRead = entry.peer_read || 0;
      if (entry.agent_name) state.names.set(entry.last_agent, entry.agent_name);
      state.rated = entry.rated;
      $("shop-name").textContent = entry.shop_name || shop;
      document.title = `${entry.shop_name || shop} - ${t("chat_title")}`;
    }
    render();
    markRead();
    // Typing is possible once there is a conversation to send to.
    $("input").disabled = $("send").disabled = false;
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
}

// 留言: nobody can serve now, so the buyer's message becomes a ticket (source "bot",
// linked to this chat); the bot confirms its number in the chat.
$("leave").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("leave-text").value.trim();
  if (!text || !state.conversation) return;
  const latest = state.thread ? state.thread.latest : 0;
  const json = { shop, subject: text.slice(0, 60), description: text,
                 source: { kind: "bot", conversation: state.conversation, seq_from: 1, seq_to: Math.max(1, latest || 1) } };
  try {
    const ticket = await api(state.token, "/api/tickets", { method: "POST", json, headers: { "Idempotency-Key": (state.leaveKey ||= newId("leave")) } });
    state.left = true;
    state.leaveKey = null;
    $("leave").hidden = true;
    $("leave-text").value = "";
    toast(t("leave_done", { label: ticket.label }));
    $("tickets-open").hidden = false;
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
});

function onEvent(frame) {
  if (frame.conversation !== state.conversation) return;
  const { event, data } = frame;
  switch (event) {
    case "queued":
      state.convState = "queued";
      $("queue").hidden = false;
      // Nobody online: leave a message. A long queue in peak mode (queue_cap): the honest
      // wait, and leaving a message offered beside it.
      $("queue").textContent = data.mode === "leave_message" && data.reason !== "queue_cap"
        ? t("queue_leave_message")
        : t("queue_position", { n: data.position, wait: duration(data.estimated_wait || 0) })
          + (data.reason === "queue_cap" ? ` ${t("queue_busy_leave")}` : "");
      $("leave").hidden = data.mode !== "leave_message" || state.left;
      break;
    case "assigned":
      state.convState = "assigned";
      if (data.agent_name) state.names.set(data.agent, data.agent_name);
      $("queue").hidden = true;
      $("queue").textContent = "";
      $("leave").hidden = true;
      break;
    case "handoff":
      state.convState = "queued";
      break;
    case "typing":
      if (data.user !== state.me) showTyping();
      break;
    case "read":
      if (data.user !== state.me) { state.peerRead = Math.max(state.peerRead, data.upto); render(); }
      break;
    case "recalled": {
      const msg = state.thread.messages.get(data.seq);
      if (msg) { msg.recalled = true; msg.body = {}; render(); }
      break;
    }
    case "resolved": state.convState = "resolved"; $("queue").hidden = true; break;
    case "reopened": state.convState = data.state; break;
    case "closed": state.convState = "closed"; break;
    case "rated": state.rated = true; break;
    default: break;
  }
  render();
}

function markRead() {
  if (!state.thread?.latest || document.hidden) return;
  state.gw.send({ type: "read", conversation: state.conversation, upto: state.thread.latest });
}
document.addEventListener("visibilitychange", markRead);

// -- rendering ------------------------------------------------------------------------

function render() {
  if (!state.thread) return;
  const list = $("messages");
  const items = state.thread.sorted().map(messageItem);
  for (const local of state.pending.values()) items.push(messageItem(local));
  list.replaceChildren(...items);
  list.scrollTop = list.scrollHeight;
  const last = state.thread.sorted().filter((m) => m.role === "bot").pop();
  const lastSeq = state.thread.latest;
  const offers = last && last.seq === lastSeq ? (last.body.related || last.body.suggestions || []) : [];
  $("suggested").hidden = !offers.length;
  $("suggested").replaceChildren(...offers.map((s) => el("button.chip", { type: "button", text: s.question, onclick: () => sendText(s.question) })));
  const ended = state.convState === "resolved" || state.convState === "closed";
  $("rating").hidden = !ended || state.rated;
  $("rated").hidden = !state.rated;
  $("human").hidden = state.convState !== "bot";
}

function messageItem(msg) {
  const mine = msg.from === state.me;
  const side = msg.role === "system" ? "system" : mine ? "mine" : "theirs";
  let status = null;
  if (mine) status = msg.sending ? t("sending") : msg.failed ? t("failed") : state.peerRead >= msg.seq ? t("read") : t("delivered");
  const who = msg.role === "bot" ? t("bot") : msg.role === "buyer" ? t("me")
    : t("agent_name", { name: state.names.get(msg.from) || msg.from });
  const helpful = msg.role === "bot" && msg.body?.kb && !msg.voted;
  // Marketing (a reminder, a campaign): one tap stops this shop's (docs/outreach.md).
  const marketing = msg.kind === "notice" && MARKETING.has(msg.body?.notice) && !state.unsubscribed;
  return el(`li.msg.${side}`, { dataset: { seq: msg.seq ?? "", role: msg.role } },
    el("div.meta", { text: `${who} · ${clockTime(msg.ts)}` }),
    el("div.bubble", renderBody(msg, state.token)),
    status ? el("div.status", { text: status }) : null,
    marketing ? el("div.feedback",
      el("button.link.unsubscribe", { type: "button", text: t("unsubscribe"), onclick: unsubscribe })) : null,
    helpful ? el("div.feedback",
      el("button.link", { type: "button", text: "👍 " + t("helpful"), onclick: () => feedback(msg, true) }),
      el("button.link", { type: "button", text: "👎 " + t("not_helpful"), onclick: () => feedback(msg, false) })) : null);
}

const MARKETING = new Set(["price_drop", "back_in_stock", "campaign"]);

function unsubscribe() {
  state.unsubscribed = true;  // the shop confirms in the chat
  sendText("退订");
}

function feedback(msg, helpful) {
  msg.voted = true;
  state.gw.command({ type: "feedback", conversation: state.conversation, seq: msg.seq, helpful }, () => {});
  render();
}

function showTyping() {
  $("typing").hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, 4000);
}
function hideTyping() { $("typing").hidden = true; }

// -- sending ---------------------------------------------------------------------------

async function send(kind, body, extra = {}) {
  if (!state.conversation) return;
  const id = newId();
  const local = { id, from: state.me, role: "buyer", kind, body: { ...body, ...extra }, ts: Date.now(), sending: true, seq: Infinity };
  state.pending.set(id, local);
  render();
  try {
    const ack = await state.gw.request({ type: "send", conversation: state.conversation, id, kind, body }, "ack");
    state.pending.delete(id);
    state.thread.add({ type: "msg", conversation: ack.conversation, seq: ack.seq, id, from: state.me, role: "buyer", kind, body: local.body, ts: ack.ts });
    if (state.convState === "resolved") state.convState = "assigned";
  } catch (error) {
    if (error.code === "conversation_closed") { // after the reopen window: start a new one
      state.pending.delete(id);
      state.conversation = null;
      await openConversation();
      return send(kind, body, extra);
    }
    local.sending = false;
    local.failed = true;
    toast(t("error_" + error.code, { message: error.message }));
  }
  render();
}

function sendText(text) { return send("text", { text }); }

bindComposer({
  input: $("input"), form: $("compose"), picker: $("image-input"), onFile: sendFile,
  onText: sendText,
  onTyping: () => { if (state.conversation) state.gw.send({ type: "typing", conversation: state.conversation }); },
});

async function sendFile(file) {
  try {
    const uploaded = await upload(state.token, file);
    send(uploaded.kind, { upload: uploaded.id }, { url: uploaded.url });
  } catch (error) { toast(t("error_" + error.code, { message: error.message })); }
}

$("human").addEventListener("click", () => sendText("转人工"));

$("emoji-panel").append(...EMOJI.map((e) => el("button.emoji", { type: "button", text: e, "aria-label": e, onclick: () => { $("input").value += e; $("input").focus(); } })));
$("emoji-open").addEventListener("click", () => { $("emoji-panel").hidden = !$("emoji-panel").hidden; });

// -- rating --------------------------------------------------------------------------------

function renderStars() {
  $("stars").replaceChildren(...[1, 2, 3, 4, 5].map((n) => el("button.star" + (n <= state.score ? ".on" : ""), {
    type: "button", role: "radio", "aria-checked": n === state.score ? "true" : "false",
    "aria-label": t("stars", { n }), text: "★",
    onclick: () => { state.score = n; $("rating-submit").disabled = false; renderStars(); },
  })));
}

$("rating-submit").addEventListener("click", () => {
  if (!state.score) return;
  state.gw.command({ type: "rate", conversation: state.conversation, score: state.score, comment: $("rating-comment").value.trim() },
    (error) => {
      if (error.code === "invalid_state") { state.rated = true; render(); } else toast(t("error_" + error.code, { message: error.message }));
    });
});

