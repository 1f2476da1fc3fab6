// The reports page (docs/reports.md): totals, a trend chart and the agent ranking for a
// shop (or the platform) over a date range; CSV downloads. Chart.js ships in vendor/.
/* global Chart */
import { api, applyI18n, currentLang, el, setLang, t, signIn } from "./common.js";

const $ = (id) => document.getElementById(id);
let chart = null;
let funnel = null;
let last = null;

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); if (last) render(last); });

const session = signIn("octim.reports.token", ["shop_admin", "platform_admin", "agent"]);
const token = session && session.token;
const claims = session && session.claims;
if (session) {
  const shops = claims.role === "platform_admin" ? ["*", ...(claims.shops || []).filter((s) => s !== "*")] : (claims.shops || []);
  $("r-shop").replaceChildren(...shops.map((s) => el("option", { value: s, text: s === "*" ? t("whole_platform") : s })));
  const params = new URLSearchParams(location.search);
  if (params.get("shop")) $("r-shop").value = params.get("shop");
  // Days are the reports' own (the shop's time zone, Asia/Shanghai unless it says
  // otherwise), not the browser's: after 16:00 UTC it is already tomorrow in Shanghai.
  const today = new Date();
  const dayIn = new Intl.DateTimeFormat("en-CA", { timeZone: params.get("tz") || "Asia/Shanghai",
                                                  year: "numeric", month: "2-digit", day: "2-digit" });
  const iso = (d) => dayIn.format(d);
  $("r-to").value = params.get("to") || iso(today);
  $("r-from").value = params.get("from") || iso(new Date(today.getTime() - 29 * 86_400_000));
  $("filters").hidden = false;
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  $("r-csv").addEventListener("click", () => download("overview"));
  $("r-csv-agents").addEventListener("click", () => download("agents"));
  load();
}

function query(extra = {}) {
  return new URLSearchParams({ shop: $("r-shop").value, from: $("r-from").value, to: $("r-to").value,
    granularity: $("r-granularity").value, ...extra });
}

async function load() {
  $("r-error").textContent = "";
  try {
    const overview = await api(token, `/api/reports/overview?${query()}`);
    const ranking = claims.role === "agent" ? null : await api(token, `/api/reports/agents?${query()}`);
    const oneShop = claims.role !== "agent" && $("r-shop").value !== "*";
    const hot = oneShop ? await api(token, `/api/reports/hot-questions?${query()}`) : null;
    const dims = oneShop ? await Promise.all(["channel", "entry"].map((by) =>
      api(token, `/api/reports/breakdown?${query({ by })}`))) : null;
    const life = claims.role === "agent" ? null : await api(token, `/api/reports/lifecycle?${query()}`);
    last = { overview, ranking, hot, dims, life };
    render(last);
  } catch (error) { $("r-error").textContent = `${error.code || ""} ${error.message}`; }
}

function pct(value) { return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`; }
function dur(value) {
  if (value === null || value === undefined) return "–";
  if (value >= 7200) return `${(value / 3600).toFixed(1)}${t("h_unit")}`;
  if (value >= 120) return `${(value / 60).toFixed(1)}${t("min_unit")}`;
  return secs(value);
}
function secs(value) { return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)}${t("s_unit")}`; }

function renderHot(hot) {
  $("hot-box").hidden = !hot;
  if (!hot) return;
  $("hot-rows").replaceChildren(...(hot.unanswered.length ? hot.unanswered.map((q) => el("tr",
    el("td", { text: q.question }), el("td", { text: q.count }), el("td", { text: q.examples.join(" / ") })))
    : [el("tr", el("td", { colspan: 3, text: t("none") }))]));
  $("entry-hit-rows").replaceChildren(...(hot.top_entries.length ? hot.top_entries.map((e) => el("tr", { dataset: { entry: e.entry } },
    el("td", { text: e.question || e.entry }), el("td", { text: e.answers })))
    : [el("tr", el("td", { colspan: 2, text: t("none") }))]));
  $("complaint-rows").replaceChildren(...(hot.complaint_categories.length ? hot.complaint_categories.map((c) =>
    el("li", { text: `${c.category || t("no_category")}: ${c.complaints}` })) : [el("li", { text: t("none") })]));
}

function renderDims(dims) {
  $("dims-box").hidden = !dims;
  if (!dims) return;
  const rows = (found, kind) => found.rows.length ? found.rows.map((r) => el("tr", { dataset: { value: r.value } },
    el("td", { text: t(`${kind}_${r.value}`) === `${kind}_${r.value}` ? r.value : t(`${kind}_${r.value}`) }),
    el("td", { text: r.conversations }), el("td", { text: r.buyers }),
    el("td", { text: secs(r.first_response.mean_s) }), el("td", { text: pct(r.satisfaction) }),
    el("td", { text: pct(r.conversion_rate) }))) : [el("tr", el("td", { colspan: 6, text: t("none") }))];
  $("channel-rows").replaceChildren(...rows(dims[0], "channel"));
  $("entry-rows").replaceChildren(...rows(dims[1], "entry"));
}

function renderLifecycle(life) {
  $("lifecycle-box").hidden = !life;
  if (!life) return;
  $("lifecycle-rows").replaceChildren(...life.stages.map((s) => el("tr", { dataset: { stage: s.stage } },
    el("td", { text: t("stage_" + s.stage) }), el("td", { text: s.buyers }), el("td", { text: pct(s.share) }))));
  $("lifecycle-note").textContent = t("lifecycle_note", life.thresholds_days);
}

// 询单转化漏斗: conversations, the buyers among them, who asked, who a person served, who paid.
function renderFunnel(x) {
  const steps = [["conversations", x.conversations], ["buyers", x.buyers], ["inquiries", x.inquiries],
    ["assigned", x.assigned], ["converted", x.converted]];
  $("funnel-box").hidden = false;
  $("funnel-steps").replaceChildren(...steps.map(([key, n]) => el("li", { dataset: { step: key } },
    el("span", { text: t("funnel_" + key) }), " ", el("strong", { text: String(n) }))));
  if (typeof Chart === "undefined") return;
  if (funnel) funnel.destroy();
  funnel = new Chart($("funnel"), { type: "bar", data: { labels: steps.map(([key]) => t("funnel_" + key)),
    datasets: [{ label: t("funnel"), data: steps.map(([, n]) => n), backgroundColor: ["#93c5fd", "#60a5fa", "#3b82f6", "#2563eb", "#10b981"] }] },
  options: { indexAxis: "y", animation: false, responsive: true, plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } } });
}

// 主动消息: proactive messages sent by type, and those the gate held back, by reason.
function renderOutreach(outreach) {
  const sent = Object.entries(outreach.sent);
  const held = Object.entries(outreach.held_by_reason);
  $("outreach-box").hidden = !sent.length && !held.length;
  $("outreach-sent").replaceChildren(...sent.map(([type, n]) => el("li", { dataset: { notice: type } },
    `${t("notice_" + type)}: ${n}`)));
  $("outreach-held").replaceChildren(...held.map(([reason, n]) => el("li", { dataset: { reason } },
    `${t("reason_" + reason)}: ${n}`)));
}

function render({ overview, ranking, hot, dims, life }) {
  renderHot(hot);
  renderOutreach(overview.totals.outreach);
  renderDims(dims);
  renderLifecycle(life);
  renderFunnel(overview.totals);
  const x = overview.totals;
  const kpis = [
    ["conversations", x.conversations], ["buyer_messages", x.buyer_messages],
    ["frt_mean", secs(x.first_response.mean_s)], ["frt_p90", secs(x.first_response.p90_s)],
    ["resp_mean", secs(x.response.mean_s)], ["resp_fast", pct(x.response.within_30s_rate)],
    ["resolution_rate", pct(x.resolution_rate)], ["satisfaction", pct(x.satisfaction)],
    ["handoff_rate", pct(x.handoff_rate)], ["bot_resolution_rate", pct(x.bot_resolution_rate)],
    ["queue_p90", secs(x.queue_wait.p90_s)], ["abandoned", x.abandoned],
    ["conversion_rate", pct(x.conversion_rate)], ["sales", `¥${x.sales}`], ["complaints", x.complaints],
    ["buyers", x.buyers], ["tickets_created", x.tickets_created], ["backlog", x.backlog],
    ["ticket_resolution", dur(x.ticket_resolution_time.p50_s)],
    ["sla_first_reply", pct(x.sla.first_reply?.attainment)], ["sla_breaches", x.sla_breaches],
    ["messages_left", x.messages_left],
  ];
  $("kpis").replaceChildren(...kpis.map(([key, value]) => el("div.stat", { dataset: { kpi: key } },
    el("span.stat-label", { text: t("kpi_" + key) }), el("strong", { text: String(value) }))));
  $("kpis").hidden = false;
  $("trend-box").hidden = false;
  const labels = overview.series.map((p) => p.period);
  const datasets = [
    { label: t("kpi_conversations"), data: overview.series.map((p) => p.conversations), yAxisID: "y", borderColor: "#2563eb", backgroundColor: "#2563eb" },
    { label: t("kpi_frt_mean"), data: overview.series.map((p) => p.first_response.mean_s), yAxisID: "y1", borderColor: "#f59e0b", backgroundColor: "#f59e0b" },
    { label: t("kpi_satisfaction"), data: overview.series.map((p) => p.satisfaction === null ? null : p.satisfaction * 100), yAxisID: "y2", borderColor: "#10b981", backgroundColor: "#10b981" },
  ];
  if (typeof Chart === "undefined") return;
  if (chart) chart.destroy();
  chart = new Chart($("trend"), { type: "line", data: { labels, datasets }, options: {
    animation: false, responsive: true, spanGaps: true,
    scales: { y: { beginAtZero: true, position: "left" }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } },
              y2: { display: false, min: 0, max: 100 } } } });
  $("ranking-box").hidden = !ranking;
  if (!ranking) return;
  const rows = [...ranking.agents].sort((a, b) => b.assigned - a.assigned || b.staff_messages - a.staff_messages);
  $("ranking-rows").replaceChildren(...rows.map((r) => el("tr", { dataset: { agent: r.agent } },
    el("td", { text: r.name || r.agent }), el("td", { text: r.assigned }), el("td", { text: r.staff_messages }),
    el("td", { text: secs(r.first_response.mean_s) }), el("td", { text: pct(r.response.within_30s_rate) }),
    el("td", { text: r.resolved }), el("td", { text: pct(r.satisfaction) }),
    el("td", { text: pct(r.conversion_rate) }), el("td", { text: `${(r.online_s / 3600).toFixed(1)} h` }),
    el("td.load", { text: r.average_load === null ? "–" : r.average_load.toFixed(2) }))));
}

// A CSV file through the API (the token goes in a header, never in a link).
async function download(name) {
  const response = await fetch(`/api/reports/${name}?${query({ format: "csv" })}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) { $("r-error").textContent = response.statusText; return; }
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: `${name}-${$("r-shop").value === "*" ? "platform" : $("r-shop").value}-${$("r-from").value}-${$("r-to").value}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
