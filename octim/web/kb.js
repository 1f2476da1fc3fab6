// The knowledge-base page (docs/bot.md): what traffic taught the bot, approved or
// rejected in one click; a "try the bot" box; the shop's synonym list; its entries.
import { api, applyI18n, currentLang, el, setLang, t, signIn } from "./common.js";

const $ = (id) => document.getElementById(id);
const state = { entries: [] };
const shop = () => $("k-shop").value;
const q = () => `shop=${encodeURIComponent(shop())}`;

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); refresh(); });

const session = signIn("octim.kb.token", ["shop_admin", "platform_admin"]);
const token = session && session.token;
const claims = session && session.claims;
if (session) {
  const shops = (claims.shops || []).filter((s) => s !== "*");
  $("k-shop").replaceChildren(...shops.map((s) => el("option", { value: s, text: s })));
  $("k-shop").addEventListener("change", refresh);
  $("k-search").addEventListener("input", renderEntries);
  $("try").addEventListener("submit", (event) => { event.preventDefault(); tryBot(); });
  $("synonyms").addEventListener("submit", (event) => { event.preventDefault(); saveSynonyms(); });
  $("page").hidden = false;
  refresh();
}

function failed(error) { $("k-error").textContent = `${error.code || ""} ${error.message}`; }

async function refresh() {
  $("k-error").textContent = "";
  try {
    const [proposals, entries, synonyms] = await Promise.all([
      api(token, `/api/kb-proposals?${q()}`), api(token, `/api/kb?${q()}`),
      api(token, `/api/kb-synonyms?${q()}`)]);
    state.entries = entries;
    renderProposals(proposals);
    renderEntries();
    $("s-text").value = Object.entries(synonyms.synonyms).map(([k, v]) => `${k}=${v}`).join("\n");
  } catch (error) { failed(error); }
}

function question(id) {
  const entry = state.entries.find((e) => e.id === id);
  return entry ? entry.question : id;
}

function renderProposals(rows) {
  $("no-proposals").hidden = rows.length > 0;
  $("proposals").replaceChildren(...rows.map((p) => el("li.proposal", { dataset: { proposal: p.id } },
    el("div", { text: p.kind === "similar"
      ? t("kb_proposal_similar", { question: p.question, entry: question(p.entry) })
      : t("kb_proposal_entry", { question: p.question, answer: p.answer }) }),
    el("div.sub", { text: Object.entries(p.sources).map(([s, n]) => `${t("kb_source_" + s)} ×${n}`).join("，") }),
    el("button.approve", { type: "button", text: t("kb_approve"), onclick: () => decide(p, "approve") }),
    el("button.link.reject", { type: "button", text: t("kb_reject"), onclick: () => decide(p, "reject") }))));
}

async function decide(proposal, decision) {
  try {
    await api(token, `/api/kb-proposals/${proposal.id}/${decision}`, { method: "POST" });
    refresh();
  } catch (error) { failed(error); }
}

function renderEntries() {
  const needle = $("k-search").value.trim().toLowerCase();
  const shown = state.entries.filter((e) => !needle || [e.question, e.answer, ...e.similar]
    .some((text) => text.toLowerCase().includes(needle)));
  $("entries").replaceChildren(...shown.map((e) => el("tr", { dataset: { entry: e.id } },
    el("td", { text: e.question + (e.enabled === false ? ` (${t("kb_disabled")})` : "") }),
    el("td", { text: e.similar.join(" / ") }), el("td", { text: e.answer }))));
}

async function tryBot() {
  try {
    const found = await api(token, "/api/kb/ask", { method: "POST",
      json: { question: $("t-question").value.trim(), shop: shop() } });
    const lines = found.answered
      ? [t("kb_would_answer", { answer: found.answer }), t("kb_confidence", { c: found.confidence })]
      : [t("kb_would_offer", { choices: found.suggestions.map((s) => s.question).join(" / ") || "-" }),
         t("kb_confidence", { c: found.confidence })];
    const runner = found.answered ? found.suggestions[0] : null;
    if (runner) lines.push(t("kb_runner_up", { question: runner.question }));
    $("t-result").replaceChildren(...lines.map((text) => el("div", { text })));
  } catch (error) { failed(error); }
}

async function saveSynonyms() {
  const synonyms = {};
  for (const line of $("s-text").value.split("\n")) {
    const [word, canonical] = line.split("=").map((s) => (s || "").trim());
    if (word && canonical) synonyms[word] = canonical;
  }
  try {
    await api(token, `/api/kb-synonyms?${q()}`, { method: "PUT", json: { synonyms } });
    $("s-status").textContent = t("saved");
  } catch (error) { failed(error); }
}
