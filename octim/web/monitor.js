// The live monitor: one `monitor` frame subscribes; the engine pushes a snapshot
// every second (docs/protocol.md). Shop admins see their shops, platform admins all.
/* global Chart */
import { Gateway, applyI18n, currentLang, duration, el, setLang, t, signIn } from "./common.js";

const $ = (id) => document.getElementById(id);
let last = null;
let chart = null;

applyI18n(document);
$("lang").addEventListener("click", () => { setLang(currentLang() === "zh" ? "en" : "zh"); if (last) render(last); });

const session = signIn("octim.monitor.token", ["shop_admin", "platform_admin"]);
const token = session && session.token;
if (session) {
  const gw = new Gateway(token);
  gw.on("status", ({ online }) => {
    $("conn").textContent = online ? t("live") : t("reconnecting");
    $("conn").classList.toggle("offline", !online);
  });
  gw.on("open", () => gw.send({ type: "monitor" }));
  gw.on("monitor", (frame) => { last = frame; render(frame); });
  gw.on("error", (frame) => { $("no-token").hidden = false; $("no-token").textContent = `${frame.code}: ${frame.message}`; });
  gw.start();
}

function pct(rate) { return `${(rate * 100).toFixed(1)}%`; }

function fmt(value, digits = 1) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }

function render(frame) {
  const shops = frame.shops;
  const sum = (f) => shops.reduce((n, s) => n + f(s), 0);
  const online = sum((s) => s.agents_by_status.online);
  $("total-online").textContent = online;
  $("total-active").textContent = sum((s) => s.assigned);
  $("total-queued").textContent = sum((s) => s.queued);
  $("total-wait").textContent = duration(Math.max(0, ...shops.map((s) => s.longest_wait)));
  const frtCount = sum((s) => s.today.first_responses);
  const frtTotal = sum((s) => (s.today.first_response_seconds || 0) * s.today.first_responses);
  $("total-frt").textContent = frtCount ? duration(frtTotal / frtCount) : "–";
  const ratings = sum((s) => s.today.ratings);
  const ratingTotal = sum((s) => (s.today.average_rating || 0) * s.today.ratings);
  $("total-csat").textContent = ratings ? `${fmt(ratingTotal / ratings, 2)} / 5 (${ratings})` : "–";
  const inquiries = sum((s) => s.today.inquiries);
  $("total-conversion").textContent = inquiries ? pct(sum((s) => s.today.converted) / inquiries) : "–";
  $("updated").textContent = t("updated_at", { time: new Date(frame.ts).toLocaleTimeString() });
  // Admission control: while the engine is past its budget, new conversations wait.
  const engine = frame.engine || {};
  $("overload").hidden = !engine.overloaded;
  $("overload").textContent = engine.overloaded ? t("overloaded", { reason: t("overload_" + engine.overloaded) }) : "";
  $("total-shed").textContent = engine.shed ?? "–";

  $("shop-rows").replaceChildren(...shops.map((s) => el("tr", { dataset: { shop: s.shop } },
    el("th", { scope: "row" }, s.name,
      s.peak ? el("span.badge.peak", { text: t("peak_" + s.peak), dataset: { peak: s.peak } }) : null),
    el("td.online", { text: s.agents_by_status.online }),
    el("td.busy", { text: s.agents_by_status.busy }),
    el("td.away", { text: s.agents_by_status.away }),
    el("td.active", { text: s.assigned }),
    el("td.queued", { text: s.queued }),
    el("td.wait", { text: s.queued ? duration(s.longest_wait) : "–" }),
    el("td.opened", { text: s.today.opened }),
    el("td.frt", { text: s.today.first_response_seconds === null ? "–" : duration(s.today.first_response_seconds) }),
    el("td.csat", { text: s.today.average_rating === null ? "–" : `${fmt(s.today.average_rating, 2)} (${s.today.ratings})` }),
    el("td.conversion", { text: s.today.conversion_rate === null ? "–" : pct(s.today.conversion_rate) }))));

  const channels = new Map();
  for (const s of shops) for (const [channel, n] of Object.entries(s.today.by_channel || {})) channels.set(channel, (channels.get(channel) || 0) + n);
  $("channel-rows").replaceChildren(...[...channels].sort((a, b) => b[1] - a[1]).map(([channel, n]) => el("tr", { dataset: { channel } },
    el("th", { scope: "row", text: t("channel_" + channel) }), el("td", { text: n }))));

  $("agent-rows").replaceChildren(...shops.flatMap((s) => s.agents.map((a) => el("tr",
    el("td", { text: `${a.name} (${a.id})` }),
    el("td", { text: s.name }),
    el("td", el("span.presence." + a.status, { text: t(a.status) })),
    el("td", { text: `${a.load} / ${a.max_concurrent}` })))));

  renderChart(frame);
}

function renderChart(frame) {
  const minute = Math.floor(frame.ts / 60000);
  const labels = frame.shops[0]?.last_hour.map((_, i) => {
    const d = new Date((minute - 59 + i) * 60000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }) || [];
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"];
  const datasets = frame.shops.map((s, i) => ({
    label: s.name, data: s.last_hour, backgroundColor: palette[i % palette.length], stack: "opened",
  }));
  if (typeof Chart === "undefined") return;
  if (!chart) {
    chart = new Chart($("chart"), {
      type: "bar",
      data: { labels, datasets },
      options: {
        animation: false, responsive: true,
        scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } },
      },
    });
  } else {
    chart.data.labels = labels;
    chart.data.datasets = datasets;
    chart.update();
  }
}
