// The admin area: people and their roles, API keys (shown once), device onboarding and
// revocation, QR code revocation, and ingest health. Every change is audited server-side.
import {get, post, put, esc, t} from '/static/console/api.js';
import {roleName} from '/static/console/i18n.js';

const ROLES = ['admin', 'regulator', 'inspector', 'enterprise'];

function once(el, text) {
  el.innerHTML = `<p class="warn card"><b>${esc(t('admin.showonce'))}</b><br><code class="secret">${esc(text)}</code></p>`;
}

export async function render(view, ctx) {
  const {me} = ctx;
  if (me.role !== 'admin') { view.innerHTML = `<h2>${esc(t('nav.admin'))}</h2><p class="error">${esc(t('admin.only'))}</p>`; view.dataset.page = 'admin'; return; }
  const [users, devices, enterprises, health] = await Promise.all([
    get('/api/users'), get('/api/devices'), get('/api/enterprises'),
    fetch('/healthz').then(r => r.json()).catch(() => ({status: 'unreachable', ingest: []}))]);
  const points = (await Promise.all(enterprises.map(e => get(`/api/enterprises/${encodeURIComponent(e.id)}`).catch(() => null))))
    .filter(Boolean).flatMap(e => e.points.map(p => ({id: p.id, label: `${e.name} · ${p.name}`})));
  view.innerHTML = `<h2>${esc(t('nav.admin'))}</h2>
    <section id="health"><h3>${esc(t('admin.health'))}</h3>
      <p>${esc(t('admin.db'))}: <b>${esc(health.database || health.status)}</b> · ${esc(t('admin.feed'))}: <b>${esc(health.alert_feed || '—')}</b></p>
      ${(health.ingest || []).length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('admin.worker'))}</th><th>${esc(t('col.state'))}</th><th class="n">${esc(t('admin.lag'))}</th><th class="n">${esc(t('admin.heartbeat'))}</th></tr></thead><tbody>
        ${health.ingest.map(w => `<tr><td>${esc(w.worker_id ?? w.id ?? '')}</td><td class="${w.state === 'ok' ? '' : 'error'}">${esc(w.state)}</td><td class="n">${esc(w.lag_s ?? '')} s</td><td class="n">${esc(w.heartbeat_age_s)} s</td></tr>`).join('')}</tbody></table></div>`
        : `<p class="muted">${esc(t('admin.noworker'))}</p>`}</section>
    <section><h3>${esc(t('admin.users'))}</h3><div class="scroll" tabindex="0"><table class="grid" id="users"><thead><tr><th>${esc(t('col.name'))}</th><th>${esc(t('col.role'))}</th><th>${esc(t('col.enterprise'))}</th>
      <th>${esc(t('col.region'))}</th><th>${esc(t('col.department'))}</th><th>${esc(t('col.status'))}</th><th>${esc(t('col.actions'))}</th></tr></thead><tbody>
      ${users.map(u => `<tr data-user="${esc(u.id)}"><td>${esc(u.id)}</td><td>${esc(roleName(u.role))}</td><td>${esc(u.enterprise_id || '')}</td><td>${esc(u.region)}</td><td>${esc(u.department || '')}</td>
        <td>${u.active ? esc(t('admin.active')) : `<span class="muted">${esc(t('admin.inactive'))}</span>`}</td>
        <td class="acts">${u.active ? `<button type="button" data-key="${esc(u.id)}">${esc(t('admin.issuekey'))}</button> <button type="button" data-deactivate="${esc(u.id)}">${esc(t('admin.deactivate'))}</button>` : ''}</td></tr>`).join('')}
      </tbody></table></div><div id="keyout"></div>
      <form id="userform" class="stack"><h3>${esc(t('admin.adduser'))}</h3>
        <label for="uid">${esc(t('login.user'))}</label><input id="uid" name="id" required pattern="[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,63}">
        <label for="urole">${esc(t('col.role'))}</label><select id="urole" name="role">${ROLES.map(r => `<option value="${r}">${esc(roleName(r))}</option>`).join('')}</select>
        <label for="uent">${esc(t('col.enterprise'))}</label><select id="uent" name="enterprise_id"><option value="">—</option>${enterprises.map(e => `<option value="${esc(e.id)}">${esc(e.name)} (${esc(e.id)})</option>`).join('')}</select>
        <label for="uregion">${esc(t('col.region'))}</label><input id="uregion" name="region" maxlength="200">
        <label for="udept">${esc(t('col.department'))}</label><input id="udept" name="department" maxlength="200">
        <label for="upw">${esc(t('login.password'))} <span class="muted">${esc(t('admin.pwhint'))}</span></label><input id="upw" name="password" type="password" minlength="12" autocomplete="new-password">
        <p><button>${esc(t('common.save'))}</button></p><p class="error" role="status"></p></form></section>
    <section><h3>${esc(t('admin.devices'))}</h3><div class="scroll" tabindex="0"><table class="grid" id="devices"><thead><tr><th>${esc(t('col.device'))}</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.point'))}</th>
      <th>${esc(t('col.status'))}</th><th>${esc(t('col.actions'))}</th></tr></thead><tbody>
      ${devices.map(d => `<tr data-mn="${esc(d.mn)}"><td>${esc(d.mn)}</td><td>${esc(d.enterprise_name)}</td><td>${esc(d.point_name)}</td><td>${d.active ? esc(t('admin.active')) : esc(t('status.revoked'))}</td>
        <td class="acts">${d.active ? `<form class="revoke" data-mn="${esc(d.mn)}"><label><span class="sr">${esc(t('admin.revokereason'))}</span><input name="reason" required placeholder="${esc(t('admin.revokereason'))}"></label> <button>${esc(t('admin.revoke'))}</button><span class="error" role="status"></span></form>` : ''}</td></tr>`).join('')}
      </tbody></table></div>
      <form id="deviceform" class="stack"><h3>${esc(t('admin.onboard'))}</h3>
        <label for="dmn">MN</label><input id="dmn" name="mn" required pattern="[0-9A-Za-z]{1,24}">
        <label for="dpoint">${esc(t('col.point'))}</label><select id="dpoint" name="point_id" required>${points.map(p => `<option value="${esc(p.id)}">${esc(p.label)}</option>`).join('')}</select>
        <label for="dint">${esc(t('col.interval'))} (s)</label><input id="dint" name="interval_s" type="number" min="1" max="86400" value="60">
        <p><button>${esc(t('admin.onboardbtn'))}</button></p><div id="devout"></div><p class="error" role="status"></p></form></section>
    <section><h3>${esc(t('admin.qr'))}</h3><p class="muted">${esc(t('qr.revoked'))}</p><ul>
      ${enterprises.map(e => `<li data-enterprise="${esc(e.id)}">${esc(e.name)} <button type="button" data-qr="${esc(e.id)}">${esc(t('qr.revoke'))}</button> <span class="muted" role="status"></span></li>`).join('')}</ul></section>`;
  view.dataset.page = 'admin';  // drawn: what waits for the page sees it whole

  const again = () => render(view, ctx);
  const fail = (form, err) => { (form.querySelector('.error') || form).textContent = err.message; };
  view.querySelector('#userform').addEventListener('submit', async e => {
    e.preventDefault();
    const f = e.target.elements;
    try {
      await put('/api/users', {id: f.id.value, role: f.role.value, region: f.region.value, department: f.department.value,
        ...(f.enterprise_id.value ? {enterprise_id: f.enterprise_id.value} : {}), ...(f.password.value ? {password: f.password.value} : {})});
      again();
    } catch (err) { fail(e.target, err); }
  });
  view.querySelector('#deviceform').addEventListener('submit', async e => {
    e.preventDefault();
    const f = e.target.elements;
    try {
      const c = await post('/api/devices', {mn: f.mn.value, point_id: f.point_id.value, interval_s: Number(f.interval_s.value)});
      once(e.target.querySelector('#devout'), `MQTT ${c.mqtt_username} / ${c.mqtt_password} · ${c.topic}`);
    } catch (err) { fail(e.target, err); }
  });
  for (const form of view.querySelectorAll('form.revoke')) {
    form.addEventListener('submit', async e => {
      e.preventDefault();
      try { await post(`/api/devices/${encodeURIComponent(form.dataset.mn)}/revoke`, {reason: form.elements.reason.value}); again(); } catch (err) { fail(form, err); }
    });
  }
  for (const b of view.querySelectorAll('button[data-key]')) {
    b.addEventListener('click', async () => {
      try { const k = await post(`/api/users/${encodeURIComponent(b.dataset.key)}/api-keys`); once(view.querySelector('#keyout'), `${k.user_id}: ${k.token}`); } catch (err) { view.querySelector('#keyout').textContent = err.message; }
    });
  }
  for (const b of view.querySelectorAll('button[data-deactivate]')) {
    b.addEventListener('click', async () => {
      try { await post(`/api/users/${encodeURIComponent(b.dataset.deactivate)}/deactivate`); again(); } catch (err) { view.querySelector('#keyout').textContent = err.message; }
    });
  }
  for (const b of view.querySelectorAll('button[data-qr]')) {
    b.addEventListener('click', async () => {
      const out = b.nextElementSibling;
      try { await post(`/api/enterprises/${encodeURIComponent(b.dataset.qr)}/qr/revoke`); out.textContent = t('qr.revoked'); } catch (err) { out.textContent = err.message; }
    });
  }
  return null;
}
