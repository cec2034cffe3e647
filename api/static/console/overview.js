// The regulator's landing page: criticals nobody has acknowledged pinned on top (they
// stay, across reloads, until a person acknowledges them — even when the engine cleared
// them), tiles per region and per site, and every device with its status. Live: a new
// alert event redraws it.
import {get, post, esc, when, pct, t} from '/static/console/api.js';
import {ruleName, alertMessage, severityName, stateName, pollutant} from '/static/console/i18n.js';
import {statusBadge} from '/static/console/lists.js';
import {deviceLink} from '/static/console/feed.js';

const STAFF = ['admin', 'regulator'];

function tile(x, link) {
  const a = x.alerts;
  return `<div class="tile" data-key="${esc(x.key)}"><h4>${link ? `<a href="${link}">${esc(x.name || '—')}</a>` : esc(x.name || '—')}</h4>
    <div><span class="big crit" title="${esc(severityName('critical'))}">${a.critical}</span> ${esc(severityName('critical'))}
      · ${a.major} ${esc(severityName('major'))} · ${a.warning} ${esc(severityName('warning'))}</div>
    <div>${esc(t('overview.devices', {n: x.devices}))} · <span class="${x.offline ? 'error' : ''}" data-offline="${x.offline}">${esc(t('overview.offline', {n: x.offline}))}</span></div>
    <div>${esc(t('overview.capture'))} <b>${pct(x.capture_today)}</b></div></div>`;
}

async function draw(view, me) {
  const o = await get('/api/overview');
  view.dataset.page = 'overview';
  const staff = STAFF.includes(me.role);
  view.innerHTML = `<h2>${esc(t('nav.overview'))} <span class="muted">${esc(when(o.now, {seconds: false, zone: true}))}</span></h2>
    <section id="pinned" aria-labelledby="pinnedh"><h3 id="pinnedh">${esc(t('overview.unseen', {n: o.unseen_count}))}</h3>
      ${o.unseen.length ? o.unseen.map(a => `<div class="pinned" data-id="${a.id}" data-state="${esc(a.state)}">
        <b class="sev critical">${esc(severityName('critical'))}</b> <a href="#/alert/${a.id}">#${a.id}</a>
        ${esc(a.enterprise_name || a.enterprise_id)} · <a href="${deviceLink(a)}">${esc(a.point_name || a.mn)}</a> · ${esc(pollutant(a.pollutant))}
        · ${esc(ruleName(a.rule))} — ${esc(alertMessage(a))} <span class="muted">${esc(when(a.last_seen, {seconds: false}))} · ${esc(stateName(a.state))}</span>
        ${staff ? `<button type="button" data-ack="${a.id}">${esc(t('overview.ack'))}</button>` : ''}</div>`).join('')
        : `<p class="muted">${esc(t('overview.nounseen'))}</p>`}
    </section>
    <section><h3>${esc(t('overview.regions'))}</h3><div class="tiles" id="regions">${o.regions.map(r => tile(r)).join('')}</div></section>
    <section><h3>${esc(t('overview.sites'))}</h3><div class="tiles" id="sites">${o.sites.map(s => tile(s, `#/enterprise/${encodeURIComponent(s.key)}`)).join('')}</div></section>
    <section><h3>${esc(t('nav.devices'))}</h3><div class="scroll" tabindex="0"><table class="grid" id="devstatus"><thead><tr><th>${esc(t('col.status'))}</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.point'))}</th><th>${esc(t('col.device'))}</th>
      <th>${esc(t('device.lastreading'))} <span class="muted">${esc(t('time.zone'))}</span></th><th class="n">${esc(t('overview.capture'))}</th></tr></thead><tbody>
      ${o.devices.map(d => `<tr data-mn="${esc(d.mn)}"><td>${statusBadge(d.status)}</td><td><a href="#/enterprise/${encodeURIComponent(d.enterprise_id)}">${esc(d.enterprise_name)}</a></td>
        <td>${esc(d.point_name)}</td><td><a href="#/device/${encodeURIComponent(d.mn)}">${esc(d.mn)}</a></td><td>${esc(when(d.last_ts)) || `<span class="muted">${esc(t('common.never'))}</span>`}</td>
        <td class="n">${pct(d.capture_today)}</td></tr>`).join('')}</tbody></table></div></section>`;
}

export async function render(view, {me, live}) {
  await draw(view, me);
  const onClick = async e => {
    const b = e.target.closest('button[data-ack]');
    if (!b) return;
    b.disabled = true;
    try { await post(`/api/alerts/${b.dataset.ack}/acknowledge`, {}); } catch (err) { b.disabled = false; b.after(Object.assign(document.createElement('span'), {className: 'error', textContent: ` ${err.message}`})); return; }
    await draw(view, me);
    document.dispatchEvent(new CustomEvent('offsite:unseen-changed'));
  };
  view.addEventListener('click', onClick);
  let timer = null;
  const onAlert = () => { clearTimeout(timer); timer = setTimeout(() => draw(view, me).catch(() => {}), 500); };
  live.addEventListener('alert', onAlert);
  return () => { clearTimeout(timer); live.removeEventListener('alert', onAlert); view.removeEventListener('click', onClick); };
}
