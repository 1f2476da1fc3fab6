// The admin console (店铺后台 / 平台后台, docs/admin.md): a client of the public HTTP API
// like any other. The server enforces every permission; this page only hides what the
// server would refuse. Versioned records (the shop's settings, agents) are saved with
// If-Match: a save over someone else's change is refused (version_conflict) and said so.
import { api, applyI18n, currentLang, el, setLang, t, signIn } from "./common.js";

const $ = (id) => document.getElementById(id);
const TABS = ["team", "routing", "bot", "kb", "canned", "service", "channels", "platform"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
const METRICS = ["first_reply", "next_reply", "resolution"];
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const KINDS = ["keywords", "page", "category", "channel", "vip"];
const POLICY_NUMBERS = ["sticky_days", "sticky_wait", "vip_level", "sla_seconds", "vip_sla_seconds",
  "no_reply_seconds", "transfer_wait"];
const state = { config: null, agents: [], groups: [], entries: [], agentVersion: 0, editingAgent: null };
const dirty = new Set(); // forms with changes not saved yet
const shop = () => $("a-shop").value;
const enc = encodeURIComponent;

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); renderAll(); });

const session = signIn("octim.admin.token", ["shop_admin", "platform_admin"]);
const token = session && session.token;
const claims = session && session.claims;
if (session) start();

async function start() {
  const shops = (claims.shops || []).filter((s) => s !== "*");
  if (claims.role === "platform_admin") {
    try {
      for (const record of await api(token, "/api/shops?limit=500")) if (!shops.includes(record.id)) shops.push(record.id);
    } catch (error) { $("a-error").textContent = problem(error); }
  }
  const fromUrl = new URLSearchParams(location.search).get("shop");
  $("a-shop").replaceChildren(...shops.map((s) => el("option", { value: s, text: s })));
  if (fromUrl && shops.includes(fromUrl)) $("a-shop").value = fromUrl;
  $("t-platform").hidden = claims.role !== "platform_admin";
  let current = shop();
  $("a-shop").addEventListener("change", () => {
    if (dirty.size && !confirm(t("admin_unsaved_confirm"))) { $("a-shop").value = current; return; }
    current = shop();
    dirty.clear();
    load();
  });
  for (const name of TABS) $(`t-${name}`).addEventListener("click", () => showTab(name));
  $("page").querySelector('[role="tablist"]').addEventListener("keydown", tabKeys);
  for (const form of document.querySelectorAll("form[data-form]")) {
    form.addEventListener("input", () => dirty.add(form.dataset.form));
    form.addEventListener("change", () => dirty.add(form.dataset.form));
  }
  window.addEventListener("beforeunload", (event) => {
    if (!dirty.size) return;
    event.preventDefault();
    event.returnValue = ""; // the browser shows its own "leave the page?" question
  });
  on("group-form", saveGroup);
  on("agent-form", saveAgent);
  $("ag-new").addEventListener("click", () => editAgent(null));
  on("routing-form", saveRouting);
  $("add-rule").addEventListener("click", () => { addRule({ kind: "keywords", values: [], group: "" }, true); dirty.add("routing"); });
  on("sim-form", simulate);
  on("replay-form", replay);
  on("bot-form", saveBot);
  on("try-form", tryBot);
  $("kb-search").addEventListener("input", renderEntries);
  on("entry-form", saveEntry);
  $("e-new").addEventListener("click", () => editEntry(null));
  on("import-form", importEntries);
  $("export").addEventListener("click", exportEntries);
  on("canned-form", saveCanned);
  on("peak-form", savePeak);
  on("shop-form", createShop);
  on("sharing-form", saveSharing);
  on("hook-form", saveHook);
  on("overflow-form", saveOverflow);
  $("pk-add").addEventListener("click", () => { addWindow(null); dirty.add("peak"); });
  on("policy-form", savePolicy);
  on("hours-form", saveHours);
  on("notices-form", saveNotices);
  on("audit-form", loadAudit);
  $("page").hidden = false;
  const wanted = location.hash.slice(1);
  showTab(TABS.includes(wanted) ? wanted : shops.length ? "team" : "platform");
  load();
}

function on(id, handler) {
  $(id).addEventListener("submit", (event) => { event.preventDefault(); handler(); });
}

function showTab(name) {
  for (const tab of TABS) {
    const button = $(`t-${tab}`);
    button.setAttribute("aria-selected", String(tab === name));
    button.tabIndex = tab === name ? 0 : -1;
    $(`p-${tab}`).hidden = tab !== name;
  }
}

function tabKeys(event) {
  if (!["ArrowLeft", "ArrowRight"].includes(event.key)) return;
  const visible = TABS.filter((name) => !$(`t-${name}`).hidden);
  const at = visible.indexOf(TABS.find((name) => $(`t-${name}`).getAttribute("aria-selected") === "true"));
  const next = visible[(at + (event.key === "ArrowRight" ? 1 : visible.length - 1)) % visible.length];
  showTab(next);
  $(`t-${next}`).focus();
}

function said(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function problem(error) {
  if (error.code === "version_conflict") return t("admin_conflict");
  return `${t("admin_refused")} (${error.code}): ${error.message}`;
}

async function load() {
  $("a-error").textContent = "";
  if (claims.role === "platform_admin") loadPlatform();
  if (!shop()) return; // a platform with no shop yet: the platform tab only
  try {
    const s = enc(shop());
    const [config, agents, groups, entries, proposals, canned, policies, hours, notices, channels] =
      await Promise.all([
        api(token, `/api/shops/${s}/config`), api(token, `/api/shops/${s}/agents`),
        api(token, `/api/shops/${s}/groups`), api(token, `/api/kb?shop=${s}`),
        api(token, `/api/kb-proposals?shop=${s}`), api(token, "/api/canned"),
        api(token, `/api/sla-policies?shop=${s}`), api(token, `/api/shops/${s}/business-hours`),
        api(token, `/api/shops/${s}/notices`), api(token, `/api/channels?shop=${s}`)]);
    state.candidates = await api(token, `/api/kb-candidates?shop=${s}&limit=20`);
    Object.assign(state, { config, agents, groups, entries, proposals, policies, hours, notices, channels,
      canned: canned.filter((c) => c.shop === shop()) });
    renderAll();
  } catch (error) { $("a-error").textContent = problem(error); }
}

function renderAll() {
  if (!state.config) return;
  renderTeam();
  if (!dirty.has("routing")) renderRouting();
  if (!dirty.has("bot")) renderBot();
  renderEntries();
  renderProposals();
  renderCanned();
  renderPolicies();
  if (!dirty.has("hours")) renderHours();
  if (!dirty.has("notices")) renderNotices();
  renderChannels();
}

// -- the team ----------------------------------------------------------------------------

function renderTeam() {
  $("agents").replaceChildren(...state.agents.map((a) => el("tr", { dataset: { agent: a.id } },
    el("td", a.id), el("td", a.name), el("td", a.groups.join(", ")), el("td", String(a.max_concurrent)),
    el("td", String(a.weight)),
    el("td", a.disabled ? t("admin_disabled_short") : `${t(a.status)} · ${a.load}/${a.capacity}`),
    el("td", el("button.link", { type: "button", text: t("admin_edit"), "aria-label": `${t("admin_edit")} ${a.id}`,
      onclick: () => editAgent(a) })))));
  $("groups").replaceChildren(...state.groups.map((g) => el("li", { dataset: { group: g.id } },
    `${g.name} (${g.id}) `,
    el("button.link", { type: "button", text: t("delete"), "aria-label": `${t("delete")} ${g.id}`,
      onclick: () => deleteGroup(g) }))));
  const chosen = new Set(state.editingAgent ? state.editingAgent.groups : []);
  const boxes = [...$("ag-groups").querySelectorAll("input")].filter((i) => i.checked).map((i) => i.value);
  for (const id of boxes) chosen.add(id);
  $("ag-groups").replaceChildren(el("legend", t("transfer_group")), ...state.groups.map((g) => el("label",
    el("input", { type: "checkbox", value: g.id, checked: chosen.has(g.id) }), ` ${g.name}`)));
}

function editAgent(agent) {
  state.editingAgent = agent;
  $("ag-id").value = agent ? agent.id : "";
  $("ag-id").readOnly = Boolean(agent);
  $("ag-name").value = agent ? agent.name : "";
  $("ag-max").value = agent ? agent.max_concurrent : 5;
  $("ag-weight").value = agent ? agent.weight : 1;
  $("ag-disabled").checked = Boolean(agent && agent.disabled);
  for (const box of $("ag-groups").querySelectorAll("input")) box.checked = Boolean(agent && agent.groups.includes(box.value));
  $("agent-form-title").textContent = agent ? `${t("admin_edit")} ${agent.id}` : t("admin_invite");
  said("ag-status", "");
  dirty.delete("agent");
  $("ag-name").focus();
}

async function saveAgent() {
  const editing = state.editingAgent;
  const id = $("ag-id").value.trim();
  const others = editing ? editing.shops.filter((s) => s !== shop()) : [];
  const body = { name: $("ag-name").value.trim(), shops: [shop(), ...others],
    groups: [...$("ag-groups").querySelectorAll("input:checked")].map((i) => i.value),
    max_concurrent: Number($("ag-max").value), weight: Number($("ag-weight").value),
    disabled: $("ag-disabled").checked };
  try {
    const saved = await api(token, `/api/shops/${enc(shop())}/agents/${enc(id)}`, { method: "PUT", json: body,
      headers: { "If-Match": `"${editing ? editing.version : 0}"` } });
    dirty.delete("agent");
    state.agents = await api(token, `/api/shops/${enc(shop())}/agents`);
    state.editingAgent = state.agents.find((a) => a.id === saved.id) || null;
    renderTeam();
    editAgent(state.editingAgent);
    said("ag-status", t("admin_saved"));
  } catch (error) { said("ag-status", problem(error), true); }
}

async function saveGroup() {
  const id = $("g-id").value.trim();
  try {
    await api(token, `/api/shops/${enc(shop())}/groups/${enc(id)}`, { method: "PUT", json: { name: $("g-name").value.trim() } });
    dirty.delete("group");
    $("g-id").value = ""; $("g-name").value = "";
    state.groups = await api(token, `/api/shops/${enc(shop())}/groups`);
    renderTeam();
    if (!dirty.has("routing")) renderRouting();
    said("g-status", t("admin_saved"));
  } catch (error) { said("g-status", problem(error), true); }
}

async function deleteGroup(group) {
  if (!confirm(t("admin_delete_confirm", { name: group.name }))) return;
  try {
    await api(token, `/api/shops/${enc(shop())}/groups/${enc(group.id)}`, { method: "DELETE" });
    state.groups = await api(token, `/api/shops/${enc(shop())}/groups`);
    renderTeam();
  } catch (error) { said("g-status", problem(error), true); }
}

// -- routing -----------------------------------------------------------------------------

function renderRouting() {
  const routing = { ...state.config.routing };
  const defaults = { ranking: "least_load", sticky_days: 3, sticky_wait: 0, vip_level: 1, sla_seconds: 180,
    vip_sla_seconds: 60, no_reply_seconds: 180, transfer_wait: 60, overflow_to_platform: false };
  const value = (key) => (routing[key] ?? defaults[key]);
  $("r-ranking").value = value("ranking");
  for (const key of POLICY_NUMBERS) $(`r-${key}`).value = value(key);
  $("r-overflow_to_platform").checked = Boolean(value("overflow_to_platform"));
  $("rules").replaceChildren();
  for (const rule of state.config.routing_rules) addRule(rule, false);
}

function groupOptions(selected) {
  const known = state.groups.map((g) => g.id);
  const ids = selected && !known.includes(selected) ? [...known, selected] : known;
  return [el("option", { value: "", text: "—" }), ...ids.map((id) => el("option", { value: id, selected: id === selected,
    text: known.includes(id) ? (state.groups.find((g) => g.id === id).name + ` (${id})`) : `${id} ⚠ ${t("admin_no_such_group")}` }))];
}

function addRule(rule, focus) {
  const item = el("li.rule", { draggable: "true" });
  const number = () => [...$("rules").children].indexOf(item) + 1;
  const kind = el("select.r-kind", { "aria-label": t("admin_rule_kind") },
    ...KINDS.map((k) => el("option", { value: k, text: t(`rule_${k}`), selected: k === rule.kind })));
  const values = el("input.r-values", { value: (rule.values || []).join(", "), "aria-label": t("admin_rule_values"),
    placeholder: t("admin_rule_values") });
  const group = el("select.r-group", { "aria-label": t("admin_rule_group") }, ...groupOptions(rule.group));
  const sync = () => { values.disabled = kind.value === "vip"; };
  kind.addEventListener("change", sync);
  sync();
  const move = (delta) => {
    const list = $("rules");
    const siblings = [...list.children];
    const at = siblings.indexOf(item) + delta;
    if (at < 0 || at >= siblings.length) return;
    if (delta < 0) list.insertBefore(item, siblings[at]); else list.insertBefore(item, siblings[at].nextSibling);
    dirty.add("routing");
    renumber();
  };
  item.append(el("span.handle", { "aria-hidden": "true", text: "⠿" }), el("span.r-number"), kind, values,
    el("span", "→"), group,
    el("button.link", { type: "button", text: "↑", "aria-label": t("admin_move_up"), onclick: () => move(-1) }),
    el("button.link", { type: "button", text: "↓", "aria-label": t("admin_move_down"), onclick: () => move(1) }),
    el("button.link", { type: "button", text: "✕", "aria-label": t("delete"),
      onclick: () => { item.remove(); dirty.add("routing"); renumber(); } }));
  item.addEventListener("dragstart", (event) => { item.classList.add("dragging"); event.dataTransfer.setData("text/plain", String(number())); });
  item.addEventListener("dragend", () => { item.classList.remove("dragging"); renumber(); });
  item.addEventListener("dragover", (event) => {
    event.preventDefault();
    const moving = $("rules").querySelector(".dragging");
    if (!moving || moving === item) return;
    const box = item.getBoundingClientRect();
    $("rules").insertBefore(moving, event.clientY < box.top + box.height / 2 ? item : item.nextSibling);
    dirty.add("routing");
  });
  $("rules").append(item);
  renumber();
  if (focus) kind.focus();
}

function renumber() {
  [...$("rules").children].forEach((item, i) => { item.querySelector(".r-number").textContent = `${i + 1}.`; });
}

function editedRules() {
  return [...$("rules").children].map((item) => {
    const kind = item.querySelector(".r-kind").value;
    const values = kind === "vip" ? [] : item.querySelector(".r-values").value.split(/[,，\n]/).map((v) => v.trim()).filter(Boolean);
    return { kind, values, group: item.querySelector(".r-group").value };
  });
}

async function saveRouting() {
  const routing = { ...state.config.routing, ranking: $("r-ranking").value, rules: editedRules(),
    overflow_to_platform: $("r-overflow_to_platform").checked,
    // The ordered list replaces the per-kind maps it was shown from.
    channel_groups: {}, context_groups: {}, category_groups: {}, keyword_groups: [] };
  delete routing.vip_group;
  for (const key of POLICY_NUMBERS) routing[key] = Number($(`r-${key}`).value);
  await saveConfig({ routing }, "routing", "r-status");
}

async function saveConfig(changes, form, status) {
  try {
    state.config = await api(token, `/api/shops/${enc(shop())}/config`, { method: "PATCH", json: changes,
      headers: { "If-Match": `"${state.config.version}"` } });
    dirty.delete(form);
    if (form === "routing") renderRouting(); else renderBot();
    said(status, t("admin_saved"));
  } catch (error) {
    said(status, problem(error), true);
    if (error.code === "version_conflict") {
      $(status).append(" ", el("button.link", { type: "button", text: t("admin_reload"), onclick: async () => {
        state.config = await api(token, `/api/shops/${enc(shop())}/config`);
        dirty.delete(form);
        if (form === "routing") renderRouting(); else renderBot();
        said(status, "");
      } }));
    }
  }
}

function verdictText(verdict) { return t(`verdict_${verdict.split(" ")[0]}`); }

function describe(result) {
  const parts = [];
  const rule = result.fired >= 0 ? t("admin_rule_fired", { n: result.fired + 1 }) : t("admin_no_rule");
  parts.push(el("p.sim-rule", `${rule} · ${t("transfer_group")}: ${result.group || t("admin_any_group")}`));
  if (result.rules && result.rules.length) parts.push(el("p.sub", result.rules.join(" · ")));
  if (result.preference) parts.push(el("p.sub", t("admin_preference", { agent: result.preference.agent, kind: t(`pref_${result.preference.kind}`) })));
  parts.push(el("p.sim-decision", result.decision === "assigned"
    ? t("admin_goes_to", { agent: result.winner, rule: t(`how_${result.rule}`) })
    : (result.estimated_wait == null ? t("admin_waits_nobody", { n: result.position })
      : t("admin_waits", { n: result.position, s: result.estimated_wait }))));
  if (result.starts_with === "bot") parts.push(el("p.sub", t("admin_bot_first")));
  if (result.peak) parts.push(el("p.sub", t("admin_peak_on_now")));
  parts.push(el("table.agents.candidates", el("thead", el("tr", el("th", t("admin_agent_id")), el("th", t("presence")),
    el("th", t("admin_load")), el("th", t("admin_score")), el("th", t("admin_verdict")))),
    el("tbody", ...result.candidates.map((c) => el("tr", { dataset: { agent: c.agent, verdict: c.verdict } },
      el("td", c.agent), el("td", t(c.status)), el("td", `${c.load}/${c.capacity}`),
      el("td", c.score ? `${t("score_" + c.score.by)} ${c.score.value ?? "—"}` : "—"),
      el("td", verdictText(c.verdict)))))));
  if (!result.candidates.length) parts.push(el("p.sub", t("admin_no_candidates")));
  return parts;
}

async function simulate() {
  const context = {};
  for (const key of ["page", "category", "channel"]) {
    const value = $(`s-${key}`).value.trim();
    if (value) context[key] = value;
  }
  const at = $("s-at").value ? new Date($("s-at").value).getTime() / 1000 : undefined;
  try {
    const result = await api(token, `/api/shops/${enc(shop())}/routing/simulate`, { method: "POST", json: {
      buyer: $("s-buyer").value.trim() || "simulated-buyer", level: Number($("s-level").value || 0),
      context, text: $("s-text").value, at } });
    $("sim-result").replaceChildren(...describe(result));
    for (const [i, item] of [...$("rules").children].entries()) item.classList.toggle("fired", !dirty.has("routing") && i === result.fired);
    if (dirty.has("routing")) $("sim-result").prepend(el("p.error", t("admin_sim_unsaved")));
  } catch (error) { $("sim-result").replaceChildren(el("p.error", problem(error))); }
}

async function replay() {
  try {
    const result = await api(token, `/api/conversations/${enc($("rp-id").value.trim())}/routing/replay`);
    const recorded = result.recorded.length ? result.recorded[result.recorded.length - 1] : null;
    $("replay-result").replaceChildren(
      el("p.sub", `${result.buyer} · ${JSON.stringify(result.context)} · “${result.first_text || ""}”`),
      el("h3", t("admin_then")),
      ...(recorded ? describe({ ...recorded, fired: -2 }).slice(1) : [el("p.sub", t("admin_no_trace"))]),
      el("h3", t("admin_today")), ...describe(result.today));
  } catch (error) { $("replay-result").replaceChildren(el("p.error", problem(error))); }
}

// -- bot and hours -------------------------------------------------------------------------

function renderBot() {
  const bot = state.config.bot || {};
  const hours = bot.hours || {};
  $("b-mode").value = bot.mode || "when_no_agent";
  $("b-start").value = hours.start || "09:00";
  $("b-end").value = hours.end || "23:00";
  $("b-offset").value = hours.utc_offset ?? 480;
  $("b-handoff_after").value = bot.handoff_after || 2;
  $("b-handoff_words").value = (bot.handoff_words || []).join(", ");
  $("b-anger_words").value = (bot.anger_words || []).join(", ");
}

const words = (id) => $(id).value.split(/[,，]/).map((w) => w.trim()).filter(Boolean);

async function saveBot() {
  const bot = { mode: $("b-mode").value, handoff_after: Number($("b-handoff_after").value),
    hours: { start: $("b-start").value, end: $("b-end").value, utc_offset: Number($("b-offset").value) },
    handoff_words: words("b-handoff_words"), anger_words: words("b-anger_words") };
  await saveConfig({ bot }, "bot", "b-status");
}

async function tryBot() {
  try {
    const answer = await api(token, "/api/kb/ask", { method: "POST", json: { question: $("try-q").value, shop: shop() } });
    const runner = (answer.suggestions || []).find((s) => s.id !== answer.id);
    $("try-result").replaceChildren(
      el("p.try-answer", answer.answered ? t("admin_bot_answers", { answer: answer.answer }) : t("admin_bot_unsure")),
      el("p.sub", t("admin_confidence", { c: (answer.confidence ?? 0).toFixed(2) })),
      runner ? el("p.sub", t("admin_runner_up", { q: runner.question })) : null,
      !answer.answered && answer.suggestions?.length
        ? el("p.sub", t("admin_offers", { list: answer.suggestions.map((s) => s.question).join(" / ") })) : null);
  } catch (error) { $("try-result").replaceChildren(el("p.error", problem(error))); }
}

// -- knowledge base ---------------------------------------------------------------------------

function renderEntries() {
  const needle = $("kb-search").value.trim().toLowerCase();
  const rows = state.entries.filter((e) => !needle || [e.question, e.answer, ...(e.similar || [])].join(" ").toLowerCase().includes(needle));
  $("entries").replaceChildren(...rows.map((e) => el("tr", { dataset: { entry: e.id }, class: e.enabled ? "" : "disabled" },
    el("td", e.question), el("td", e.answer),
    el("td", `${t(e.visibility === "internal" ? "admin_internal" : "admin_public")}${e.enabled ? "" : " · " + t("admin_disabled_short")}`),
    el("td", el("button.link", { type: "button", text: t("admin_edit"), "aria-label": `${t("admin_edit")} ${e.question}`, onclick: () => editEntry(e) }),
      el("button.link", { type: "button", text: e.enabled ? t("admin_disable") : t("admin_enable"), onclick: () => putEntry({ ...e, enabled: !e.enabled }) }),
      el("button.link", { type: "button", text: t("delete"), onclick: () => deleteEntry(e) })))));
}

function editEntry(entry) {
  $("e-id").value = entry ? entry.id : "";
  $("e-id").readOnly = Boolean(entry);
  $("e-question").value = entry ? entry.question : "";
  $("e-similar").value = entry ? (entry.similar || []).join("\n") : "";
  $("e-answer").value = entry ? entry.answer : "";
  $("e-category").value = entry?.category || "";
  $("e-visibility").value = entry ? entry.visibility : "public";
  $("e-enabled").checked = entry ? entry.enabled : true;
  dirty.delete("entry");
  said("e-status", "");
  $("e-question").focus();
}

async function putEntry(entry) {
  const body = { question: entry.question, similar: entry.similar || [], answer: entry.answer,
    category: entry.category || null, shop: shop(), visibility: entry.visibility, enabled: entry.enabled };
  await api(token, `/api/kb/${enc(entry.id)}`, { method: "PUT", json: body });
  state.entries = await api(token, `/api/kb?shop=${enc(shop())}`);
  renderEntries();
}

async function saveEntry() {
  try {
    await putEntry({ id: $("e-id").value.trim(), question: $("e-question").value.trim(),
      similar: $("e-similar").value.split("\n").map((s) => s.trim()).filter(Boolean), answer: $("e-answer").value,
      category: $("e-category").value.trim(), visibility: $("e-visibility").value, enabled: $("e-enabled").checked });
    dirty.delete("entry");
    said("e-status", t("admin_saved"));
  } catch (error) { said("e-status", problem(error), true); }
}

async function deleteEntry(entry) {
  if (!confirm(t("admin_delete_confirm", { name: entry.question }))) return;
  try {
    await api(token, `/api/kb/${enc(entry.id)}`, { method: "DELETE" });
    state.entries = await api(token, `/api/kb?shop=${enc(shop())}`);
    renderEntries();
  } catch (error) { $("a-error").textContent = problem(error); }
}

async function importEntries() {
  $("im-errors").replaceChildren();
  const file = $("im-file").files[0];
  const text = file ? await file.text() : $("im-text").value;
  if (!text.trim()) { said("im-status", t("admin_import_empty"), true); return; }
  const response = await fetch(`/api/kb/import?shop=${enc(shop())}`, { method: "POST", body: text,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/x-ndjson" } });
  const data = await response.json().catch(() => ({}));
  if (response.ok) {
    said("im-status", t("admin_imported", { n: data.imported }));
    $("im-text").value = ""; $("im-file").value = "";
    state.entries = await api(token, `/api/kb?shop=${enc(shop())}`);
    renderEntries();
    return;
  }
  const error = data.error || {};
  said("im-status", error.code === "invalid_lines" ? t("admin_import_refused") : problem(error), true);
  $("im-errors").replaceChildren(...(error.lines || []).map((line) => el("li", { dataset: { line: line.line } },
    t("admin_line_error", { n: line.line, error: line.error }))));
}

function exportEntries() {
  const lines = state.entries.map((e) => JSON.stringify({ id: e.id, question: e.question, similar: e.similar,
    answer: e.answer, category: e.category, visibility: e.visibility, enabled: e.enabled }));
  const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" }));
  const link = el("a", { href: url, download: `kb-${shop()}.jsonl` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function renderCandidates() {
  $("candidates").replaceChildren(...((state.candidates || []).length ? state.candidates.map((c) => el("li", { dataset: { candidate: c.key } },
    `“${c.examples[0]}” ×${c.count}` + (c.handed_off ? ` · ${t("admin_handed_off", { n: c.handed_off })}` : "") + " ",
    el("button.link", { type: "button", text: t("admin_make_entry"), onclick: () => {
      editEntry(null);
      $("e-question").value = c.examples[0];
      $("e-similar").value = c.examples.slice(1).join("\n");
      dirty.add("entry");
      $("e-answer").focus();
    } }))) : [el("li.sub", t("admin_no_candidates_kb"))]));
}

function renderProposals() {
  renderCandidates();
  const question = (id) => (state.entries.find((e) => e.id === id) || { question: id }).question;
  const rows = state.proposals || [];
  $("proposals").replaceChildren(...(rows.length ? rows.map((p) => el("li.proposal", { dataset: { proposal: p.id } },
    el("div", { text: p.kind === "similar" ? t("kb_proposal_similar", { question: p.question, entry: question(p.entry) })
      : t("kb_proposal_entry", { question: p.question, answer: p.answer }) }),
    el("button.approve", { type: "button", text: t("kb_approve"), onclick: () => decide(p, "approve") }),
    el("button.link.reject", { type: "button", text: t("kb_reject"), onclick: () => decide(p, "reject") })))
    : [el("li.sub", t("kb_no_proposals"))]));
}

async function decide(proposal, decision) {
  try {
    await api(token, `/api/kb-proposals/${proposal.id}/${decision}`, { method: "POST" });
    const s = enc(shop());
    [state.proposals, state.entries] = await Promise.all([api(token, `/api/kb-proposals?shop=${s}`), api(token, `/api/kb?shop=${s}`)]);
    renderProposals();
    renderEntries();
  } catch (error) { $("a-error").textContent = problem(error); }
}

// -- canned replies -------------------------------------------------------------------------

function renderCanned() {
  $("canned").replaceChildren(...(state.canned || []).map((c) => el("li", { dataset: { reply: c.id } },
    el("strong", c.title), " ", c.text, " ",
    el("button.link", { type: "button", text: t("admin_edit"), onclick: () => {
      $("c-id").value = c.id; $("c-title").value = c.title; $("c-text").value = c.text; dirty.delete("canned"); } }),
    el("button.link", { type: "button", text: t("delete"), onclick: () => deleteCanned(c) }))));
}

async function reloadCanned() {
  state.canned = (await api(token, "/api/canned")).filter((c) => c.shop === shop());
  renderCanned();
}

async function saveCanned() {
  try {
    await api(token, `/api/canned/${enc($("c-id").value.trim())}`, { method: "PUT",
      json: { shop: shop(), title: $("c-title").value.trim(), text: $("c-text").value } });
    dirty.delete("canned");
    await reloadCanned();
    said("c-status", t("admin_saved"));
  } catch (error) { said("c-status", problem(error), true); }
}

async function deleteCanned(reply) {
  if (!confirm(t("admin_delete_confirm", { name: reply.title }))) return;
  try {
    await api(token, `/api/canned/${enc(reply.id)}?shop=${enc(shop())}`, { method: "DELETE" });
    await reloadCanned();
  } catch (error) { said("c-status", problem(error), true); }
}

// -- platform ------------------------------------------------------------------------------

async function loadPlatform() {
  try {
    const [peak, shops, sharing, hooks, overflow] = await Promise.all([api(token, "/api/platform/peak"),
      api(token, "/api/shops?limit=500"), api(token, "/api/platform/sharing"), api(token, "/api/webhooks"),
      api(token, "/api/platform/agents")]);
    state.shops = shops;
    state.hooks = hooks;
    state.overflow = overflow;
    renderOverflow();
    renderShops();
    renderHooks();
    if (!dirty.has("sharing")) renderSharing(sharing);
    if (dirty.has("peak")) return;
    $("pk-on").checked = Boolean(peak.on);
    $("pk-factor").value = peak.capacity_factor;
    $("pk-cap").value = peak.queue_cap ?? "";
    $("pk-windows").replaceChildren();
    for (const window of peak.windows) addWindow(window);
  } catch (error) { said("pk-status", problem(error), true); }
}

// datetime-local values are local time without a zone: to and from epoch ms.
const localInput = (ms) => { const d = new Date(ms); return new Date(ms - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };

function addWindow(window) {
  const from = el("input.w-from", { type: "datetime-local", required: true, "aria-label": t("admin_from"), value: window ? localInput(window.from) : "" });
  const to = el("input.w-to", { type: "datetime-local", required: true, "aria-label": t("admin_to"), value: window ? localInput(window.to) : "" });
  const item = el("li.window", from, " → ", to, " ",
    el("button.link", { type: "button", text: "✕", "aria-label": t("delete"), onclick: () => { item.remove(); dirty.add("peak"); } }));
  $("pk-windows").append(item);
}

async function savePeak() {
  try {
    const current = await api(token, "/api/platform/peak");
    const windows = [...$("pk-windows").children].map((item) => ({
      from: new Date(item.querySelector(".w-from").value).getTime(), to: new Date(item.querySelector(".w-to").value).getTime() }));
    await api(token, "/api/platform/peak", { method: "PUT", json: {
      on: $("pk-on").checked, capacity_factor: Number($("pk-factor").value), queue_cap: $("pk-cap").value ? Number($("pk-cap").value) : null,
      windows, vip_first: current.vip_first, priority: current.priority,
      recent_order_days: current.recent_order_days } });
    dirty.delete("peak");
    said("pk-status", t("admin_saved"));
  } catch (error) { said("pk-status", problem(error), true); }
}

function renderShops() {
  $("shops").replaceChildren(...(state.shops || []).map((s) => el("tr", { dataset: { shop: s.id } },
    el("td", s.id), el("td", s.name), el("td", s.suspended ? t("admin_suspended") : t("admin_active")),
    el("td", el("button.link", { type: "button", text: t("admin_manage"), onclick: () => manageShop(s.id) }),
      el("button.link.suspend", { type: "button", text: s.suspended ? t("admin_resume") : t("admin_suspend"),
        onclick: () => suspendShop(s) })))));
}

function manageShop(id) {
  if (![...$("a-shop").options].some((o) => o.value === id)) $("a-shop").append(el("option", { value: id, text: id }));
  $("a-shop").value = id;
  $("a-shop").dispatchEvent(new Event("change"));
  showTab("team");
}

async function createShop() {
  const id = $("sh-id").value.trim();
  try {
    await api(token, `/api/shops/${enc(id)}`, { method: "PUT", json: { name: $("sh-name").value.trim(),
      categories: $("sh-categories").value.split(/[,，]/).map((c) => c.trim()).filter(Boolean) } });
    dirty.delete("shop");
    $("sh-id").value = ""; $("sh-name").value = ""; $("sh-categories").value = "";
    state.shops = await api(token, "/api/shops?limit=500");
    renderShops();
    if (![...$("a-shop").options].some((o) => o.value === id)) $("a-shop").append(el("option", { value: id, text: id }));
    said("sh-status", t("admin_saved"));
  } catch (error) { said("sh-status", problem(error), true); }
}

async function suspendShop(record) {
  if (!record.suspended && !confirm(t("admin_suspend_confirm", { name: record.name }))) return;
  try {
    const config = await api(token, `/api/shops/${enc(record.id)}/config`);
    await api(token, `/api/shops/${enc(record.id)}/config`, { method: "PATCH", json: { suspended: !record.suspended },
      headers: { "If-Match": `"${config.version}"` } });
    state.shops = await api(token, "/api/shops?limit=500");
    renderShops();
  } catch (error) { said("sh-status", problem(error), true); }
}

function renderSharing(sharing) {
  const chosen = new Set(sharing.fields);
  $("sharing-fields").replaceChildren(el("legend", t("admin_sharing_help")), ...sharing.shareable.map((f) => el("label",
    el("input", { type: "checkbox", value: f, checked: chosen.has(f) }), ` ${t("share_" + f)}`)));
  $("sharing-more").value = sharing.fields.filter((f) => !sharing.shareable.includes(f)).join(", ");
}

async function saveSharing() {
  const fields = [...$("sharing-fields").querySelectorAll("input:checked")].map((i) => i.value)
    .concat($("sharing-more").value.split(/[,，]/).map((f) => f.trim()).filter(Boolean));
  try {
    await api(token, "/api/platform/sharing", { method: "PUT", json: { fields } });
    dirty.delete("sharing");
    said("sharing-status", t("admin_saved"));
  } catch (error) { said("sharing-status", problem(error), true); }
}

async function loadAudit() {
  const params = new URLSearchParams();
  if ($("au-user").value.trim()) params.set("user", $("au-user").value.trim());
  if ($("au-since").value) params.set("since", String(new Date($("au-since").value).getTime()));
  try {
    const rows = await api(token, `/api/audit?${params}`);
    $("audit").replaceChildren(...rows.map((r) => el("tr", el("td", new Date(r.at).toLocaleString()),
      el("td", `${r.who} (${r.role})`), el("td", r.customer || "—"), el("td", r.what))));
  } catch (error) { $("a-error").textContent = problem(error); }
}

// -- service settings: SLA policies, business hours, notice templates ------------------------

function renderPolicies() {
  $("policies").replaceChildren(...(state.policies || []).map((p) => el("tr", { dataset: { policy: p.id } },
    el("td", `${p.position}. ${p.name}`),
    el("td", (p.conditions?.priority || []).map((x) => t(`priority_${x}`)).join(", ") || t("all")),
    el("td", Object.entries(p.targets || {}).map(([priority, goals]) => `${t("priority_" + priority)}: ` +
      METRICS.filter((m) => goals[m]).map((m) => `${t("sla_" + m)} ${goals[m]}`).join(" / ")).join("；")),
    el("td", el("button.link", { type: "button", text: t("admin_edit"), onclick: () => editPolicy(p) }),
      el("button.link", { type: "button", text: t("delete"), onclick: () => deletePolicy(p) })))));
  if (!$("po-when").querySelector("input")) {
    $("po-when").append(...PRIORITIES.map((p) => el("label", el("input", { type: "checkbox", value: p }), ` ${t("priority_" + p)}`)));
    $("po-targets").replaceChildren(...PRIORITIES.map((p) => el("tr", el("th", t("priority_" + p)),
      ...METRICS.map((m) => el("td", el("input", { type: "number", min: "1", max: "525600", dataset: { priority: p, metric: m },
        "aria-label": `${t("priority_" + p)} ${t("sla_" + m)}` }))))));
  }
}

function editPolicy(policy) {
  state.editingPolicy = policy;
  $("po-id").value = policy.id; $("po-id").readOnly = true;
  $("po-name").value = policy.name; $("po-position").value = policy.position;
  for (const box of $("po-when").querySelectorAll("input")) box.checked = (policy.conditions?.priority || []).includes(box.value);
  for (const input of $("po-targets").querySelectorAll("input")) input.value = policy.targets?.[input.dataset.priority]?.[input.dataset.metric] ?? "";
  $("po-hours").checked = Boolean(policy.business_hours);
  dirty.delete("policy");
}

async function savePolicy() {
  const targets = {};
  for (const input of $("po-targets").querySelectorAll("input")) {
    if (!input.value) continue;
    (targets[input.dataset.priority] ||= {})[input.dataset.metric] = Number(input.value);
  }
  // What the form does not show (other conditions, escalation) is kept as it was.
  const before = state.editingPolicy && state.editingPolicy.id === $("po-id").value.trim() ? state.editingPolicy : {};
  const body = { shop: shop(), name: $("po-name").value.trim(), position: Number($("po-position").value || 0),
    conditions: { ...(before.conditions || {}), priority: [...$("po-when").querySelectorAll("input:checked")].map((i) => i.value) },
    targets, business_hours: $("po-hours").checked };
  if (before.escalate_to) body.escalate_to = before.escalate_to;
  try {
    await api(token, `/api/sla-policies/${enc($("po-id").value.trim())}`, { method: "PUT", json: body });
    dirty.delete("policy");
    state.policies = await api(token, `/api/sla-policies?shop=${enc(shop())}`);
    renderPolicies();
    said("po-status", t("admin_saved"));
  } catch (error) { said("po-status", problem(error), true); }
}

async function deletePolicy(policy) {
  if (!confirm(t("admin_delete_confirm", { name: policy.name }))) return;
  try {
    await api(token, `/api/sla-policies/${enc(policy.id)}?shop=${enc(shop())}`, { method: "DELETE" });
    state.policies = await api(token, `/api/sla-policies?shop=${enc(shop())}`);
    renderPolicies();
  } catch (error) { said("po-status", problem(error), true); }
}

function renderHours() {
  const hours = state.hours || { timezone: "Asia/Shanghai", weekly: {}, holidays: [] };
  $("h-tz").value = hours.timezone;
  $("h-days").replaceChildren(...DAYS.map((day) => el("label", el("span", t("day_" + day)), " ",
    el("input", { dataset: { day }, value: (hours.weekly[day] || []).map(([a, b]) => `${a}-${b}`).join(", "),
      placeholder: "09:00-18:00", "aria-label": t("day_" + day) }))));
  $("h-holidays").value = (hours.holidays || []).join("\n");
}

async function saveHours() {
  const weekly = {};
  for (const input of $("h-days").querySelectorAll("input")) {
    const spans = input.value.split(/[,，]/).map((v) => v.trim()).filter(Boolean).map((v) => v.split("-").map((x) => x.trim()));
    if (spans.length) weekly[input.dataset.day] = spans;
  }
  const body = { timezone: $("h-tz").value.trim(), weekly,
    holidays: $("h-holidays").value.split("\n").map((d) => d.trim()).filter(Boolean) };
  try {
    state.hours = await api(token, `/api/shops/${enc(shop())}/business-hours`, { method: "PUT", json: body });
    dirty.delete("hours");
    renderHours();
    said("h-status", t("admin_saved"));
  } catch (error) { said("h-status", problem(error), true); }
}

function renderNotices() {
  const types = state.notices?.types || {};
  $("notice-types").replaceChildren(...Object.entries(types).map(([kind, setting]) => el("fieldset", { dataset: { notice: kind } },
    el("legend", t("notice_" + kind)),
    el("label", el("input.n-enabled", { type: "checkbox", checked: setting.enabled }), ` ${t("admin_enabled")}`),
    ...Object.entries(setting.templates).map(([language, text]) => el("label", el("span", language), " ",
      el("textarea.n-template", { rows: "2", dataset: { language } }, text))))));
}

async function saveNotices() {
  const types = {};
  for (const set of $("notice-types").querySelectorAll("fieldset")) {
    const templates = {};
    for (const area of set.querySelectorAll("textarea")) templates[area.dataset.language] = area.value;
    types[set.dataset.notice] = { enabled: set.querySelector(".n-enabled").checked, templates };
  }
  try {
    await api(token, `/api/shops/${enc(shop())}/notices`, { method: "PUT", json: { types } });
    state.notices = await api(token, `/api/shops/${enc(shop())}/notices`);
    dirty.delete("notices");
    renderNotices();
    said("n-status", t("admin_saved"));
  } catch (error) { said("n-status", problem(error), true); }
}

// -- channels: the shop's channels, failed replies and resend --------------------------------

function renderChannels() {
  $("channels").replaceChildren(...(state.channels || []).map((c) => el("tr", { dataset: { channel: c.id } },
    el("td", c.id), el("td", c.name), el("td", c.platform ? `${c.type} · ${c.platform}` : c.type),
    el("td", el("button.link", { type: "button", text: t("admin_dead_letters"), onclick: () => showDead(c) })))));
}

async function showDead(channel) {
  $("dead-for").textContent = `${channel.name} (${channel.id})`;
  try {
    const letters = await api(token, `/api/channels/${enc(channel.id)}/dead`);
    $("dead").replaceChildren(...(letters.length ? letters.map((d) => el("li", { dataset: { delivery: d.id } },
      `${d.id}: ${d.error || ""} `,
      el("button.link", { type: "button", text: t("admin_resend"), onclick: async () => {
        try {
          await api(token, `/api/channels/${enc(channel.id)}/dead/${enc(d.id)}/resend`, { method: "POST" });
          showDead(channel);
        } catch (error) { $("a-error").textContent = problem(error); }
      } }))) : [el("li.sub", t("admin_no_dead"))]));
  } catch (error) { $("a-error").textContent = problem(error); }
}

// -- webhooks (the platform's) ---------------------------------------------------------------

function renderHooks() {
  $("webhooks").replaceChildren(...(state.hooks || []).map((h) => el("tr", { dataset: { hook: h.id } },
    el("td", h.id), el("td", h.url), el("td", h.events.join(", ")),
    el("td", el("button.link", { type: "button", text: t("admin_dead_letters"), onclick: () => showHookDead(h) }),
      el("button.link", { type: "button", text: t("delete"), onclick: () => deleteHook(h) })))));
}

async function showHookDead(hook) {
  try {
    const letters = await api(token, `/api/webhooks/${enc(hook.id)}/dead`);
    $("hook-dead").replaceChildren(el("li.sub", `${hook.id}:`), ...(letters.length ? letters.map((d) => el("li", { dataset: { delivery: d.id } },
      `${d.event || ""} ${d.id}: ${d.error || ""} `,
      el("button.link", { type: "button", text: t("admin_resend"), onclick: async () => {
        try {
          await api(token, `/api/webhooks/${enc(hook.id)}/dead/${enc(d.id)}/resend`, { method: "POST" });
          showHookDead(hook);
        } catch (error) { said("wh-status", problem(error), true); }
      } }))) : [el("li.sub", t("admin_no_dead"))]));
  } catch (error) { said("wh-status", problem(error), true); }
}

async function saveHook() {
  try {
    await api(token, `/api/webhooks/${enc($("wh-id").value.trim())}`, { method: "PUT", json: {
      url: $("wh-url").value.trim(), secret: $("wh-secret").value,
      events: $("wh-events").value.split(/[,，]/).map((e) => e.trim()).filter(Boolean) } });
    dirty.delete("hook");
    $("wh-secret").value = "";
    state.hooks = await api(token, "/api/webhooks");
    renderHooks();
    said("wh-status", t("admin_saved"));
  } catch (error) { said("wh-status", problem(error), true); }
}

async function deleteHook(hook) {
  if (!confirm(t("admin_delete_confirm", { name: hook.id }))) return;
  try {
    await api(token, `/api/webhooks/${enc(hook.id)}`, { method: "DELETE" });
    state.hooks = await api(token, "/api/webhooks");
    renderHooks();
  } catch (error) { said("wh-status", problem(error), true); }
}

// -- the platform's overflow agents (shops ["*"]) ----------------------------------------------

function renderOverflow() {
  $("overflow-agents").replaceChildren(...(state.overflow || []).map((a) => el("li", { dataset: { agent: a.id } },
    `${a.name} (${a.id}) · ${a.disabled ? t("admin_disabled_short") : `${t(a.status)} ${a.load}/${a.capacity}`} `,
    el("button.link", { type: "button", text: t("admin_edit"), onclick: () => {
      $("ov-id").value = a.id; $("ov-name").value = a.name; $("ov-max").value = a.max_concurrent;
      $("ov-disabled").checked = a.disabled; dirty.delete("overflow");
    } }))));
}

async function saveOverflow() {
  try {
    await api(token, `/api/agents/${enc($("ov-id").value.trim())}`, { method: "PUT", json: {
      name: $("ov-name").value.trim(), shops: ["*"], max_concurrent: Number($("ov-max").value),
      disabled: $("ov-disabled").checked } });
    dirty.delete("overflow");
    state.overflow = await api(token, "/api/platform/agents");
    renderOverflow();
    said("ov-status", t("admin_saved"));
  } catch (error) { said("ov-status", problem(error), true); }
}
