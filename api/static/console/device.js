// A device: latest value per pollutant with its flag, a chart of any range (bucketed by
// the server so a month draws as fast as an hour; drag to zoom), alert markers on the
// chart, and the data-capture rate per day.
import {get, qs, esc, when, num, pct, pollutant} from '/static/console/api.js';
import {timeChart, chooseBucket, clearChart} from '/static/console/chart.js';

const FLAGS = {N: 'normal', F: 'stopped', M: 'maintenance', S: 'manual', D: 'fault',
               C: 'calibration', T: 'over range', B: 'logger comm. fault'};
const PRESETS = [['1 h', 3600], ['6 h', 6 * 3600], ['24 h', 86400], ['7 d', 7 * 86400], ['30 d', 30 * 86400]];
const iso = s => new Date(s * 1000).toISOString();
const secs = v => new Date(v).getTime() / 1000;

export async function render(view, {me, args, params}) {
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
  view.innerHTML = `<h2>Device ${esc(mn)} ${dev.active ? '' : '<span class="error">(revoked)</span>'}</h2>
    <p><a href="#/enterprise/${encodeURIComponent(dev.enterprise_id)}">${esc(dev.enterprise_id)} ${esc(dev.enterprise_name)}</a>
      · point ${esc(dev.point_id)} ${esc(dev.point_name)} (${esc(dev.point_kind)}) · every ${dev.interval_s} s
      · last reading ${esc(when(dev.last_ts)) || '—'} · received ${esc(when(dev.last_received_at)) || '—'}</p>
    <div class="cols">
      <section><h3>Latest values</h3><table class="grid" id="latest"><thead><tr><th>pollutant</th><th>value</th><th>flag</th><th>limit</th><th>of limit</th><th>at</th></tr></thead><tbody>
        ${dev.latest.map(l => `<tr data-pollutant="${esc(l.pollutant)}" class="${l.limit_value && l.value > l.limit_value ? 'over' : ''}">
          <td><a href="#" data-pick="${esc(l.pollutant)}">${esc(pollutant(l.pollutant))}</a></td><td class="n">${num(l.value, 4)}</td>
          <td class="flag ${l.flag === 'N' ? '' : 'flagged'}" title="${esc(FLAGS[l.flag] || '')}">${esc(l.flag)} ${esc(FLAGS[l.flag] || '')}</td>
          <td class="n">${num(l.limit_value)}</td><td class="n">${l.limit_value ? pct(l.value / l.limit_value) : ''}</td><td>${esc(when(l.ts))}</td></tr>`).join('')
          || '<tr><td colspan="6" class="muted">No reading yet.</td></tr>'}</tbody></table></section>
      <section><h3>Data capture</h3><p>Last 7 days: received <b id="capture">${pct(capture.capture_rate)}</b>,
        valid ${pct(capture.valid_rate)} of the readings expected every ${dev.interval_s} s.</p>
        <table class="grid"><thead><tr><th>day (UTC)</th><th>expected</th><th>received</th><th>valid</th><th>capture</th></tr></thead><tbody>
        ${capture.days.filter(d => d.expected || d.received).map(d => `<tr><td>${esc(d.day)}</td><td class="n">${d.expected}</td><td class="n">${d.received}</td><td class="n">${d.valid}</td>
          <td class="n ${d.capture_rate !== null && d.capture_rate < 0.9 ? 'low' : ''}">${pct(d.capture_rate)}</td></tr>`).join('')}</tbody></table></section>
    </div>
    <section><h3>Chart</h3>
      <form class="filters" id="range">
        <label>pollutant <select name="pollutant">${pollutants.map(p => `<option value="${esc(p)}" ${p === state.pollutant ? 'selected' : ''}>${esc(pollutant(p))}</option>`).join('')}</select></label>
        ${PRESETS.map(([l, s]) => `<button type="button" data-span="${s}">${l}</button>`).join('')}
        <span id="rangetext" class="muted"></span> <a id="csv" class="csv" download>CSV</a>
      </form>
      <div id="chart" class="chart"></div><p class="muted">Drag across the chart to zoom; shaded: alerts.</p>
      <ul id="alerts" class="alerts"></ul>
    </section>`;

  const chartEl = view.querySelector('#chart');
  let loading = 0;
  async function load() {
    const ticket = ++loading;
    const {bucket, from, to} = chooseBucket(state.from, state.to);
    const q = {start: iso(from), end: iso(to), pollutant: state.pollutant, bucket};
    history.replaceState(null, '', `#/device/${encodeURIComponent(mn)}${qs({pollutant: state.pollutant, start: q.start, end: q.end})}`);
    view.querySelector('#rangetext').textContent = `${when(q.start)} – ${when(q.end)} · ${bucket ? `${bucket / 60} min buckets (avg, min, max)` : 'raw readings'}`;
    view.querySelector('#csv').href = `/api/export/devices/${encodeURIComponent(mn)}/readings.csv${qs(q)}`;
    const [page, alerts] = await Promise.all([
      get(`/api/devices/${encodeURIComponent(mn)}/readings${qs({...q, limit: 20000})}`),
      get(`/api/alerts${qs({mn, since: q.start, until: q.end, limit: 500})}`)]);
    if (ticket !== loading) return;  // a newer range was asked for meanwhile
    const mine = alerts.filter(a => !a.pollutant || a.pollutant === state.pollutant);
    const spans = mine.map(a => ({from: Math.max(secs(a.first_seen), from), to: Math.min(secs(a.last_seen), to), severity: a.severity}));
    const limit = dev.limits[state.pollutant];
    let x, lines;
    if (bucket) {
      const b = page.buckets;
      x = b.map(r => secs(r.bucket));
      lines = [{label: 'avg', values: b.map(r => r.avg), color: '#1f5fbf', width: 2},
               {label: 'min', values: b.map(r => r.min), color: '#9db7e0', width: 1},
               {label: 'max', values: b.map(r => r.max), color: '#9db7e0', width: 1}];
    } else {
      const r = page.readings.filter(v => v.kind === 'rtd');
      x = r.map(v => secs(v.ts));
      lines = [{label: pollutant(state.pollutant), values: r.map(v => v.value), color: '#1f5fbf', width: 2},
               {label: 'flagged (not N)', values: r.map(v => v.flag === 'N' ? null : v.value), color: '#c25400', pointsOnly: true}];
    }
    if (limit) lines.push({label: 'permit limit', values: x.map(() => limit), color: '#b00020', dash: [6, 4]});
    if (!x.length) { clearChart(chartEl, '<p class="muted">No data in this range.</p>'); chartEl.dataset.points = '0'; }
    else timeChart(chartEl, {x, lines, spans, xRange: [from, to], onZoom: (f, t) => { state.from = f; state.to = t; load(); }});
    view.querySelector('#alerts').innerHTML = mine.map(a => `<li><a href="#/alert/${a.id}">#${a.id}</a>
      <span class="sev ${esc(a.severity)}">${esc(a.severity)}</span> ${esc(a.rule)} ${esc(a.state)} ${esc(when(a.first_seen))} — ${esc(a.message)}</li>`).join('');
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
}
