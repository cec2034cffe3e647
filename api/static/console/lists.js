// Index pages: devices (with a status), enterprises, and an inspector's own work (tasks,
// alerts assigned to them, visits).
import {get, getOptional, esc, when, t, enterpriseNames} from '/static/console/api.js';
import {ruleName, alertMessage, severityName, stateName, countdown} from '/static/console/i18n.js';
import {deviceLink} from '/static/console/feed.js';

// online / offline / never / revoked, from the last reading's arrival and the device's
// interval (offline after 3 missed intervals, at least 5 minutes); now is passed in
export function deviceStatus(d, nowMs) {
  if (!d.active) return 'revoked';
  const last = d.last_received_at || d.last_ts;
  if (!last) return 'never';
  const silentS = (nowMs - new Date(last).getTime()) / 1000;
  return silentS > Math.max(3 * d.interval_s, 300) ? 'offline' : 'online';
}
export const statusBadge = s => `<span class="status ${s}" data-status="${s}">${esc(t(`status.${s}`))}</span>`;

export const devices = {async render(view) {
  const list = await get('/api/devices');
  const now = Date.now();
  view.dataset.page = 'devices';
  view.innerHTML = `<h2>${esc(t('nav.devices'))}</h2><div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('col.status'))}</th><th>${esc(t('col.device'))}</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.point'))}</th>
    <th class="n">${esc(t('col.interval'))}</th><th>${esc(t('device.lastreading'))} <span class="muted">${esc(t('time.zone'))}</span></th><th class="n">${esc(t('device.readings'))}</th></tr></thead><tbody>
    ${list.map(d => `<tr data-mn="${esc(d.mn)}"><td>${statusBadge(deviceStatus(d, now))}</td><td><a href="#/device/${encodeURIComponent(d.mn)}">${esc(d.mn)}</a></td>
      <td><a href="#/enterprise/${encodeURIComponent(d.enterprise_id)}">${esc(d.enterprise_name)}</a></td>
      <td>${esc(d.point_name)}</td><td class="n">${esc(t('device.every', {s: d.interval_s}))}</td><td>${esc(when(d.last_ts)) || `<span class="muted">${esc(t('common.never'))}</span>`}</td>
      <td class="n">${d.readings}</td></tr>`).join('')}</tbody></table></div>`;
}};

export const enterprises = {async render(view) {
  const list = await get('/api/enterprises');
  view.dataset.page = 'enterprises';
  view.innerHTML = `<h2>${esc(t('nav.enterprises'))}</h2><div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('col.name'))}</th><th>${esc(t('col.region'))}</th>
    <th class="n">${esc(t('enterprise.npoints'))}</th><th class="n">${esc(t('enterprise.ndevices'))}</th><th class="n">${esc(t('enterprise.openalerts'))}</th></tr></thead><tbody>
    ${list.map(e => `<tr><td><a href="#/enterprise/${encodeURIComponent(e.id)}">${esc(e.name)}</a> <span class="muted">${esc(e.id)}</span></td><td>${esc(e.region)}</td>
      <td class="n">${e.points}</td><td class="n">${e.devices}</td><td class="n ${e.open_alerts ? 'over' : ''}">${e.open_alerts}</td></tr>`).join('')}</tbody></table></div>`;
}};

// An inspector's day: the tasks given to them, the alerts assigned to them and their own
// visits (the scan page checks in for a task).
export const work = {async render(view, {me}) {
  const [tasks, alerts, visits, names] = await Promise.all([
    getOptional('/api/tasks?state=open').catch(() => null),
    get(`/api/alerts?assignee=${encodeURIComponent(me.user_id)}&state=assigned&limit=200`).catch(() => []),
    get('/api/visits?limit=50'), enterpriseNames()]);
  view.dataset.page = 'work';
  view.innerHTML = `<h2>${esc(t('nav.work'))}</h2>
    <section id="tasks"><h3>${esc(t('work.tasks'))}</h3>${tasks === null ? `<p class="muted">${esc(t('tasks.unavailable'))}</p>`
      : tasks.length ? `<ul class="cards">${tasks.map(k => `<li class="card" data-task="${k.id}"><b>${esc(t('task.title', {id: k.id}))}</b>
          ${k.advisory ? `<span class="badge">${esc(t('task.advisory'))}</span>` : ''}
          <a href="#/enterprise/${encodeURIComponent(k.enterprise_id)}">${esc(names.get(k.enterprise_id) || k.enterprise_id)}</a><br>${esc(k.reason)}
          ${k.case_id ? `<br><a href="#/case/${k.case_id}">${esc(t('case.title', {id: k.case_id}))}</a>` : ''}
          ${k.due_at ? `<br><span class="${new Date(k.due_at) < new Date() ? 'error' : 'muted'}">${esc(t('task.due'))} ${esc(when(k.due_at, {seconds: false}))} · ${esc(countdown(k.due_at))}</span>` : ''}</li>`).join('')}</ul>`
      : `<p class="muted">${esc(t('work.notask'))}</p>`}</section>
    <section id="assigned"><h3>${esc(t('work.alerts'))}</h3>${alerts.length ? `<ul class="cards">${alerts.map(a => `<li class="card" data-alert="${a.id}">
        <a href="#/alert/${a.id}">#${a.id}</a> <span class="sev ${esc(a.severity)}">${esc(severityName(a.severity))}</span> ${esc(ruleName(a.rule))}<br>
        <a href="#/enterprise/${encodeURIComponent(a.enterprise_id)}">${esc(a.enterprise_name || a.enterprise_id)}</a> · <a href="${deviceLink(a)}">${esc(a.point_name || a.mn)}</a><br>
        ${esc(alertMessage(a))} <span class="muted">${esc(when(a.last_seen, {seconds: false}))}</span></li>`).join('')}</ul>`
      : `<p class="muted">${esc(t('work.noalert'))}</p>`}</section>
    <section><h3>${esc(t('work.visits'))}</h3>${visits.length ? `<ul>${visits.map(v => `<li><a href="#/visit/${v.id}">#${v.id}</a> ${esc(names.get(v.enterprise_id) || v.enterprise_id)} ·
      ${esc(when(v.checked_in_at, {seconds: false}))} ${v.checked_out_at ? '' : `<b>${esc(t('visit.onsite'))}</b>`} — ${esc(v.purpose)}</li>`).join('')}</ul>` : `<p class="muted">${esc(t('work.novisit'))}</p>`}
      <p class="muted">${esc(t('work.signedin', {user: me.user_id}))} · ${esc(stateName('assigned'))}</p></section>`;
}};
