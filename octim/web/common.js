// Shared by the workbench, the buyer widget and the monitor: the gateway client
// (protocol v1, docs/protocol.md), HTTP calls, i18n and small DOM helpers.
import { MESSAGES } from "./i18n.js";

// -- i18n ------------------------------------------------------------------------

let lang = localStorage.getItem("octim.lang") || "zh";

export function t(key, vars = {}) {
  const table = MESSAGES[lang] || MESSAGES.zh;
  let text = table[key] ?? MESSAGES.zh[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

export function currentLang() { return lang; }

export function setLang(next) {
  lang = next;
  localStorage.setItem("octim.lang", next);
  document.documentElement.lang = next === "zh" ? "zh-CN" : "en";
  applyI18n(document);
}

// Static labels carry data-i18n (text), data-i18n-placeholder, data-i18n-title,
// data-i18n-label (aria-label).
export function applyI18n(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of root.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
}

// -- DOM ---------------------------------------------------------------------------

// el("div.cls", {attr: v, onclick: fn}, child, "text", ...)
export function el(spec, attrs = {}, ...children) {
  if (attrs instanceof Node || typeof attrs !== "object" || Array.isArray(attrs) || attrs === null) {
    children.unshift(attrs); // no attributes: the second argument is a child
    attrs = {};
  }
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag || "div");
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clockTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}

export function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return t("seconds", { n: seconds });
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return t("minutes", { n: minutes, s: seconds % 60 });
  return t("hours", { n: Math.floor(minutes / 60), m: minutes % 60 });
}

// The token comes in the URL fragment (never sent to a server), then lives in
// storage so a reload resumes.
export function takeToken(storage, key) {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromUrl = params.get("token");
  if (fromUrl) {
    storage.setItem(key, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
    return fromUrl;
  }
  return storage.getItem(key);
}

export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(escape(atob(part)));
    return JSON.parse(json);
  } catch { return null; }
}

// -- HTTP ----------------------------------------------------------------------------

// A staff page's sign-in: the token from the URL fragment (kept for this tab), and its
// claims when its role may use the page ("me" shows who); otherwise the page's sign-in
// message and null: the page does not start.
export function signIn(storageKey, roles) {
  const token = takeToken(sessionStorage, storageKey);
  const claims = token && tokenClaims(token);
  if (!claims || !roles.includes(claims.role)) {
    document.getElementById("no-token").hidden = false;
    return null;
  }
  document.getElementById("me").textContent = `${claims.sub} (${claims.role})`;
  return { token, claims };
}

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

export async function api(token, path, { method = "GET", json, body, headers = {} } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) init.body = body;
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

// Uploads need the bearer token, so <img> cannot fetch them itself.
const blobUrls = new Map();
export async function uploadUrl(token, url) {
  if (!blobUrls.has(url)) {
    blobUrls.set(url, fetch(url, { headers: { Authorization: `Bearer ${token}` } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
      .then((blob) => URL.createObjectURL(blob)));
  }
  return blobUrls.get(url);
}

export async function upload(token, file) {
  const kind = file.type.startsWith("audio/") ? "voice" : "image";
  return api(token, `/api/uploads?kind=${kind}`, { method: "POST", body: file });
}

// -- the gateway --------------------------------------------------------------------

// Connects, says hello, reconnects with backoff, and calls handlers by frame type:
// gw.on("msg", fn); gw.on("open", fn) runs after every (re)connect.
export class Gateway {
  constructor(token) {
    this.token = token;
    this.handlers = {};
    this.socket = null;
    this.backoff = 500;
    this.refs = 0;
    this.waiting = new Map(); // ref → {resolve, reject, type, match}
    this.failures = new Map(); // ref → what to do when a command fails
    this.closedByUs = false;
  }

  on(type, fn) { (this.handlers[type] ||= []).push(fn); return this; }

  emit(type, frame) { for (const fn of this.handlers[type] || []) fn(frame); }

  async start() {
    const config = await fetch("/api/client-config").then((r) => r.json());
    this.url = config.ws_url;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(this.url, ["octim.v1.json"]);
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: "hello", token: this.token }));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "welcome") {
        this.backoff = 500;
        this.user = frame.user;
        this.role = frame.role;
        this.emit("status", { online: true });
        this.emit("open", frame);
        return;
      }
      if (frame.type === "ack" && this.waiting.has(frame.id)) {
        this.waiting.get(frame.id).resolve(frame);
        this.waiting.delete(frame.id);
      } else if (frame.type === "error" && frame.ref !== undefined) {
        const pending = this.waiting.get(frame.ref);
        this.waiting.delete(frame.ref);
        const error = new ApiError(0, frame.code, frame.message);
        if (pending) { pending.reject(error); return; }
        const failed = this.failures.get(frame.ref);
        this.failures.delete(frame.ref);
        if (failed) { failed(error); return; }
      } else {
        for (const [ref, pending] of this.waiting) {
          if (pending.type === frame.type && pending.match(frame)) {
            this.waiting.delete(ref);
            pending.resolve(frame);
            break;
          }
        }
      }
      this.emit(frame.type, frame);
    };
    socket.onclose = (event) => {
      this.emit("status", { online: false, code: event.code, reason: event.reason });
      for (const [, pending] of this.waiting) pending.reject(new ApiError(0, "disconnected", "disconnected"));
      this.waiting.clear();
      if (this.closedByUs || event.code === 4001) {
        if (event.code === 4001) this.emit("unauthorized", event);
        return;
      }
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
  }

  send(frame) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  // A frame and its answer: an ack (sends, by client id), a frame echoing the ref,
  // or the first frame of answerType that `match` accepts (synced, inbox...).
  request(frame, answerType, match = (answer) => answer.ref === undefined || answer.ref === frame.ref) {
    const ref = frame.type === "send" ? frame.id : (frame.ref ?? `r${++this.refs}`);
    if (frame.type !== "send") frame.ref = ref;
    return new Promise((resolve, reject) => {
      this.waiting.set(ref, { resolve, reject, type: answerType, match });
      if (!this.send(frame)) {
        this.waiting.delete(ref);
        reject(new ApiError(0, "disconnected", "not connected"));
      }
    });
  }

  // A frame answered only by events; `onError` runs if the server refuses it.
  command(frame, onError) {
    frame.ref = `c${++this.refs}`;
    this.failures.set(frame.ref, onError);
    setTimeout(() => this.failures.delete(frame.ref), 30000);
    if (!this.send(frame)) onError(new ApiError(0, "disconnected", "not connected"));
  }

  close() { this.closedByUs = true; this.socket?.close(1000); }
}

export function newId(prefix = "m") {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// Keeps one conversation's messages by seq (live copies and synced ones are equal).
export class Thread {
  constructor(id) {
    this.id = id;
    this.messages = new Map();
    this.early = new Map();  // seq → delivery state of a message not added yet
    this.latest = 0;
  }
  add(frame) {
    // A reply's delivery state can be heard before its ack: keep it (docs/channels.md).
    const known = this.messages.get(frame.seq)?.delivery || this.early.get(frame.seq);
    if (known && !frame.delivery) frame.delivery = known;
    this.early.delete(frame.seq);
    this.messages.set(frame.seq, frame);
    this.latest = Math.max(this.latest, frame.seq);
  }
  sorted() { return [...this.messages.values()].sort((a, b) => a.seq - b.seq); }
}

// Reads a whole conversation (following `more`) into a Thread.
export async function syncThread(gw, thread, after = 0) {
  for (;;) {
    const synced = await gw.request({ type: "sync", conversation: thread.id, after }, "synced",
      (answer) => answer.conversation === thread.id);
    if (!synced.more) return synced;
    after = synced.last;
  }
}

export const EMOJI = ["😀", "😂", "😊", "😍", "🤔", "😅", "😭", "😡", "👍", "👎", "🙏", "👌",
  "❤️", "🎉", "🌹", "💪", "👏", "🤝", "😘", "😉", "😳", "🥰", "😴", "🤗", "📦", "🚚", "💰", "🎁",
  "✅", "❌", "⏰", "📷"];

// The compose box both pages share: Enter sends and Shift+Enter is a new line (not while an
// IME is composing), a typing notice at most every 2 s, images by paste or by the picker.
export function bindComposer({ input, form, picker, onText, onFile, onTyping }) {
  let lastTyping = 0;
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    if (Date.now() - lastTyping < 2000) return;
    lastTyping = Date.now();
    onTyping();
  });
  input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])].filter((f) => f.type.startsWith("image/"));
    if (!files.length) return;
    event.preventDefault();
    for (const file of files) onFile(file);
  });
  picker.addEventListener("change", () => {
    for (const file of picker.files) onFile(file);
    picker.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    lastTyping = 0; // the next keystroke starts a new typing notice
    onText(text);
  });
}

// A message at the bottom of the page for four seconds.
export function toaster(node) {
  let timer = null;
  return (text) => {
    node.textContent = text;
    node.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => { node.hidden = true; }, 4000);
  };
}

// A short beep with WebAudio (no sound file to ship).
export function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.35);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.35);
  } catch { /* no audio device: the notification still shows */ }
}

// A card's picture: one of our uploads (fetched with the token) or a platform image host.
function cardImage(src, token) {
  if (!src.startsWith("/api/uploads/")) return el("img.card-image", { src, alt: "" });
  const img = el("img.card-image", { alt: "" });
  uploadUrl(token, src).then((url) => { img.src = url; }).catch(() => { img.alt = t("image_unavailable"); });
  return img;
}

// Renders a message body (text, image, voice, link, product and order cards, system).
export function renderBody(msg, token) {
  const body = msg.body || {};
  if (msg.recalled) return el("span.recalled", { text: t("recalled") });
  switch (msg.kind) {
    case "text": case "system": case "note":
      return el("span.text", { text: body.text || "" });
    case "notice": {  // a service notice, a reminder or a campaign (docs/outreach.md)
      const order = body.order || {};  // a reminder carries a product instead
      const product = body.product;
      const coupon = body.coupon;
      const about = body.campaign ? body.campaign.name : order.order || product?.product || "";
      return el("div.order-notice", { dataset: { kind: "notice", notice: body.notice || "" } },
        el("div.notice-label", { text: `${t("notice_" + (body.notice || ""))} · ${about}` }),
        el("div.notice-text", { text: body.text || "" }),
        order.waybill ? el("div.notice-waybill", { text: `${order.carrier || ""} ${order.waybill}` }) : null,
        body.campaign && product ? el("div.notice-product", { dataset: { product: product.product } },
          product.title || product.product, product.price !== undefined ? ` ¥${product.price}` : "") : null,
        coupon ? el("div.notice-coupon", {
          text: (coupon.threshold ? t("coupon_threshold", { threshold: coupon.threshold, amount: coupon.amount })
            : t("coupon_amount", { amount: coupon.amount })) + (coupon.code ? ` · ${coupon.code}` : "") }) : null,
        body.link && /^(\/c\/|https?:\/\/)/.test(body.link.url)
          ? el("a.notice-link", { href: body.link.url, target: "_blank", rel: "noopener noreferrer",
                                  text: body.link.title || t("open_link") }) : null);
    }
    case "image": {
      const img = el("img.photo", { alt: t("image") });
      if (body.url) uploadUrl(token, body.url).then((src) => { img.src = src; }).catch(() => { img.alt = t("image_unavailable"); });
      return img;
    }
    case "voice": {
      const audio = el("audio", { controls: true });
      if (body.url) uploadUrl(token, body.url).then((src) => { audio.src = src; });
      return audio;
    }
    case "link":
      return el("a", { href: body.url, target: "_blank", rel: "noopener noreferrer", text: body.title || body.url });
    case "product": case "order": {
      const label = msg.kind === "product" ? t("product_card") : t("order_card");
      const id = body[msg.kind];
      return el("div.card", { dataset: { kind: msg.kind } },
        body.image ? cardImage(body.image, token) : null,
        el("div.card-text",
          el("div.card-label", { text: `${label} · ${id}` }),
          body.title ? el("div.card-title", { text: body.title }) : null,
          body.price !== undefined ? el("div.card-price", { text: `¥${body.price}` }) : null,
          body.status ? el("div.card-status", { text: t("status_" + body.status) }) : null));
    }
    default:
      return el("span.text", { text: `[${msg.kind}]` });
  }
}
