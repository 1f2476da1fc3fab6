// The workbench's ticket desk (工单): the queue (breached first, then the soonest SLA
// due, live countdowns), the ticket view (thread of public replies and internal notes,
// fields, followers, history, merge). HTTP for reads and changes; the gateway's
// ``ticket`` frames (assigned, mentioned, updated, sla_breached) keep it current.
import { api, clockTime, el, t, uploadUrl } from "./common.js";

const $ = (id) => document.getElementById(id);
const ACTIVE = ["new", "open", "pending", "on_hold"];
const NEXT = {  // where a status may go by hand (octim/domain/tickets/model.py)
  new: ["open", "pending", "on_hold", "solved"], open: ["pending", "on_hold", "solved"],
  pending: ["open", "on_hold", "solved"], on_hold: ["open", "pending", "solved"],
  solved: ["open", "closed"], closed: [],
};
const METRICS = ["first_reply", "next_reply", "resolution"];

// The SLA clocks of a ticket: [{metric, state: "running"|"late"|"paused", ms}], the
// most urgent first. ``ms`` is what is left (running), how late (late) or spent (paused).
export function slaClocks(ticket, now) {
  const out = [];
  const metrics = ticket.sla?.metrics || {};
  for (const name of METRICS) {
    const m = metrics[name];
    if (!m) continue;
    if (m.state === "active" && m.due !== null && m.due !== undefined) {
      const left = m.due - now;
      out.push({ metric: name, state: left < 0 || m.breached_at ? "late" : "running", ms: Math.abs(left) });
    } else if (m.state === "paused") {
      out.push({ metric: name, state: "paused", ms: m.spent || 0 });
    }
  }
  const rank = { late: 0, running: 1, paused: 2 };
  out.sort((a, b) => rank[a.state] - rank[b.state] || (a.state === "late" ? b.ms - a.ms : a.ms - b.ms));
  return out;
}

function clockText(clock) {
  const s = Math.floor(clock.ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const span = h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`
    : `${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  return t(`sla_${clock.state}`, { metric: t("metric_" + clock.metric), span });
}

function clockNode(clock) {
  return el(`span.sla-clock.${clock.state}`, { dataset: { metric: clock.metric, state: clock.state }, text: clockText(clock) });
}

export class TicketDesk {
  constructor({ token, me, shops, toast }) {
    Object.assign(this, { token, me, shops, toast });
    this.list = [];
    this.selected = new Set(); // ticket ids ticked for a bulk change
    this.current = null;   // the open ticket (its full view)
    this.editing = null;   // the id of the ticket whose settings form has unsaved edits
    this.team = new Map(); // shop → {agents, groups}
    this.visible = false;
    this.alerts = 0;
    this.reloadTimer = null;
    const reload = () => this.reload();
    for (const id of ["tq-shop", "tq-status", "tq-who", "tq-sla"]) $(id).addEventListener("change", reload);
    $("tq-q").addEventListener("input", () => { clearTimeout(this.searchTimer); this.searchTimer = setTimeout(reload, 250); });
    $("tv-compose").addEventListener("submit", (event) => { event.preventDefault(); this.comment(); });
    $("tv-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); this.comment(); }
    });
    $("ts-form").addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
    // Unsaved edits survive a live refresh of the same ticket (a colleague's change, a frame).
    for (const kind of ["input", "change"]) $("ts-form").addEventListener(kind, () => { this.editing = this.current?.id; });
    $("ts-follow").addEventListener("click", () => this.toggleFollow());
    $("tv-merge").addEventListener("click", () => this.openMerge());
    $("tv-escalate").addEventListener("click", () => this.escalate());
    $("merge-cancel").addEventListener("click", () => $("merge-dialog").close());
    $("merge-form").addEventListener("submit", () => this.merge());
    $("tq-bulk-apply").addEventListener("click", () => this.bulk());
    this.fillShops();
    setInterval(() => this.tick(), 1000);
    setInterval(() => { if (this.visible) this.reload(); }, 30_000);
  }

  fillShops() {
    const select = $("tq-shop"), chosen = select.value;
    select.replaceChildren(...this.shops.filter((s) => s !== "*").map((s) => el("option", { value: s, text: s })));
    if (chosen) select.value = chosen;
  }

  show() {
    this.visible = true;
    this.alerts = 0;
    this.renderAlert();
    this.reload();
  }

  hide() { this.visible = false; }

  // A ``ticket`` frame from the gateway.
  onFrame(frame) {
    if (frame.event === "assigned") this.toast(t("ticket_assigned", { label: frame.label, by: frame.by }));
    else if (frame.event === "mentioned") this.toast(t("ticket_mentioned", { label: frame.label, by: frame.by, text: frame.excerpt }));
    else if (frame.event === "sla_breached") this.toast(t("ticket_breached", { label: frame.label, metric: t("metric_" + frame.metric) }));
    if (!this.visible && frame.event !== "updated" && frame.event !== "commented") { this.alerts += 1; this.renderAlert(); }
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      if (this.visible) this.reload();
      if (this.current && this.current.id === frame.ticket) this.open(frame.ticket);
    }, 150);
  }

  renderAlert() {
    $("ticket-alert").hidden = !this.alerts;
    $("ticket-alert").textContent = this.alerts || "";
  }

  async reload() {
    const shop = $("tq-shop").value;
    if (!shop) return;
    const params = new URLSearchParams({ shop, order: "urgent", limit: "200" });
    const status = $("tq-status").value;
    if (status && status !== "active") params.set("status", status);
    if ($("tq-who").value === "mine") params.set("assignee", this.me);
    if ($("tq-sla").value) params.set("sla", $("tq-sla").value);
    if ($("tq-q").value.trim()) params.set("q", $("tq-q").value.trim());
    let found;
    try { found = await api(this.token, `/api/tickets?${params}`); } catch (error) { return this.toast(error.message); }
    this.list = status === "active" ? found.filter((x) => ACTIVE.includes(x.status)) : found;
    const shown = new Set(this.list.map((x) => x.id));
    for (const id of [...this.selected]) if (!shown.has(id)) this.selected.delete(id);
    this.renderList();
    this.renderBulk(shop);
  }

  renderList() {
    const now = Date.now();
    $("ticket-list").replaceChildren(...this.list.map((x) => {
      const clock = slaClocks(x, now)[0];
      return el("li.inbox-item.ticket-item", {
        tabindex: 0, role: "button", "aria-current": this.current?.id === x.id ? "true" : null,
        dataset: { ticket: x.id, label: x.label },
        onclick: () => this.open(x.id), onkeydown: (event) => { if (event.key === "Enter") this.open(x.id); },
      },
      el("div.row",
        el("input.pick", { type: "checkbox", "aria-label": t("select_ticket", { label: x.label }), checked: this.selected.has(x.id) || null,
          onclick: (event) => { event.stopPropagation(); this.pick(x.id, event.target.checked); } }),
        el("strong", { text: x.label }), el("span.buyer", { text: x.subject }),
        el(`span.priority.p-${x.priority}`, { text: t("priority_" + x.priority) })),
      el("div.row", el("span.state", { text: t("tstatus_" + x.status) }),
        el("span.preview", { text: x.assignee || t("unassigned") }),
        clock ? clockNode(clock) : null));
    }));
    $("ticket-empty").hidden = this.list.length > 0;
  }

  pick(id, on) {
    if (on) this.selected.add(id); else this.selected.delete(id);
    this.renderBulk($("tq-shop").value);
  }

  async renderBulk(shop) {
    $("tq-bulk").hidden = !this.selected.size;
    $("tq-selected").textContent = t("n_selected", { n: this.selected.size });
    if (!this.selected.size) return;
    const team = await this.teamOf(shop);
    const chosen = $("tq-bulk-assignee").value;
    $("tq-bulk-assignee").replaceChildren(el("option", { value: "", text: t("bulk_assignee") }),
      ...team.agents.map((a) => el("option", { value: a.id, text: a.name || a.id })));
    $("tq-bulk-assignee").value = chosen;
  }

  // One change to every ticked ticket (a PATCH each; what the machine refuses is counted).
  async bulk() {
    const json = {};
    if ($("tq-bulk-status").value) json.status = $("tq-bulk-status").value;
    if ($("tq-bulk-assignee").value) json.assignee = $("tq-bulk-assignee").value;
    if (!Object.keys(json).length || !this.selected.size) return;
    let done = 0, failed = 0;
    for (const id of this.selected) {
      try { await api(this.token, `/api/tickets/${id}`, { method: "PATCH", json }); done += 1; } catch { failed += 1; }
    }
    this.toast(t("bulk_done", { done, failed }));
    this.selected.clear();
    $("tq-bulk-status").value = "";
    await this.reload();
    if (this.current) this.open(this.current.id);
  }

  tick() {  // the countdowns move every second without a request
    const now = Date.now();
    for (const node of document.querySelectorAll("#ticket-list .ticket-item")) {
      const ticket = this.list.find((x) => x.id === node.dataset.ticket);
      const clock = ticket && slaClocks(ticket, now)[0];
      const old = node.querySelector(".sla-clock");
      if (clock && old) old.replaceWith(clockNode(clock));
    }
    if (this.current) this.renderClocks(now);
  }

  async teamOf(shop) {
    if (!this.team.has(shop)) {
      const [team, settings] = await Promise.all([
        api(this.token, `/api/shops/${shop}/team`).catch(() => ({ agents: [], groups: [] })),
        api(this.token, `/api/shops/${shop}/ticket-settings`).catch(() => ({}))]);
      this.team.set(shop, { ...team, settings });
    }
    return this.team.get(shop);
  }

  async open(id) {
    let ticket, history;
    try {
      [ticket, history] = await Promise.all([api(this.token, `/api/tickets/${id}`), api(this.token, `/api/tickets/${id}/history`)]);
    } catch (error) { return this.toast(t("error_" + error.code, { message: error.message })); }
    const keepForm = this.editing === ticket.id && this.current?.id === ticket.id;
    if (!keepForm) this.editing = null;
    this.current = ticket;
    this.history = history;
    const team = await this.teamOf(ticket.shop);
    if (this.current !== ticket) return;
    this.renderTicket(team, keepForm);
    this.renderList();
  }

  renderTicket(team, keepForm = false) {
    const x = this.current;
    const closed = x.status === "closed";
    $("tv-title").textContent = `${x.label} ${x.subject}`;
    $("tv-sub").textContent = [x.shop, x.requester, t("tstatus_" + x.status), t("priority_" + x.priority),
      x.source?.kind ? t("source_" + x.source.kind) : null].filter(Boolean).join(" · ");
    $("tv-description").replaceChildren(x.description || "", this.files(x.attachments));
    $("tv-description").hidden = !x.description && !(x.attachments || []).length;
    $("tv-thread").replaceChildren(...x.thread.map((entry) => el(
      `li.msg.${entry.role === "buyer" ? "theirs" : entry.by === this.me ? "mine" : "staff"}.${entry.public ? "public" : "internal"}`,
      { dataset: { n: entry.n, public: entry.public ? "1" : "0" } },
      el("div.meta", { text: `${entry.by} · ${new Date(entry.at).toLocaleString()} · ${entry.public ? t("public") : t("internal_note")}` }),
      el("div.bubble", { text: entry.body }),
      this.files(entry.attachments))));
    $("tv-thread").scrollTop = $("tv-thread").scrollHeight;
    $("tv-input").disabled = $("tv-send").disabled = closed;
    $("tv-merge").disabled = closed;
    $("tv-escalate").disabled = closed || Boolean(x.escalated_to) || x.shop === "*";
    $("tv-public").disabled = closed || !x.requester;
    const following = (x.followers || []).includes(this.me);
    $("ts-follow").disabled = closed;
    $("ts-follow").textContent = following ? t("unfollow") : t("follow");
    $("ts-followers").textContent = (x.followers || []).join(", ");
    $("ts-facts").replaceChildren(...[
      ["ticket_order", x.order], ["sku", x.sku],
      ["merged_into", x.merged_into], ["follow_up_of", x.follow_up_of],
      ["escalated_to", x.escalated_to], ["escalated_from", x.escalated_from],
      ["created", new Date(x.created).toLocaleString()],
    ].filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { text: t(k) }), el("dd", { text: String(v) })]));
    $("ts-history").replaceChildren(...this.history.slice().reverse().map((h) => el("li", { dataset: { field: h.field } },
      el("span.sub", { text: `${clockTime(h.at)} ${h.by}` }), " ",
      el("span", { text: h.field === "created" ? fieldName(h.field)
        : `${fieldName(h.field)}: ${show(h.field, h.before)} → ${show(h.field, h.after)}` }))));
    this.renderClocks(Date.now());
    if (!keepForm) this.renderForm(team);
  }

  // The settings form: the status machine's next statuses, the shop's own names for them, fields.
  renderForm(team) {
    const x = this.current;
    const closed = x.status === "closed";
    const settings = team.settings || {};
    const reachable = [x.status, ...NEXT[x.status]];
    const custom = (settings.statuses || []).filter((s) => reachable.includes(s.maps_to));
    $("ts-status").replaceChildren(...reachable.map((s) => el("option", { value: s, text: t("tstatus_" + s) })),
      ...custom.map((s) => el("option", { value: `custom:${s.key}`, text: `${s.label} (${t("tstatus_" + s.maps_to)})` })));
    $("ts-status").value = x.custom_status && custom.some((s) => s.key === x.custom_status) ? `custom:${x.custom_status}` : x.status;
    $("ts-custom").replaceChildren(...(settings.fields || []).map((f) => {
      const value = (x.fields || {})[f.key];
      const input = f.type === "choice"
        ? el("select", { dataset: { field: f.key, type: f.type } }, el("option", { value: "", text: "—" }),
          ...f.choices.map((c) => el("option", { value: c, text: c })))
        : el("input", { dataset: { field: f.key, type: f.type }, type: f.type === "number" ? "number" : f.type === "date" ? "date" : "text", maxlength: 500 });
      input.value = value ?? "";
      input.disabled = closed;
      return el("label", el("span", { text: f.label + (f.required ? " *" : "") }), " ", input);
    }));
    $("ts-priority").value = x.priority;
    const agents = team.agents.map((a) => [a.id, a.name || a.id]);
    if (x.assignee && !agents.some(([id]) => id === x.assignee)) agents.push([x.assignee, x.assignee]);
    $("ts-assignee").replaceChildren(el("option", { value: "", text: t("unassigned") }),
      ...agents.map(([id, name]) => el("option", { value: id, text: name })));
    $("ts-assignee").value = x.assignee || "";
    $("ts-group").replaceChildren(el("option", { value: "", text: t("none") }),
      ...team.groups.map((g) => el("option", { value: g.id, text: g.name || g.id })));
    $("ts-group").value = x.group || "";
    $("ts-category").value = x.category || "";
    $("ts-tags").value = (x.tags || []).join(", ");
    for (const id of ["ts-status", "ts-priority", "ts-assignee", "ts-group", "ts-category", "ts-tags", "ts-save"]) $(id).disabled = closed;
  }

  // Attachments (uploads that came by email): fetched with the token, opened in a tab.
  files(list) {
    if (!list || !list.length) return null;
    return el("div.files", ...list.map((f) => el("button.link.file", {
      type: "button", text: `📎 ${f.name}`, title: `${f.mime} · ${Math.ceil(f.size / 1024)} KB`,
      onclick: async () => {
        try { window.open(await uploadUrl(this.token, `/api/uploads/${f.upload}`), "_blank", "noopener"); } catch (error) { this.toast(error.message); }
      },
    })));
  }

  renderClocks(now) {
    $("tv-sla").replaceChildren(...slaClocks(this.current, now).map(clockNode));
  }

  async comment() {
    const body = $("tv-input").value.trim();
    if (!this.current || !body) return;
    const publicReply = $("tv-public").checked;
    try {
      await api(this.token, `/api/tickets/${this.current.id}/comments`, { method: "POST", json: { body, public: publicReply } });
    } catch (error) { return this.toast(t("error_" + error.code, { message: error.message })); }
    $("tv-input").value = "";
    await this.open(this.current.id);
  }

  async change(json) {
    try {
      await api(this.token, `/api/tickets/${this.current.id}`, { method: "PATCH", json });
      this.editing = null;
    } catch (error) { this.toast(t("error_" + error.code, { message: error.message })); }
    await this.open(this.current.id);
    this.reload();
  }

  save() {
    const x = this.current;
    if (!x) return;
    const json = {};
    const chosen = $("ts-status").value, priority = $("ts-priority").value;
    const status = chosen.startsWith("custom:") ? x.status : chosen;
    if (chosen.startsWith("custom:") && chosen.slice(7) !== x.custom_status) json.custom_status = chosen.slice(7);
    const assignee = $("ts-assignee").value, group = $("ts-group").value;
    const category = $("ts-category").value.trim();
    const tags = $("ts-tags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
    if (!json.custom_status && status !== x.status) json.status = status;
    const custom = {};
    for (const input of $("ts-custom").querySelectorAll("[data-field]")) {
      const raw = input.value.trim();
      const value = raw === "" ? null : input.dataset.type === "number" ? Number(raw) : raw;
      if (value !== ((x.fields || {})[input.dataset.field] ?? null)) custom[input.dataset.field] = value;
    }
    if (Object.keys(custom).length) json.fields = { ...(x.fields || {}), ...custom };
    if (priority !== x.priority) json.priority = priority;
    if (assignee && assignee !== (x.assignee || "")) json.assignee = assignee;
    if (group && group !== (x.group || "")) json.group = group;
    if (category && category !== (x.category || "")) json.category = category;
    if (tags.join(",") !== (x.tags || []).join(",")) json.tags = tags;
    if (!Object.keys(json).length) return;
    return this.change(json);
  }

  toggleFollow() {
    const followers = new Set(this.current.followers || []);
    if (followers.has(this.me)) followers.delete(this.me); else followers.add(this.me);
    return this.change({ followers: [...followers] });
  }

  async openMerge() {
    const x = this.current;
    let candidates;
    try {
      candidates = await api(this.token, `/api/tickets?${new URLSearchParams({ shop: x.shop, requester: x.requester || "", limit: "50" })}`);
    } catch (error) { return this.toast(error.message); }
    const others = candidates.filter((c) => c.id !== x.id && c.status !== "closed");
    if (!others.length) return this.toast(t("merge_none"));
    $("merge-into").replaceChildren(...others.map((c) => el("option", { value: c.id, text: `${c.label} ${c.subject}` })));
    $("merge-dialog").showModal();
  }

  // 平台介入: the platform gets a linked ticket; this one waits on hold for it.
  async escalate() {
    const note = prompt(t("escalate_note"));
    if (note === null) return;
    try {
      const done = await api(this.token, `/api/tickets/${this.current.id}/escalate`, { method: "POST", json: { to_shop: "*", note } });
      this.toast(t("escalated", { label: done.escalated.label }));
    } catch (error) { return this.toast(t("error_" + error.code, { message: error.message })); }
    await this.open(this.current.id);
    this.reload();
  }

  async merge() {
    const into = $("merge-into").value;
    if (!into) return;
    try {
      await api(this.token, `/api/tickets/${this.current.id}/merge`, { method: "POST", json: { into } });
    } catch (error) { return this.toast(t("error_" + error.code, { message: error.message })); }
    await this.open(this.current.id);
    this.reload();
  }
}

function fieldName(field) {
  const key = "field_" + field, text = t(key);
  return text === key ? field : text;
}

const VOCABULARY = { status: "tstatus_", priority: "priority_", sla_breached: "metric_" };

function show(field, value) {
  if (value === null || value === undefined || value === "") return "—";
  if (VOCABULARY[field] && typeof value === "string") return t(VOCABULARY[field] + value);
  if (Array.isArray(value)) return value.join(", ") || "—";
  if (typeof value === "object") return value.label ? `${value.label} (${value.shop === "*" ? t("platform") : value.shop})` : JSON.stringify(value);
  return String(value);
}
