// Index pages: devices, enterprises, and an inspector's own work (tasks and visits).
import {get, getOptional, esc, when} from '/static/console/api.js';

export const devices = {async render(view) {
  const list = await get('/api/devices');
  view.dataset.page = 'devices';
  view.innerHTML = `<h2>Devices</h2><table class="grid"><thead><tr><th>device</th><th>enterprise</th><th>point</th>
    <th>interval</th><th>last reading</th><th>received</th><th class="n">readings</th></tr></thead><tbody>
    ${list.map(d => `<tr><td><a href="#/device/${encodeURIComponent(d.mn)}">${esc(d.mn)}</a>${d.active ? '' : ' <span class="error">revoked</span>'}</td>
      <td><a href="#/enterprise/${encodeURIComponent(d.enterprise_id)}">${esc(d.enterprise_id)}</a> ${esc(d.enterprise_name)}</td>
      <td>${esc(d.point_id)} ${esc(d.point_name)}</td><td class="n">${d.interval_s} s</td><td>${esc(when(d.last_ts)) || '<span class="muted">never</span>'}</td>
      <td>${esc(when(d.last_received_at))}</td><td class="n">${d.readings}</td></tr>`).join('')}</tbody></table>`;
}};

export const enterprises = {async render(view) {
  const list = await get('/api/enterprises');
  view.dataset.page = 'enterprises';
  view.innerHTML = `<h2>Enterprises</h2><table class="grid"><thead><tr><th>id</th><th>name</th><th>region</th>
    <th class="n">points</th><th class="n">devices</th><th class="n">open alerts</th></tr></thead><tbody>
    ${list.map(e => `<tr><td><a href="#/enterprise/${encodeURIComponent(e.id)}">${esc(e.id)}</a></td><td>${esc(e.name)}</td><td>${esc(e.region)}</td>
      <td class="n">${e.points}</td><td class="n">${e.devices}</td><td class="n ${e.open_alerts ? 'over' : ''}">${e.open_alerts}</td></tr>`).join('')}</tbody></table>`;
}};

// An inspector's day: the tasks given to them (GET /api/tasks, where the server has
// inspection tasks) and their own visits.
export const work = {async render(view, {me}) {
  const [tasks, visits] = await Promise.all([getOptional('/api/tasks').catch(() => null), get('/api/visits?limit=50')]);
  view.dataset.page = 'work';
  view.innerHTML = `<h2>My work</h2>
    <section id="tasks"><h3>My tasks</h3>${tasks === null ? '<p class="muted">Inspection tasks are not available on this server yet.</p>'
      : tasks.length ? `<table class="grid"><thead><tr><th>#</th><th>enterprise</th><th>state</th><th>what</th><th>due</th></tr></thead><tbody>
        ${tasks.map(t => `<tr><td>${esc(t.id)}</td><td>${t.enterprise_id ? `<a href="#/enterprise/${encodeURIComponent(t.enterprise_id)}">${esc(t.enterprise_id)}</a>` : ''}</td>
          <td>${esc(t.state ?? '')}</td><td>${esc(t.reason ?? '')}${t.advisory ? ' <span class="badge">advisory</span>' : ''}${t.case_id ? ` · case #${esc(t.case_id)}` : ''}</td><td>${esc(when(t.due_at))}</td></tr>`).join('')}</tbody></table>`
      : '<p class="muted">No task for you.</p>'}</section>
    <section><h3>My visits</h3>${visits.length ? `<ul>${visits.map(v => `<li><a href="#/visit/${v.id}">#${v.id}</a> ${esc(v.enterprise_id)} ·
      ${esc(when(v.checked_in_at))} ${v.checked_out_at ? '' : '<b>on site</b>'} — ${esc(v.purpose)}</li>`).join('')}</ul>` : '<p class="muted">None yet: scan a site\'s code to check in.</p>'}
      <p class="muted">Signed in as ${esc(me.user_id)}.</p></section>`;
}};
