// Time-series charts on uPlot (vendored, MIT): values, min/max band, the permit limit
// as a line, shaded spans (an alert's triggering span, alert markers on a device chart)
// and drag-to-zoom that hands the new range back to the page (which refetches buckets).
// uPlot's minified build is a classic script (index.html loads it first): global uPlot
import {when, tick, t} from "/static/console/i18n.js";
const uPlot = window.uPlot;

const SEVERITY_FILL = {critical: 'rgba(176,0,32,0.18)', major: 'rgba(194,84,0,0.16)',
                       warning: 'rgba(138,109,0,0.14)', info: 'rgba(60,90,160,0.12)'};

// Shaded vertical spans: [{from, to, severity?, label?}] in epoch seconds.
function spansPlugin(spans) {
  return {hooks: {drawClear: u => {
    const {ctx} = u, top = u.bbox.top, h = u.bbox.height;
    for (const s of spans) {
      let x0 = u.valToPos(s.from, 'x', true), x1 = u.valToPos(s.to, 'x', true);
      if (x1 - x0 < 3) { x0 -= 1.5; x1 += 1.5; }  // an instant still shows
      ctx.fillStyle = SEVERITY_FILL[s.severity] || 'rgba(176,0,32,0.15)';
      ctx.fillRect(x0, top, x1 - x0, h);
    }
  }}};
}

export function clearChart(el, message = '') {
  el._plot?.destroy(); el._resize?.disconnect();
  el._plot = el._resize = null;
  el.innerHTML = message;
}

// el: container; x: epoch seconds; lines: [{label, values, color, dash?, width?}];
// spans: shaded spans; onZoom(fromS, toS): called after a drag selection.
export function timeChart(el, {x, lines, spans = [], onZoom = null, height = 320, yLabel = '', xRange = null}) {
  clearChart(el);  // a redraw replaces the chart
  const width = Math.max(320, el.clientWidth || 800);
  const opts = {
    width, height,
    // xRange: the range asked for, so an hour with data in its last minutes still reads as an hour
    scales: {x: xRange ? {time: true, range: () => xRange} : {time: true}},
    // the one time convention: site local time, 24 h, on the axis and in the legend
    axes: [{values: (u, splits, ax, space, incr) => splits.map((v, i) => tick(v, incr, i ? splits[i - 1] : null)),
            space: 60},
           {label: yLabel, size: 60}],
    series: [{label: t('col.at'), value: (u, v) => (v === null || v === undefined ? '—' : when(v * 1000))}, ...lines.map(l => ({label: l.label, stroke: l.color, dash: l.dash, spanGaps: false,
                                      width: l.pointsOnly ? 0 : (l.width ?? 1.5),
                                      paths: l.pointsOnly ? () => null : undefined,
                                      points: l.pointsOnly ? {show: true, size: 6, fill: l.color}
                                                           : l.dash ? {show: false} : {}}))],  // {}: uPlot shows points where they are sparse
    cursor: {drag: {x: true, y: false, setScale: !onZoom}},
    plugins: [spansPlugin(spans)],
    hooks: onZoom ? {setSelect: [u => {
      if (u.select.width < 4) return;
      const from = u.posToVal(u.select.left, 'x'), to = u.posToVal(u.select.left + u.select.width, 'x');
      u.setSelect({left: 0, width: 0, top: 0, height: 0}, false);
      onZoom(from, to);
    }]} : {},
  };
  const plot = new uPlot(opts, [x, ...lines.map(l => l.values)], el);
  el._plot = plot;
  el._resize = new ResizeObserver(() => plot.setSize({width: Math.max(320, el.clientWidth), height}));
  el._resize.observe(el);
  el.dataset.points = String(x.length);  // tests and people can see what was drawn
  return plot;
}

// Buckets so that any range draws a few hundred points: raw readings up to 3 hours,
// then the smallest width giving ≤ 720 buckets. Hour and day widths are aligned to UTC
// so the server answers them from its hourly/daily rollups.
const WIDTHS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
export function chooseBucket(fromS, toS) {
  const span = toS - fromS;
  if (span <= 3 * 3600) return {bucket: null, from: fromS, to: toS};
  const bucket = WIDTHS.find(w => span / w <= 720) ?? 86400;
  const align = bucket >= 3600 ? bucket : 1;
  return {bucket, from: Math.floor(fromS / align) * align, to: Math.ceil(toS / align) * align};
}
