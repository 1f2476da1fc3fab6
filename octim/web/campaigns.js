// The campaigns page (docs/outreach.md): create a campaign for a segment, preview its
// audience, follow its progress, pause/resume/cancel it, read its results.
import { api, applyI18n, currentLang, el, setLang, t, signIn } from "./common.js";

const $ = (id) => document.getElementById(id);
const state = { shown: null, timer: null };
const shop = () => $("c-shop").value;
const FIGURES = ["targeted", "sent", "delivered", "read", "replied", "clicked", "ordered", "opted_out"];

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); refresh(); });

const session = signIn("octim.campaigns.token", ["shop_admin", "platform_admin"]);
const token = session && session.token;
const claims = session && session.claims;
if (session) {
  const shops = (claims.shops || []).filter((s) => s !== "*");
  $("c-shop").replaceChildren(...shops.map((s) => el("option", { value: s, text: s })));
  const wanted = new URLSearchParams(location.search).get("shop");
  if (wanted && shops.includes(wanted)) $("c-shop").value = wanted;
  $("c-shop").addEventListener("change", () => { state.shown = null; $("results").hidden = true; start(); });
  $("f-preview").addEventListener("click", preview);
  $("create").addEventListener("submit", (event) => { event.preventDefault(); create(); });
  $("page").hidden = false;
  start();
}

async function start() {
  try {
    const segments = await api(token, `/api/segments?shop=${encodeURIComponent(shop())}`);
    $("f-segment").replaceChildren(...segments.map((s) => el("option", {
      value: s.id, text: `${s.name} (${s.shop ? s.id : t("platform_shared")})` })));
    $("f-audience").textContent = "";
  } catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; }
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(refresh, 2000);
}

function reasons(map) {
  return Object.entries(map || {}).map(([reason, n]) => `${t("reason_" + reason)} ${n}`).join("，");
}

async function preview() {
  $("f-error").textContent = "";
  try {
    const found = await api(token, "/api/campaigns/preview", { method: "POST",
      json: { shop: shop(), segment: $("f-segment").value } });
    $("f-audience").textContent = t("audience_preview", { n: found.audience, ok: found.reachable_now })
      + (Object.keys(found.suppressed_now).length ? ` (${reasons(found.suppressed_now)})` : "");
  } catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; }
}

function number(id) { const v = $(id).value; return v === "" ? null : Number(v); }
function text(id) { const v = $(id).value.trim(); return v === "" ? null : v; }

async function create() {
  $("f-error").textContent = "";
  const message = { text: $("f-text").value.trim() };
  if (text("f-text-en")) message.text_en = text("f-text-en");
  if (text("f-coupon-title") && number("f-coupon-amount")) {
    message.coupon = { title: text("f-coupon-title"), amount: number("f-coupon-amount"),
                       threshold: number("f-coupon-threshold") || 0 };
  }
  if (text("f-product")) {
    message.product = { product: text("f-product") };
    if (text("f-product-title")) message.product.title = text("f-product-title");
    if (number("f-product-price") !== null) message.product.price = number("f-product-price");
  }
  if (text("f-link")) message.link = { url: text("f-link"), title: text("f-link-title") };
  const schedule = {};
  if (document.querySelector("input[name=when]:checked").value === "at" && $("f-at").value) {
    schedule.at = new Date($("f-at").value).getTime();
  }
  if (number("f-every")) schedule.every_hours = number("f-every");
  try {
    const made = await api(token, "/api/campaigns", { method: "POST", json: {
      shop: shop(), name: $("f-name").value.trim(), segment: $("f-segment").value, message,
      schedule, rate: number("f-rate") || 10 } });
    state.shown = made.id;
    $("create").reset();
    $("f-audience").textContent = "";
    refresh();
  } catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; }
}

async function control(id, action) {
  try {
    await api(token, `/api/campaigns/${id}/${action}`, { method: "POST" });
  } catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; }
  refresh();
}

async function refresh() {
  if (!token || !shop()) return;
  let rows;
  try { rows = await api(token, `/api/campaigns?shop=${encodeURIComponent(shop())}`); }
  catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; return; }
  $("c-rows").replaceChildren(...rows.map((c) => {
    const progress = c.progress || {};
    const live = ["scheduled", "running", "paused"].includes(c.state);
    return el("tr", { dataset: { campaign: c.id, state: c.state } },
      el("td", el("button.link", { type: "button", text: c.name, onclick: () => { state.shown = c.id; refresh(); } })),
      el("td.state", { text: t("campaign_" + c.state) }),
      el("td", { text: c.run ? `${progress.sent || 0} / ${progress.targeted || 0}` : "–" }),
      el("td",
        live && c.state !== "paused" ? el("button", { type: "button", text: t("pause"), dataset: { action: "pause" }, onclick: () => control(c.id, "pause") }) : null,
        c.state === "paused" ? el("button", { type: "button", text: t("resume"), dataset: { action: "resume" }, onclick: () => control(c.id, "resume") }) : null,
        live ? el("button", { type: "button", text: t("cancel"), dataset: { action: "cancel" }, onclick: () => control(c.id, "cancel") }) : null));
  }));
  if (state.shown) await showResults(state.shown);
}

async function showResults(id) {
  let found;
  try { found = await api(token, `/api/campaigns/${id}`); }
  catch (error) { $("f-error").textContent = `${error.code} ${error.message}`; return; }
  $("results").hidden = false;
  $("results").dataset.campaign = id;
  $("results").dataset.state = found.state;
  $("r-title").textContent = `${found.name} · ${t("campaign_" + found.state)}`;
  const results = found.results;
  if (!results) {
    $("r-kpis").replaceChildren(el("p.sub", { text: t("campaign_not_started", { at: new Date(found.next_at).toLocaleString() }) }));
    $("r-reasons").replaceChildren();
    $("r-runs").replaceChildren();
    return;
  }
  const suppressed = Object.values(results.suppressed || {}).reduce((a, b) => a + b, 0);
  $("r-kpis").replaceChildren(...[...FIGURES.slice(0, 2), "suppressed", ...FIGURES.slice(2)].map((name) =>
    el("div.stat", { dataset: { figure: name } },
      el("span.stat-label", { text: t("r_" + name) }),
      el("strong", { text: String(name === "suppressed" ? suppressed : results[name]) }))));
  $("r-reasons").replaceChildren(...Object.entries(results.suppressed || {}).map(([reason, n]) =>
    el("li", { dataset: { reason } }, `${t("reason_" + reason)}: ${n}`)));
  $("r-runs").replaceChildren(...(found.runs || []).map((r) => el("tr",
    el("td", { text: String(r.run) }), el("td", { text: new Date(r.started).toLocaleString() }),
    el("td", { text: String(r.targeted) }), el("td", { text: String(r.sent) }),
    el("td", { text: reasons(r.suppressed) || "0" }))));
}
