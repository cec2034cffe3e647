// One alert: the evidence window drawn (values, permit limit, the triggering span
// shaded), the rule as it fired, the history of actions, linked visits and tasks.
import {get, getOptional, qs, esc, when, num, pollutant} from '/static/console/api.js';
import {actionButtons, act} from '/static/console/actions.js';
import {timeChart} from '/static/console/chart.js';

const t = iso => new Date(iso).getTime() / 1000;

function ruleTable(cfg) {
  if (!cfg) return '<p class="muted">No rule record for this alert.</p>';
  const rows = Object.entries(cfg).map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td><code>${esc(typeof v === 'object' ? JSON.stringify(v) : v)}</code></td></tr>`).join('');
  return `<table class="kv">${rows}</table>`;
}

async function draw(view, {me, args}) {
  const id = Number(args[0]);
  const a = await get(`/api/alerts/${id}`);
  const [visits, tasks] = await Promise.all([
    get(`/api/visits${qs({enterprise: a.enterprise_id, limit: 1000})}`).then(vs => vs.filter(v => v.alert_id === id)),
    getOptional(`/api/tasks${qs({alert_id: id})}`).catch(() => null)]);
  view.dataset.page = 'alert';
  const from = new Date(t(a.first_seen) * 1000 - 3600e3).toISOString(), to = new Date(t(a.last_seen) * 1000 + 3600e3).toISOString();
  view.innerHTML = `<h2>Alert #${a.id} <span class="sev ${esc(a.severity)}">${esc(a.severity)}</span>
      <span class="badge" id="state">${esc(a.state)}</span></h2>
    <p class="msg">${esc(a.message)}</p>
    <p><a href="#/enterprise/${encodeURIComponent(a.enterprise_id)}">${esc(a.enterprise_id)}</a> ·
      point ${esc(a.point_id)} · device <a href="#/device/${encodeURIComponent(a.mn)}?start=${encodeURIComponent(from)}&end=${encodeURIComponent(to)}${a.pollutant ? '&pollutant=' + encodeURIComponent(a.pollutant) : ''}">${esc(a.mn)}</a>
      · pollutant ${esc(pollutant(a.pollutant) || '—')} · first ${esc(when(a.first_seen))} · last ${esc(when(a.last_seen))}
      · ${a.count} hit(s) · worst ${num(a.worst_value)}${a.limit_value ? ` (limit ${num(a.limit_value)})` : ''}
      ${a.score !== null && a.score !== undefined ? ` · score ${num(a.score)}` : ''}
      ${a.suppressed ? `<br><span class="muted">muted: ${esc(a.suppressed)}</span>` : ''}</p>
    <p class="acts" id="acts">${actionButtons(a, me)}</p>
    <section><h3>Evidence</h3><div id="chart" class="chart"></div><p class="muted" id="chartnote"></p></section>
    <div class="cols">
      <section><h3>Rule as it fired</h3>${ruleTable(a.rule_config)}</section>
      <section><h3>History</h3><table class="grid"><thead><tr><th>when</th><th>what</th><th>who</th><th>note</th></tr></thead>
        <tbody id="events">${a.events.map(e => `<tr><td>${esc(when(e.at))}</td><td>${esc(e.kind)}</td><td>${esc(e.actor)}</td><td class="msg">${esc(e.note)}</td></tr>`).join('')}</tbody></table></section>
    </div>
    <div class="cols">
      <section><h3>Visits</h3>${visits.length ? `<ul>${visits.map(v => `<li><a href="#/visit/${v.id}">visit #${v.id}</a> ${esc(when(v.checked_in_at))} by ${esc(v.inspector_id)} — ${esc(v.purpose)}</li>`).join('')}</ul>` : '<p class="muted">No visit linked to this alert.</p>'}</section>
      <section><h3>Tasks</h3>${tasks === null ? '<p class="muted">Inspection tasks are not available on this server.</p>'
        : tasks.length ? `<ul>${tasks.map(k => `<li>task #${esc(k.id)} ${esc(k.state ?? k.status ?? '')} ${esc(k.title ?? k.purpose ?? '')}</li>`).join('')}</ul>` : '<p class="muted">No task for this alert.</p>'}</section>
    </div>`;

  const ev = a.evidence;
  const chart = view.querySelector('#chart');
  if (ev && ev.t.length) {
    // flag: one HJ 212 data flag per value, as a string ('NNNM…')
    const flags = ev.flag || '';
    const lines = [{label: pollutant(a.pollutant) || 'value', values: ev.v, color: '#1f5fbf'},
                   {label: 'flagged (not N)', values: ev.v.map((v, i) => (flags[i] || 'N') === 'N' ? null : v), color: '#c25400', pointsOnly: true}];
    if (a.limit_value) lines.push({label: 'permit limit', values: ev.t.map(() => a.limit_value), color: '#b00020', dash: [6, 4]});
    const spanFrom = Math.min(t(a.first_seen), ev.t[ev.t.length - 1]), spanTo = Math.max(t(a.last_seen), spanFrom);
    timeChart(chart, {x: ev.t, lines, spans: [{from: spanFrom, to: spanTo, severity: a.severity}], height: 280});
    view.querySelector('#chartnote').textContent = `${ev.t.length} values the rule saw; shaded: first to last hit.`;
  } else {
    chart.innerHTML = '<p class="muted">This rule keeps no value window (e.g. offline, capture).</p>';
  }

  const acts = view.querySelector('#acts');
  acts.addEventListener('click', async e => {
    const b = e.target.closest('button[data-act]');
    if (b && await act(b)) draw(view, {me, args});
  });
}

export async function render(view, ctx) {
  await draw(view, ctx);
  const id = Number(ctx.args[0]);
  let alive = true;
  const onAlert = e => { if (alive && e.detail.id === id) draw(view, ctx).catch(() => {}); };
  ctx.live.addEventListener('alert', onAlert);
  return () => { alive = false; ctx.live.removeEventListener('alert', onAlert); };
}
