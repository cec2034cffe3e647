// An enterprise (site): monitoring points and devices, open alerts, visit history, and
// the printable sheet of its signed QR code ("scan code to enter").
import {get, qs, esc, when, pollutant, withUnit, t} from '/static/console/api.js';
import {ruleName, alertMessage, severityName, stateName} from '/static/console/i18n.js';
import {deviceLink} from '/static/console/feed.js';

const ACTIVE = ['open', 'acknowledged', 'assigned'];
const mayPrint = me => ['admin', 'regulator', 'enterprise'].includes(me.role);

export async function render(view, {me, args}) {
  const id = args[0];
  const ent = await get(`/api/enterprises/${encodeURIComponent(id)}`);  // 404 if not theirs
  const [alerts, visits] = await Promise.all([
    get(`/api/alerts${qs({enterprise: id, state: ACTIVE, limit: 200})}`),
    get(`/api/visits${qs({enterprise: id, limit: 100})}`)]);
  view.dataset.page = 'enterprise';
  const limits = l => Object.entries(l).map(([p, v]) => `${esc(pollutant(p))} ≤ ${esc(withUnit(v, p))}`).join('<br>') || '—';
  const devices = ent.points.reduce((n, p) => n + p.devices.length, 0);
  view.innerHTML = `<h2>${esc(ent.name)} <span class="muted">${esc(ent.id)}</span></h2>
    <p>${esc(t('enterprise.summary', {region: ent.region || '—', points: ent.points.length, devices, alerts: alerts.length}))}
      ${mayPrint(me) ? ` · <a href="#/enterprise/${encodeURIComponent(id)}/qr">${esc(t('enterprise.qr'))}</a>` : ''}
      ${me.role !== 'inspector' ? ` · <a href="/api/reports/page${qs({enterprise: id})}">${esc(t('nav.reports'))}</a>` : ''}</p>
    <section><h3>${esc(t('enterprise.points'))}</h3><div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('col.point'))}</th><th>${esc(t('col.kind'))}</th><th>${esc(t('col.limit'))}</th>
      <th>${esc(t('col.device'))}</th><th>${esc(t('col.interval'))}</th><th>${esc(t('device.lastreading'))}</th></tr></thead><tbody>
      ${ent.points.flatMap(p => (p.devices.length ? p.devices : [null]).map((d, i) => `<tr>
        ${i === 0 ? `<td rowspan="${Math.max(1, p.devices.length)}">${esc(p.name)} <span class="muted">${esc(p.id)}</span></td><td rowspan="${Math.max(1, p.devices.length)}">${esc(t(`pointkind.${p.kind}`))}</td>
        <td rowspan="${Math.max(1, p.devices.length)}">${limits(p.limits)}</td>` : ''}
        ${d ? `<td><a href="#/device/${encodeURIComponent(d.mn)}">${esc(d.mn)}</a>${d.active ? '' : ` <span class="error">${esc(t('device.revoked'))}</span>`}</td>
          <td class="n">${esc(t('device.every', {s: d.interval_s}))}</td><td>${esc(when(d.last_ts)) || `<span class="muted">${esc(t('common.never'))}</span>`}</td>` : `<td colspan="3" class="muted">${esc(t('enterprise.nodevice'))}</td>`}</tr>`)).join('')}
    </tbody></table></div></section>
    <section><h3>${esc(t('enterprise.openalerts'))}</h3>${alerts.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>#</th><th>${esc(t('col.severity'))}</th><th>${esc(t('col.state'))}</th><th>${esc(t('col.rule'))}</th><th>${esc(t('col.device'))}</th><th>${esc(t('col.pollutant'))}</th><th>${esc(t('col.lastseen'))}</th><th class="msg">${esc(t('col.message'))}</th></tr></thead><tbody>
      ${alerts.map(a => `<tr><td><a href="#/alert/${a.id}">${a.id}</a></td><td class="sev ${esc(a.severity)}">${esc(severityName(a.severity))}</td><td>${esc(stateName(a.state))}</td>
        <td>${esc(ruleName(a.rule))}</td><td><a href="${deviceLink(a)}">${esc(a.point_name || a.mn)}</a></td><td>${esc(pollutant(a.pollutant))}</td><td>${esc(when(a.last_seen))}</td><td class="msg">${esc(alertMessage(a))}</td></tr>`).join('')}
      </tbody></table></div>` : `<p class="muted">${esc(t('common.none'))}</p>`}
      <p><a href="#/feed?enterprise=${encodeURIComponent(id)}">${esc(t('enterprise.allalerts'))}</a></p></section>
    <section><h3>${esc(t('nav.visits'))}</h3>${visits.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>#</th><th>${esc(t('col.inspector'))}</th><th>${esc(t('col.purpose'))}</th><th>${esc(t('visit.in'))}</th><th>${esc(t('visit.out'))}</th><th class="msg">${esc(t('col.findings'))}</th></tr></thead><tbody>
      ${visits.map(v => `<tr><td><a href="#/visit/${v.id}">${v.id}</a></td><td>${esc(v.inspector_id)}</td><td>${esc(v.purpose)}</td>
        <td>${esc(when(v.checked_in_at))}</td><td>${esc(when(v.checked_out_at)) || `<i>${esc(t('visit.onsite'))}</i>`}</td><td class="msg">${esc(v.findings)}</td></tr>`).join('')}
      </tbody></table></div>` : `<p class="muted">${esc(t('enterprise.novisit'))}</p>`}
      <p><a class="csv" href="/api/export/visits.csv${qs({enterprise: id})}" download>${esc(t('enterprise.visitscsv'))}</a></p></section>`;
}

// One page to print and post at the site's entrance: the signed QR code an inspector
// scans to check in (printing a new one after a revocation voids the old).
export async function renderQrSheet(view, {me, args}) {
  const id = args[0];
  const ent = await get(`/api/enterprises/${encodeURIComponent(id)}`);
  view.dataset.page = 'qr';
  if (!mayPrint(me)) {
    view.innerHTML = `<h2>${esc(t('enterprise.qr'))}</h2><p class="muted">${esc(t('qr.notyours'))}</p>`;
    return;
  }
  view.innerHTML = `<p class="noprint"><a href="#/enterprise/${encodeURIComponent(id)}">← ${esc(ent.name)}</a>
      <button type="button" id="print">${esc(t('common.print'))}</button></p>
    <div class="qrsheet"><h1>${esc(ent.name)}</h1><p class="muted">${esc(ent.id)} · ${esc(ent.region)}</p>
      <img id="qr" alt="${esc(t('qr.alt', {name: ent.name}))}" src="/api/enterprises/${encodeURIComponent(id)}/qr.svg?ts=${Date.now()}">
      <p><b>${esc(t('qr.scan'))}</b>${esc(t('qr.explain'))}</p>
      <p class="muted">${esc(t('qr.printed', {at: when(new Date(), {zone: true})}))}</p></div>`;
  view.querySelector('#print').addEventListener('click', () => window.print());
}
