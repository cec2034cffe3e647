// One alert: the evidence window drawn (values, permit limit, the triggering span
// shaded), the rule as it fired, the history of actions, linked visits and tasks.
import {get, getOptional, qs, esc, when, pollutant, withUnit, unitOf, t} from '/static/console/api.js';
import {ruleName, alertMessage, severityName, stateName} from '/static/console/i18n.js';
import {actionButtons, act} from '/static/console/actions.js';
import {timeChart} from '/static/console/chart.js';

const secs = iso => new Date(iso).getTime() / 1000;

function ruleTable(cfg) {
  if (!cfg) return `<p class="muted">${esc(t('alert.norule'))}</p>`;
  const rows = Object.entries(cfg).map(([k, v]) =>
    `<tr><th>${esc(k)}</th><td><code>${esc(typeof v === 'object' ? JSON.stringify(v) : v)}</code></td></tr>`).join('');
  return `<table class="kv">${rows}</table>`;
}

// an alert event's kind in words ('acknowledged', 'assigned'…)
const eventName = k => (t(`event.${k}`) === `event.${k}` ? k : t(`event.${k}`));

async function draw(view, {me, args}) {
  const id = Number(args[0]);
  const a = await get(`/api/alerts/${id}`);
  const [visits, tasks] = await Promise.all([
    get(`/api/visits${qs({enterprise: a.enterprise_id, limit: 1000})}`).then(vs => vs.filter(v => v.alert_id === id)),
    getOptional(`/api/tasks${qs({alert_id: id})}`).catch(() => null)]);
  view.dataset.page = 'alert';
  const from = new Date(secs(a.first_seen) * 1000 - 3600e3).toISOString(), to = new Date(secs(a.last_seen) * 1000 + 3600e3).toISOString();
  const unit = unitOf(a.pollutant);
  view.innerHTML = `<h2>${esc(t('alert.title', {id: a.id}))} <span class="sev ${esc(a.severity)}">${esc(severityName(a.severity))}</span>
      <span class="badge" id="state" data-state="${esc(a.state)}">${esc(stateName(a.state))}</span></h2>
    <p class="msg" title="${esc(a.message)}">${esc(ruleName(a.rule))} — ${esc(alertMessage(a))}</p>
    <dl class="facts">
      <dt>${esc(t('col.enterprise'))}</dt><dd><a href="#/enterprise/${encodeURIComponent(a.enterprise_id)}">${esc(a.enterprise_name || a.enterprise_id)}</a></dd>
      <dt>${esc(t('col.point'))}</dt><dd>${esc(a.point_name || a.point_id)}</dd>
      <dt>${esc(t('col.device'))}</dt><dd><a id="devicelink" href="#/device/${encodeURIComponent(a.mn)}${qs({pollutant: a.pollutant, start: from, end: to})}">${esc(a.mn)}</a></dd>
      <dt>${esc(t('col.pollutant'))}</dt><dd>${esc(pollutant(a.pollutant) || '—')}</dd>
      <dt>${esc(t('alert.first'))}</dt><dd>${esc(when(a.first_seen, {zone: true}))}</dd>
      <dt>${esc(t('alert.last'))}</dt><dd>${esc(when(a.last_seen, {zone: true}))}</dd>
      <dt>${esc(t('col.count'))}</dt><dd>${a.count}</dd>
      <dt>${esc(t('col.worst'))}</dt><dd>${esc(withUnit(a.worst_value, a.pollutant))}${a.limit_value ? ` (${esc(t('alert.limit'))} ${esc(withUnit(a.limit_value, a.pollutant))})` : ''}</dd>
      ${a.score !== null && a.score !== undefined ? `<dt>${esc(t('alert.score'))}</dt><dd>${esc(Number(a.score).toPrecision(3))}</dd>` : ''}
      ${a.assignee ? `<dt>${esc(t('alert.assignee'))}</dt><dd>${esc(a.assignee)}</dd>` : ''}
      ${a.suppressed ? `<dt>${esc(t('feed.muted'))}</dt><dd>${esc(a.suppressed)}</dd>` : ''}
    </dl>
    <p class="acts" id="acts">${actionButtons(a, me)}</p>
    <section><h3>${esc(t('alert.evidence'))}</h3><div id="chart" class="chart"></div><p class="muted" id="chartnote"></p></section>
    <div class="cols">
      <section><h3>${esc(t('alert.rule'))}</h3>${ruleTable(a.rule_config)}</section>
      <section><h3>${esc(t('alert.history'))}</h3><div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('col.when'))} <span class="muted">${esc(t('time.zone'))}</span></th><th>${esc(t('col.what'))}</th><th>${esc(t('col.who'))}</th><th>${esc(t('col.note'))}</th></tr></thead>
        <tbody id="events">${a.events.map(e => `<tr data-kind="${esc(e.kind)}"><td>${esc(when(e.at))}</td><td>${esc(eventName(e.kind))}</td><td>${esc(e.actor)}</td><td class="msg">${esc(e.note)}</td></tr>`).join('')}</tbody></table></div></section>
    </div>
    <div class="cols">
      <section><h3>${esc(t('nav.visits'))}</h3>${visits.length ? `<ul>${visits.map(v => `<li><a href="#/visit/${v.id}">${esc(t('visit.title', {id: v.id}))}</a> ${esc(when(v.checked_in_at))} · ${esc(v.inspector_id)} — ${esc(v.purpose)}</li>`).join('')}</ul>` : `<p class="muted">${esc(t('alert.novisit'))}</p>`}</section>
      <section><h3>${esc(t('nav.tasks'))}</h3>${tasks === null ? `<p class="muted">${esc(t('tasks.unavailable'))}</p>`
        : tasks.length ? `<ul>${tasks.map(k => `<li>${esc(t('task.title', {id: k.id}))} ${esc(t(`taskstate.${k.state}`))} · ${esc(k.assignee)} — ${esc(k.reason ?? '')}</li>`).join('')}</ul>` : `<p class="muted">${esc(t('alert.notask'))}</p>`}</section>
    </div>`;

  const ev = a.evidence;
  const chart = view.querySelector('#chart');
  if (ev && ev.t.length) {
    // flag: one HJ 212 data flag per value, as a string ('NNNM…')
    const flags = ev.flag || '';
    const label = `${pollutant(a.pollutant) || t('chart.value')}${unit ? ` (${unit})` : ''}`;
    const lines = [{label, values: ev.v, color: '#1f5fbf'},
                   {label: t('chart.flagged'), values: ev.v.map((v, i) => (flags[i] || 'N') === 'N' ? null : v), color: '#c25400', pointsOnly: true}];
    if (a.limit_value) lines.push({label: t('chart.limit'), values: ev.t.map(() => a.limit_value), color: '#b00020', dash: [6, 4]});
    const spanFrom = Math.min(secs(a.first_seen), ev.t[ev.t.length - 1]), spanTo = Math.max(secs(a.last_seen), spanFrom);
    timeChart(chart, {x: ev.t, lines, spans: [{from: spanFrom, to: spanTo, severity: a.severity}], height: 280, yLabel: unit});
    view.querySelector('#chartnote').textContent = t('alert.chartnote', {n: ev.t.length});
  } else {
    chart.innerHTML = `<p class="muted">${esc(t('alert.nowindow'))}</p>`;
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
