// The anomaly feed: alerts newest first, live over SSE, filtered by severity, state,
// rule, enterprise and pollutant (kept in the address, so a filtered feed is a link),
// counts per state, actions in place, CSV of what is shown.
import {get, qs, esc, when, num, pollutant} from '/static/console/api.js';
import {actionButtons, act} from '/static/console/actions.js';

const STATES = ['open', 'acknowledged', 'assigned', 'resolved', 'cleared'];
const ACTIVE = ['open', 'acknowledged', 'assigned'];
const SEVERITIES = ['critical', 'major', 'warning', 'info'];
const FILTERS = ['severity', 'state', 'rule', 'enterprise', 'pollutant'];

function statesOf(state) { return state === 'active' ? ACTIVE : state ? [state] : []; }

function matches(a, f) {
  const states = statesOf(f.state);
  return (!states.length || states.includes(a.state)) && (!f.severity || a.severity === f.severity)
    && (!f.rule || a.rule === f.rule) && (!f.enterprise || a.enterprise_id === f.enterprise)
    && (!f.pollutant || a.pollutant === f.pollutant);
}

function select(name, label, options, value) {
  const opts = options.map(o => Array.isArray(o) ? o : [o, o])
    .map(([v, t]) => `<option value="${esc(v)}" ${v === value ? 'selected' : ''}>${esc(t)}</option>`).join('');
  return `<label>${esc(label)} <select name="${name}"><option value="">all</option>${opts}</select></label>`;
}

function row(a, me) {
  return `<td><a href="#/alert/${a.id}">${a.id}</a></td><td class="sev ${esc(a.severity)}">${esc(a.severity)}</td>
    <td class="state">${esc(a.state)}${a.state === 'assigned' && a.assignee ? ` → ${esc(a.assignee)}` : ''}${a.suppressed ? ' <span class="muted" title="' + esc(a.suppressed) + '">(muted)</span>' : ''}</td>
    <td>${esc(a.rule)}</td><td><a href="#/enterprise/${encodeURIComponent(a.enterprise_id)}">${esc(a.enterprise_id)}</a></td>
    <td><a href="#/device/${encodeURIComponent(a.mn)}">${esc(a.mn)}</a></td><td>${esc(pollutant(a.pollutant))}</td>
    <td>${esc(when(a.last_seen))}</td><td class="n">${a.count ?? ''}</td><td class="n">${num(a.worst_value)}</td>
    <td class="msg">${esc(a.message)}</td><td class="acts">${actionButtons(a, me)}</td>`;
}

export async function render(view, {me, params, live}) {
  const f = Object.fromEntries(FILTERS.map(k => [k, params.get(k) ?? (k === 'state' ? 'active' : '')]));
  const [facets, enterprises] = await Promise.all([
    get('/api/alert-facets'), me.role === 'enterprise' ? Promise.resolve([]) : get('/api/enterprises')]);
  const listQuery = {state: statesOf(f.state), severity: f.severity, rule: f.rule,
                     enterprise: f.enterprise, pollutant: f.pollutant};
  view.dataset.page = 'feed';
  view.innerHTML = `<h2>Anomaly feed</h2>
    <form id="filters" class="filters">
      ${select('severity', 'severity', SEVERITIES, f.severity)}
      ${select('state', 'state', [['active', 'active (open, ack., assigned)'], ...STATES], f.state)}
      ${select('rule', 'rule', facets.rule, f.rule)}
      ${me.role === 'enterprise' ? '' : select('enterprise', 'enterprise', enterprises.map(e => [e.id, `${e.id} ${e.name}`]), f.enterprise)}
      ${select('pollutant', 'pollutant', facets.pollutant.filter(Boolean).map(p => [p, pollutant(p)]), f.pollutant)}
      <a class="csv" href="/api/export/alerts.csv${qs(listQuery)}" download>CSV</a>
    </form>
    <p id="counts" class="counts"></p>
    <table class="grid"><thead><tr><th>#</th><th>severity</th><th>state</th><th>rule</th><th>enterprise</th>
      <th>device</th><th>pollutant</th><th>last seen</th><th>count</th><th>worst</th><th class="msg">message</th><th></th></tr></thead>
    <tbody id="rows"></tbody></table><p id="empty" class="muted" hidden>No alert matches.</p>`;
  const form = view.querySelector('#filters');
  form.addEventListener('change', () => {
    const p = new URLSearchParams();
    for (const k of FILTERS) { const v = form.elements[k]?.value; if (v) p.set(k, v); }
    if (!form.elements.state.value) p.set('state', '');
    location.hash = `#/feed?${p}`;
  });

  const tbody = view.querySelector('#rows');
  const rows = new Map();  // id → {tr, a}
  const empty = () => { view.querySelector('#empty').hidden = rows.size > 0; };
  function draw(a, {fresh = false, top = false} = {}) {
    let r = rows.get(a.id);
    if (!r) { r = {tr: document.createElement('tr'), a: {}}; rows.set(a.id, r); top = true; }
    Object.assign(r.a, a);
    r.tr.dataset.id = a.id; r.tr.dataset.state = r.a.state; r.tr.dataset.severity = r.a.severity;
    r.tr.innerHTML = row(r.a, me);
    if (top) tbody.prepend(r.tr);
    if (fresh) { r.tr.classList.remove('new'); void r.tr.offsetWidth; r.tr.classList.add('new'); }
    empty();
  }
  function drop(id) { rows.get(id)?.tr.remove(); rows.delete(id); empty(); }

  let countTimer = null;
  async function counts() {
    const c = await get(`/api/alert-counts${qs({severity: f.severity, rule: f.rule, enterprise: f.enterprise, pollutant: f.pollutant})}`);
    view.querySelector('#counts').innerHTML = STATES.map(s =>
      `<a href="#/feed${qs({...Object.fromEntries(FILTERS.map(k => [k, f[k]])), state: s})}" class="count ${s}" data-state="${s}">${s} <b>${c[s] || 0}</b></a>`).join(' ');
  }
  const recount = () => { clearTimeout(countTimer); countTimer = setTimeout(counts, 400); };

  const initial = await get(`/api/alerts${qs({...listQuery, limit: 300})}`);
  for (const a of initial.reverse()) draw(a);
  empty();
  await counts();

  tbody.addEventListener('click', async e => {
    const b = e.target.closest('button[data-act]');
    if (!b) return;
    const updated = await act(b);
    if (updated) { if (matches(updated, f)) draw(updated); else drop(updated.id); recount(); }
  });
  const onAlert = e => {
    const a = e.detail, known = rows.get(a.id);
    const merged = {...(known?.a || {}), ...a};
    if (matches(merged, f)) draw(merged, {fresh: true, top: ['opened', 'reopened', 'updated'].includes(a.event)});
    else if (known) drop(a.id);
    recount();
  };
  live.addEventListener('alert', onAlert);
  return () => { live.removeEventListener('alert', onAlert); clearTimeout(countTimer); };
}
