// The anomaly feed: alerts newest first, live over SSE, filtered by severity, state,
// rule, enterprise and pollutant (kept in the address, so a filtered feed is a link),
// counts per state, actions in place, CSV of what is shown.
import {get, post, qs, esc, when, pollutant, withUnit, t} from '/static/console/api.js';
import {ruleName, alertMessage, severityName, stateName} from '/static/console/i18n.js';
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
    .map(([v, text]) => `<option value="${esc(v)}" ${v === value ? 'selected' : ''}>${esc(text)}</option>`).join('');
  return `<label>${esc(label)} <select name="${name}"><option value="">${esc(t('feed.all'))}</option>${opts}</select></label>`;
}

// the device page on the alert's own pollutant (not the device's first one)
export const deviceLink = a => `#/device/${encodeURIComponent(a.mn)}${a.pollutant ? '?pollutant=' + encodeURIComponent(a.pollutant) : ''}`;

const STAFF = ['admin', 'regulator'];

function row(a, me) {
  const pick = STAFF.includes(me.role) ? `<label><span class="sr">${esc(t('feed.select', {id: a.id}))}</span><input type="checkbox" data-pick="${a.id}" data-enterprise="${esc(a.enterprise_id)}"></label> ` : '';
  return `<td>${pick}<a href="#/alert/${a.id}">${a.id}</a></td><td class="sev ${esc(a.severity)}">${esc(severityName(a.severity))}</td>
    <td class="state" data-assignee="${esc(a.assignee || '')}">${esc(stateName(a.state))}${a.state === 'assigned' && a.assignee ? ` → ${esc(a.assignee)}` : ''}${a.suppressed ? ' <span class="muted" title="' + esc(a.suppressed) + '">' + esc(t('feed.muted')) + '</span>' : ''}</td>
    <td data-rule="${esc(a.rule)}">${esc(ruleName(a.rule))}</td><td data-enterprise="${esc(a.enterprise_id)}"><a href="#/enterprise/${encodeURIComponent(a.enterprise_id)}">${esc(a.enterprise_name || a.enterprise_id)}</a></td>
    <td data-mn="${esc(a.mn)}"><a href="${deviceLink(a)}" title="${esc(a.mn)}">${esc(a.point_name || a.mn)}</a></td><td>${esc(pollutant(a.pollutant))}</td>
    <td>${esc(when(a.last_seen))}</td><td class="n">${a.count ?? ''}</td><td class="n">${esc(withUnit(a.worst_value, a.pollutant))}</td>
    <td class="msg" title="${esc(a.message)}">${esc(alertMessage(a))}</td><td class="acts">${actionButtons(a, me)}</td>`;
}

export async function render(view, {me, params, live}) {
  const f = Object.fromEntries(FILTERS.map(k => [k, params.get(k) ?? (k === 'state' ? 'active' : '')]));
  const [facets, enterprises] = await Promise.all([
    get('/api/alert-facets'), me.role === 'enterprise' ? Promise.resolve([]) : get('/api/enterprises')]);
  const listQuery = {state: statesOf(f.state), severity: f.severity, rule: f.rule,
                     enterprise: f.enterprise, pollutant: f.pollutant};
  view.dataset.page = 'feed';
  view.innerHTML = `<h2>${esc(t('feed.title'))}</h2>
    <form id="filters" class="filters">
      ${select('severity', t('col.severity'), SEVERITIES.map(s => [s, severityName(s)]), f.severity)}
      ${select('state', t('col.state'), [['active', t('feed.active')], ...STATES.map(s => [s, stateName(s)])], f.state)}
      ${select('rule', t('col.rule'), facets.rule.map(r => [r, ruleName(r)]), f.rule)}
      ${me.role === 'enterprise' ? '' : select('enterprise', t('col.enterprise'), enterprises.map(e => [e.id, `${e.name} (${e.id})`]), f.enterprise)}
      ${select('pollutant', t('col.pollutant'), facets.pollutant.filter(Boolean).map(p => [p, pollutant(p)]), f.pollutant)}
      <a class="csv" href="/api/export/alerts.csv${qs(listQuery)}" download>${esc(t('common.csv'))}</a>
    </form>
    <p id="counts" class="counts"></p>
    ${STAFF.includes(me.role) ? `<p id="casebar"><button type="button" id="opencase" disabled>${esc(t('feed.opencase'))}</button> <span id="picked" class="muted"></span>
      <span id="caseerr" class="error" role="status"></span></p>` : ''}
    <div class="scroll" tabindex="0"><table class="grid feed"><thead><tr><th>#</th><th>${esc(t('col.severity'))}</th><th>${esc(t('col.state'))}</th><th>${esc(t('col.rule'))}</th><th>${esc(t('col.enterprise'))}</th>
      <th>${esc(t('col.device'))}</th><th>${esc(t('col.pollutant'))}</th><th>${esc(t('col.lastseen'))} <span class="muted">${esc(t('time.zone'))}</span></th><th>${esc(t('col.count'))}</th><th>${esc(t('col.worst'))}</th><th class="msg">${esc(t('col.message'))}</th><th class="acts">${esc(t('col.actions'))}</th></tr></thead>
    <tbody id="rows"></tbody></table></div><p id="empty" class="muted" hidden>${esc(t('feed.empty'))}</p>`;
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
    const picked = r.tr.querySelector('input[data-pick]')?.checked;  // a live update keeps the selection
    r.tr.innerHTML = row(r.a, me);
    if (picked) r.tr.querySelector('input[data-pick]').checked = true;
    if (top) tbody.prepend(r.tr);
    if (fresh) { r.tr.classList.remove('new'); void r.tr.offsetWidth; r.tr.classList.add('new'); }
    empty();
  }
  function drop(id) { rows.get(id)?.tr.remove(); rows.delete(id); empty(); }

  let countTimer = null;
  async function counts() {
    const c = await get(`/api/alert-counts${qs({severity: f.severity, rule: f.rule, enterprise: f.enterprise, pollutant: f.pollutant})}`);
    view.querySelector('#counts').innerHTML = STATES.map(s =>
      `<a href="#/feed${qs({...Object.fromEntries(FILTERS.map(k => [k, f[k]])), state: s})}" class="count ${s}" data-state="${s}">${esc(stateName(s))} <b>${c[s] || 0}</b></a>`).join(' ');
  }
  // a recount that fails (the session just ended: the stream's end takes the person to
  // sign-in) keeps the counts shown rather than throwing
  const recount = () => { clearTimeout(countTimer); countTimer = setTimeout(() => counts().catch(() => {}), 400); };

  const initial = await get(`/api/alerts${qs({...listQuery, limit: 300})}`);
  for (const a of initial.reverse()) draw(a);
  empty();
  await counts();

  // open a case from the selected alerts (one enterprise per case: the server says so otherwise)
  const picked = () => [...tbody.querySelectorAll('input[data-pick]:checked')].map(i => Number(i.dataset.pick));
  const caseButton = view.querySelector('#opencase');
  tbody.addEventListener('change', () => {
    if (!caseButton) return;
    const n = picked().length;
    caseButton.disabled = !n;
    view.querySelector('#picked').textContent = n ? t('feed.selected', {n}) : '';
  });
  caseButton?.addEventListener('click', async () => {
    caseButton.disabled = true;
    try {
      const c = await post('/api/cases', {alert_ids: picked()});
      location.hash = `#/case/${c.id}`;
    } catch (err) { view.querySelector('#caseerr').textContent = err.message; caseButton.disabled = false; }
  });

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
