// A device: latest value per pollutant with its flag, a chart of any range (bucketed by
// the server so a month draws as fast as an hour; drag to zoom), alert markers on the
// chart, and the data-capture rate per day.
import {get, qs, esc, when, pct, pollutant, withUnit, unitOf, t} from '/static/console/api.js';
import {flagName, ruleName, alertMessage, severityName, stateName} from '/static/console/i18n.js';
import {timeChart, chooseBucket, clearChart} from '/static/console/chart.js';

const PRESETS = [['range.1h', 3600], ['range.6h', 6 * 3600], ['range.24h', 86400], ['range.7d', 7 * 86400], ['range.30d', 30 * 86400]];
const iso = s => new Date(s * 1000).toISOString();
const secs = v => new Date(v).getTime() / 1000;

function latestRows(latest) {
  return latest.map(l => `<tr data-pollutant="${esc(l.pollutant)}" class="${l.limit_value && l.value > l.limit_value ? 'over' : ''}">
    <td><a href="#" data-pick="${esc(l.pollutant)}">${esc(pollutant(l.pollutant))}</a></td><td class="n">${esc(withUnit(l.value, l.pollutant, 4))}</td>
    <td class="flag ${l.flag === 'N' ? '' : 'flagged'}" data-flag="${esc(l.flag)}">${esc(l.flag)} ${esc(flagName(l.flag))}</td>
    <td class="n">${esc(withUnit(l.limit_value, l.pollutant))}</td><td class="n">${l.limit_value ? pct(l.value / l.limit_value) : ''}</td><td>${esc(when(l.ts))}</td></tr>`).join('')
    || `<tr><td colspan="6" class="muted">${esc(t('device.noreading'))}</td></tr>`;
}

export async function render(view, {me, args, params, live}) {
  const mn = args[0];
  const [dev, capture] = await Promise.all([get(`/api/devices/${encodeURIComponent(mn)}`),
                                            get(`/api/devices/${encodeURIComponent(mn)}/capture`)]);
  const pollutants = [...new Set([...dev.latest.map(l => l.pollutant), ...Object.keys(dev.limits)])].sort();
  const state = {
    pollutant: params.get('pollutant') || Object.keys(dev.limits)[0] || pollutants[0] || '',
    to: params.get('end') ? secs(params.get('end')) : (dev.last_ts ? Math.max(secs(dev.last_ts) + 60, Date.now() / 1000) : Date.now() / 1000),
  };
  state.from = params.get('start') ? secs(params.get('start')) : state.to - 3600;
  view.dataset.page = 'device';
  view.innerHTML = `<h2>${esc(dev.point_name || mn)} <span class="muted mn">${esc(mn)}</span> ${dev.active ? '' : `<span class="error">${esc(t('device.revoked'))}</span>`}</h2>
    <p><a href="#/enterprise/${encodeURIComponent(dev.enterprise_id)}">${esc(dev.enterprise_name || dev.enterprise_id)}</a>
      · ${esc(t('col.point'))} ${esc(dev.point_name)} (${esc(t(`pointkind.${dev.point_kind}`))}) · ${esc(t('device.every', {s: dev.interval_s}))}
      · ${esc(t('device.lastreading'))} <span id="lastts">${esc(when(dev.last_ts, {zone: true})) || '—'}</span></p>
    <div class="cols">
      <section><h3>${esc(t('device.latest'))}</h3><div class="scroll" tabindex="0"><table class="grid" id="latest"><thead><tr><th>${esc(t('col.pollutant'))}</th><th class="n">${esc(t('col.value'))}</th><th>${esc(t('col.flag'))}</th><th class="n">${esc(t('col.limit'))}</th><th class="n">${esc(t('device.oflimit'))}</th><th>${esc(t('col.at'))}</th></tr></thead><tbody>
        ${latestRows(dev.latest)}</tbody></table></div></section>
      <section><h3>${esc(t('device.capture'))}</h3><p>${t('device.capturetext', {rate: `<b id="capture">${pct(capture.capture_rate)}</b>`, valid: pct(capture.valid_rate), s: dev.interval_s})}</p>
        <div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('device.day'))}</th><th class="n">${esc(t('device.expected'))}</th><th class="n">${esc(t('device.received'))}</th><th class="n">${esc(t('device.valid'))}</th><th class="n">${esc(t('device.capturecol'))}</th></tr></thead><tbody>
        ${capture.days.filter(d => d.expected || d.received).map(d => `<tr><td>${esc(d.day)}</td><td class="n">${d.expected}</td><td class="n">${d.received}</td><td class="n">${d.valid}</td>
          <td class="n ${d.capture_rate !== null && d.capture_rate < 0.9 ? 'low' : ''}">${pct(d.capture_rate)}</td></tr>`).join('')}</tbody></table></div></section>
    </div>
    <section><h3>${esc(t('device.chart'))}</h3>
      <form class="filters" id="range">
        <label>${esc(t('col.pollutant'))} <select name="pollutant">${pollutants.map(p => `<option value="${esc(p)}" ${p === state.pollutant ? 'selected' : ''}>${esc(pollutant(p))}</option>`).join('')}</select></label>
        ${PRESETS.map(([l, s]) => `<button type="button" data-span="${s}">${esc(t(l))}</button>`).join('')}
        <span id="rangetext" class="muted"></span> <a id="csv" class="csv" download>${esc(t('common.csv'))}</a>
      </form>
      <div id="chart" class="chart"></div><p class="muted">${esc(t('device.chartnote'))}</p>
      <ul id="alerts" class="alerts"></ul>
    </section>`;

  const chartEl = view.querySelector('#chart');
  let loading = 0;
  async function load() {
    const ticket = ++loading;
    const {bucket, from, to} = chooseBucket(state.from, state.to);
    const q = {start: iso(from), end: iso(to), pollutant: state.pollutant, bucket};
    history.replaceState(null, '', `#/device/${encodeURIComponent(mn)}${qs({pollutant: state.pollutant, start: q.start, end: q.end})}`);
    view.querySelector('#rangetext').textContent = `${when(q.start, {seconds: false})} – ${when(q.end, {seconds: false, zone: true})} · ${bucket ? t('device.buckets', {m: bucket / 60}) : t('device.raw')}`;
    view.querySelector('#csv').href = `/api/export/devices/${encodeURIComponent(mn)}/readings.csv${qs(q)}`;
    const [page, alerts] = await Promise.all([
      get(`/api/devices/${encodeURIComponent(mn)}/readings${qs({...q, limit: 20000})}`),
      get(`/api/alerts${qs({mn, since: q.start, until: q.end, limit: 500})}`)]);
    if (ticket !== loading) return;  // a newer range was asked for meanwhile
    const mine = alerts.filter(a => !a.pollutant || a.pollutant === state.pollutant);
    const spans = mine.map(a => ({from: Math.max(secs(a.first_seen), from), to: Math.min(secs(a.last_seen), to), severity: a.severity}));
    const limit = dev.limits[state.pollutant];
    const unit = unitOf(state.pollutant);
    let x, lines;
    if (bucket) {
      const b = page.buckets;
      x = b.map(r => secs(r.bucket));
      lines = [{label: `${t('chart.avg')} (${unit || '—'})`, values: b.map(r => r.avg), color: '#1f5fbf', width: 2},
               {label: t('chart.min'), values: b.map(r => r.min), color: '#9db7e0', width: 1},
               {label: t('chart.max'), values: b.map(r => r.max), color: '#9db7e0', width: 1}];
    } else {
      const r = page.readings.filter(v => v.kind === 'rtd');
      x = r.map(v => secs(v.ts));
      lines = [{label: `${pollutant(state.pollutant)}${unit ? ` (${unit})` : ''}`, values: r.map(v => v.value), color: '#1f5fbf', width: 2},
               {label: t('chart.flagged'), values: r.map(v => v.flag === 'N' ? null : v.value), color: '#c25400', pointsOnly: true}];
    }
    if (limit) lines.push({label: `${t('chart.limit')} ${withUnit(limit, state.pollutant)}`, values: x.map(() => limit), color: '#b00020', dash: [6, 4]});
    if (!x.length) { clearChart(chartEl, `<p class="muted">${esc(t('device.nodata'))}</p>`); chartEl.dataset.points = '0'; }
    else timeChart(chartEl, {x, lines, spans, yLabel: unit, xRange: [from, to], onZoom: (f, to2) => { state.from = f; state.to = to2; load(); }});
    view.querySelector('#alerts').innerHTML = mine.map(a => `<li><a href="#/alert/${a.id}">#${a.id}</a>
      <span class="sev ${esc(a.severity)}">${esc(severityName(a.severity))}</span> ${esc(ruleName(a.rule))} · ${esc(stateName(a.state))} · ${esc(when(a.first_seen))} — ${esc(alertMessage(a))}</li>`).join('');
  }
  const form = view.querySelector('#range');
  form.addEventListener('click', e => {
    const b = e.target.closest('button[data-span]');
    if (!b) return;
    state.to = Date.now() / 1000; state.from = state.to - Number(b.dataset.span); load();
  });
  form.elements.pollutant.addEventListener('change', () => { state.pollutant = form.elements.pollutant.value; load(); });
  view.querySelector('#latest').addEventListener('click', e => {
    const a = e.target.closest('a[data-pick]');
    if (!a) return;
    e.preventDefault(); state.pollutant = a.dataset.pick; form.elements.pollutant.value = a.dataset.pick; load();
  });
  await load();

  // live over SSE: each new reading of the device (its own stream) redraws the latest
  // values, and a chart that ends now moves along; an alert on this device (the
  // console's alert stream) does the same. The stream ends with `event: end`: signed
  // out → the sign-in form; anything else → open it again shortly.
  let alive = true, stream = null, again = null, retryMs = 1000, shownTs = dev.last_ts || '';
  function show(fresh) {
    view.querySelector('#latest tbody').innerHTML = latestRows(fresh.latest);
    view.querySelector('#lastts').textContent = when(fresh.last_ts, {zone: true}) || '—';
    view.dataset.lastTs = shownTs = fresh.last_ts || '';
    const nowS = Date.now() / 1000;
    if (state.to >= nowS - 120 && state.to - state.from <= 86400) { const span = state.to - state.from; state.to = nowS; state.from = nowS - span; load(); }
  }
  async function refresh() {
    if (!alive) return;
    const fresh = await get(`/api/devices/${encodeURIComponent(mn)}`).catch(() => null);
    if (fresh && alive) show(fresh);
  }
  function reopen() {
    stream?.close();
    if (!alive) return;
    view.dataset.live = 'waiting';
    clearTimeout(again);
    again = setTimeout(open, retryMs);  // from the reading shown: what came meanwhile comes first
    retryMs = Math.min(retryMs * 2, 30000);
  }
  function open() {
    if (!alive) return;
    const es = stream = new EventSource(`/api/devices/${encodeURIComponent(mn)}/stream${qs({since: shownTs})}`);
    es.onopen = () => { retryMs = 1000; view.dataset.live = 'on'; };
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) reopen(); };
    es.addEventListener('reading', e => { if (alive) show(JSON.parse(e.data)); });
    es.addEventListener('end', e => {
      es.close();
      let reason = '';
      try { reason = JSON.parse(e.data).reason; } catch { /* resume */ }
      if (reason === 'signed_out') location.reload(); else reopen();
    });
  }
  open();
  const onAlert = e => { if (e.detail.mn === mn) refresh(); };
  live?.addEventListener('alert', onAlert);
  view.dataset.live = 'on';
  return () => { alive = false; stream?.close(); clearTimeout(again); live?.removeEventListener('alert', onAlert); };
}
