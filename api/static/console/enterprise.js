// An enterprise (site): monitoring points and devices, open alerts, visit history, and
// the printable sheet of its signed QR code ("scan code to enter").
import {get, qs, esc, when} from '/static/console/api.js';

const ACTIVE = ['open', 'acknowledged', 'assigned'];
const mayPrint = me => ['admin', 'regulator', 'enterprise'].includes(me.role);

export async function render(view, {me, args}) {
  const id = args[0];
  const ent = await get(`/api/enterprises/${encodeURIComponent(id)}`);  // 404 if not theirs
  const [alerts, visits] = await Promise.all([
    get(`/api/alerts${qs({enterprise: id, state: ACTIVE, limit: 200})}`),
    get(`/api/visits${qs({enterprise: id, limit: 100})}`)]);
  view.dataset.page = 'enterprise';
  const limits = l => Object.entries(l).map(([p, v]) => `${esc(p)} ≤ ${v}`).join(', ') || '—';
  view.innerHTML = `<h2>${esc(ent.name)} <span class="muted">${esc(ent.id)}</span></h2>
    <p>Region ${esc(ent.region || '—')} · ${ent.points.length} monitoring point(s) ·
      ${ent.points.reduce((n, p) => n + p.devices.length, 0)} device(s) · ${alerts.length} open alert(s)
      ${mayPrint(me) ? ` · <a href="#/enterprise/${encodeURIComponent(id)}/qr">QR code sheet</a>` : ''}</p>
    <section><h3>Monitoring points and devices</h3><table class="grid"><thead><tr><th>point</th><th>kind</th><th>limits</th>
      <th>device</th><th>interval</th><th>last reading</th></tr></thead><tbody>
      ${ent.points.flatMap(p => (p.devices.length ? p.devices : [null]).map((d, i) => `<tr>
        ${i === 0 ? `<td rowspan="${Math.max(1, p.devices.length)}">${esc(p.id)} ${esc(p.name)}</td><td rowspan="${Math.max(1, p.devices.length)}">${esc(p.kind)}</td>
        <td rowspan="${Math.max(1, p.devices.length)}">${limits(p.limits)}</td>` : ''}
        ${d ? `<td><a href="#/device/${encodeURIComponent(d.mn)}">${esc(d.mn)}</a>${d.active ? '' : ' <span class="error">revoked</span>'}</td>
          <td class="n">${d.interval_s} s</td><td>${esc(when(d.last_ts)) || '<span class="muted">never</span>'}</td>` : '<td colspan="3" class="muted">no device</td>'}</tr>`)).join('')}
    </tbody></table></section>
    <section><h3>Open alerts</h3>${alerts.length ? `<table class="grid"><thead><tr><th>#</th><th>severity</th><th>state</th><th>rule</th><th>device</th><th>pollutant</th><th>last seen</th><th class="msg">message</th></tr></thead><tbody>
      ${alerts.map(a => `<tr><td><a href="#/alert/${a.id}">${a.id}</a></td><td class="sev ${esc(a.severity)}">${esc(a.severity)}</td><td>${esc(a.state)}</td>
        <td>${esc(a.rule)}</td><td>${esc(a.mn)}</td><td>${esc(a.pollutant)}</td><td>${esc(when(a.last_seen))}</td><td class="msg">${esc(a.message)}</td></tr>`).join('')}
      </tbody></table>` : '<p class="muted">None.</p>'}
      <p><a href="#/feed?enterprise=${encodeURIComponent(id)}">all alerts of this site in the feed</a></p></section>
    <section><h3>Visits</h3>${visits.length ? `<table class="grid"><thead><tr><th>#</th><th>inspector</th><th>purpose</th><th>in</th><th>out</th><th class="msg">findings</th></tr></thead><tbody>
      ${visits.map(v => `<tr><td><a href="#/visit/${v.id}">${v.id}</a></td><td>${esc(v.inspector_id)}</td><td>${esc(v.purpose)}</td>
        <td>${esc(when(v.checked_in_at))}</td><td>${esc(when(v.checked_out_at)) || '<i>on site</i>'}</td><td class="msg">${esc(v.findings)}</td></tr>`).join('')}
      </tbody></table>` : '<p class="muted">No visit yet.</p>'}
      <p><a class="csv" href="/api/export/visits.csv${qs({enterprise: id})}" download>visits as CSV</a></p></section>`;
}

// One page to print and post at the site's entrance: the signed QR code an inspector
// scans to check in (printing a new one after a revocation voids the old).
export async function renderQrSheet(view, {me, args}) {
  const id = args[0];
  const ent = await get(`/api/enterprises/${encodeURIComponent(id)}`);
  view.dataset.page = 'qr';
  if (!mayPrint(me)) {
    view.innerHTML = '<h2>QR code sheet</h2><p class="muted">Only the site, regulators and admins print its code.</p>';
    return;
  }
  view.innerHTML = `<p class="noprint"><a href="#/enterprise/${encodeURIComponent(id)}">← ${esc(ent.name)}</a>
      <button type="button" id="print">Print</button></p>
    <div class="qrsheet"><h1>${esc(ent.name)}</h1><p class="muted">${esc(ent.id)} · ${esc(ent.region)}</p>
      <img id="qr" alt="QR code to check in at ${esc(ent.name)}" src="/api/enterprises/${encodeURIComponent(id)}/qr.svg?ts=${Date.now()}">
      <p><b>Inspectors: scan this code to check in</b>. It opens Offsite's check-in page with this
        site's signed token; a visit is recorded with your name, the time and its purpose.</p>
      <p class="muted">Printed ${esc(new Date().toLocaleString())}. A revoked code stops working: print the new one.</p></div>`;
  view.querySelector('#print').onclick = () => window.print();
}
