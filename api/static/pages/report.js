"use strict";
// the monthly report page (report.html)
document.getElementById("print").addEventListener("click", () => print());
const q = new URLSearchParams(location.search);
const form = document.getElementById("pick");
form.enterprise.value = q.get("enterprise") || "";
form.month.value = q.get("month") || new Date().toISOString().slice(0, 7);
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;",
  ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const pct = x => x == null ? "—" : (100 * x).toFixed(1) + " %";
function table(head, rows, cls) {
  if (!rows.length) return "<p class='muted'>none</p>";
  return "<table><tr>" + head.map(h => `<th>${esc(h)}</th>`).join("") + "</tr>" +
    rows.map((r, i) => `<tr class="${cls ? cls(i) : ""}">` +
      r.map(c => `<td>${c}</td>`).join("") + "</tr>").join("") + "</table>";
}
async function show(e, m) {
  const auth = sessionStorage.getItem("offsite_token") || localStorage.getItem("offsite_token");
  const headers = auth ? {Authorization: "Bearer " + auth} : {};
  const url = `/api/reports/${encodeURIComponent(e)}/${encodeURIComponent(m)}`;
  document.getElementById("csv").href = url + "/csv";
  const resp = await fetch(url, {headers, credentials: "same-origin"});
  if (!resp.ok) {
    document.getElementById("error").textContent = `${resp.status}: ` +
      ((await resp.json().catch(() => ({}))).detail || "sign in to the console first");
    return;
  }
  const r = await resp.json(), s = r.summary;
  document.getElementById("error").textContent = "";
  document.getElementById("title").textContent = `— ${r.enterprise_id}, ${r.month}`;
  document.getElementById("meta").textContent = `generated ${r.generated_at}; months are UTC`;
  const vs = r.visits;
  document.getElementById("out").innerHTML =
    "<h2>Exceedances (valid hours with the hourly average over the limit)</h2>" +
    table(["device", "pollutant", "limit", "hours over", "valid hours", "worst hour avg"],
      r.exceedances.map(x => [esc(x.mn), esc(x.pollutant), x.limit_value,
        `<span class="${x.hours_over_limit ? "over" : ""}">${x.hours_over_limit}</span>`,
        x.valid_hours, x.worst_hour_avg == null ? "—" : x.worst_hour_avg.toFixed(2)])) +
    "<h2>Data capture</h2>" +
    table(["device", "pollutant", "valid values", "expected", "rate"],
      r.capture.map(x => [esc(x.mn), esc(x.pollutant), x.valid_values, x.expected_values,
        pct(x.capture_rate)])) +
    "<h2>Alerts by rule and how they ended</h2>" +
    table(["rule", "state", "alerts"], r.alerts.map(x => [esc(x.rule), esc(x.state), x.alerts])) +
    `<h2>Cases (${Object.entries(s.cases_by_state).map(([k, v]) => `${v} ${k}`).join(", ") || "none"};` +
    ` mean closed: ${s.case_mean_closed_h ?? "—"} h)</h2>` +
    table(["case", "title", "state", "opened", "closed", "hours", "escalated", "responses", "tasks"],
      r.cases.map(x => [x.id, esc(x.title), esc(x.state), esc(x.opened_at), esc(x.closed_at ?? "—"),
        x.duration_h, x.escalated ? "yes" : "", x.responses, x.tasks])) +
    `<h2>Visits (${Object.entries(s.visits_by_kind).map(([k, v]) => `${v} ${k}`).join(", ") || "none"};` +
    ` ${s.joint_visits} joint; rating ${s.rating_mean ?? "—"} of ${s.ratings};` +
    ` ${s.visit_refusals} refused by the frequency guard)</h2>` +
    table(["visit", "type", "inspectors", "in", "out", "justification", "findings", "rating"],
      vs.map(x => [x.id, esc(x.kind) + (x.advisory ?
          "<br><span class='tag'>ADVISORY — not a basis for enforcement</span>" : ""),
        esc(x.inspectors.join(", ")) + (x.departments.length > 1 ?
          `<br><span class="muted">${esc(x.departments.join(", "))}</span>` : ""),
        esc(x.checked_in_at), esc(x.checked_out_at ?? "—"), esc(x.justification ?? ""),
        esc(x.findings ?? ""), x.rating == null ? "—" : `${x.rating} ${esc(x.rating_comment ?? "")}`]),
      i => vs[i].advisory ? "advisory" : "");
}
form.addEventListener("submit", ev => {
  ev.preventDefault();
  history.replaceState(null, "", `?enterprise=${encodeURIComponent(form.enterprise.value)}` +
    `&month=${encodeURIComponent(form.month.value)}`);
  show(form.enterprise.value, form.month.value);
});
if (form.enterprise.value) show(form.enterprise.value, form.month.value);
