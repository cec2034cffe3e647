// The printable monthly report of one enterprise: picked from the enterprises the
// signed-in user may see, in the console's language, times in the site's local time.
import {get, esc, qs} from '/static/console/api.js';
import {t, lang, LANGS, setLang, translateDom, when, pollutant, withUnit, ruleName} from '/static/console/i18n.js';

const q = new URLSearchParams(location.search);
const form = document.getElementById('pick');
const pct = x => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)} %`);

function table(head, rows, cls) {
  if (!rows.length) return `<p class="muted">${esc(t('common.none'))}</p>`;
  return `<div class="scroll" tabindex="0"><table><tr>${head.map(h => `<th>${esc(h)}</th>`).join('')}</tr>${
    rows.map((r, i) => `<tr class="${cls ? cls(i) : ''}">${r.map(c => `<td>${c}</td>`).join('')}</tr>`).join('')}</table></div>`;
}

async function show(e, m) {
  const url = `/api/reports/${encodeURIComponent(e)}/${encodeURIComponent(m)}`;
  document.getElementById('csv').href = `${url}/csv`;
  let r;
  try { r = await get(url); } catch (err) {
    document.getElementById('error').textContent = err.status === 401 ? t('report.signin') : err.message;
    return;
  }
  const s = r.summary, vs = r.visits;
  document.getElementById('error').textContent = '';
  document.getElementById('title').textContent = `— ${form.enterprise.selectedOptions[0]?.textContent || r.enterprise_id}, ${r.month}`;
  document.getElementById('meta').textContent = t('report.meta', {at: when(r.generated_at, {zone: true})});
  const byKind = Object.entries(s.visits_by_kind).map(([k, v]) => `${v} ${t(`visitkind.${k}`)}`).join('，') || t('common.none');
  document.getElementById('out').innerHTML =
    `<h2>${esc(t('report.exceedances'))}</h2>` +
    table([t('col.device'), t('col.pollutant'), t('col.limit'), t('report.hoursover'), t('report.validhours'), t('report.worsthour')],
      r.exceedances.map(x => [esc(x.mn), esc(pollutant(x.pollutant)), esc(withUnit(x.limit_value, x.pollutant)),
        `<span class="${x.hours_over_limit ? 'over' : ''}">${x.hours_over_limit}</span>`, x.valid_hours,
        x.worst_hour_avg === null ? '—' : esc(withUnit(x.worst_hour_avg, x.pollutant))])) +
    `<h2>${esc(t('device.capture'))}</h2>` +
    table([t('col.device'), t('col.pollutant'), t('report.validvalues'), t('device.expected'), t('device.capturecol')],
      r.capture.map(x => [esc(x.mn), esc(pollutant(x.pollutant)), x.valid_values, x.expected_values, pct(x.capture_rate)])) +
    `<h2>${esc(t('report.alerts'))}</h2>` +
    table([t('col.rule'), t('col.state'), t('report.count')], r.alerts.map(x => [esc(ruleName(x.rule)), esc(t(`state.${x.state}`)), x.alerts])) +
    `<h2>${esc(t('nav.cases'))} <span class="muted">${esc(t('report.casemean', {h: s.case_mean_closed_h ?? '—'}))}</span></h2>` +
    table([t('col.title'), t('col.state'), t('col.opened'), t('report.closed'), t('report.hours'), t('report.escalated'), t('report.responses'), t('nav.tasks')],
      r.cases.map(x => [`${esc(t('case.title', {id: x.id}))} ${esc(x.title)}`, esc(t(`casestate.${x.state}`)), esc(when(x.opened_at, {seconds: false})),
        esc(when(x.closed_at, {seconds: false}) || '—'), x.duration_h ?? '', x.escalated ? esc(t('common.yes')) : '', x.responses, x.tasks])) +
    `<h2>${esc(t('nav.visits'))} <span class="muted">${esc(t('report.visitsum', {kinds: byKind, joint: s.joint_visits, rating: s.rating_mean ?? '—', ratings: s.ratings, refused: s.visit_refusals}))}</span></h2>` +
    table([t('visit.title', {id: ''}).trim(), t('col.kind'), t('col.inspector'), t('visit.in'), t('visit.out'), t('visitfield.justification'), t('col.findings'), t('visit.rating')],
      vs.map(x => [x.id, esc(t(`visitkind.${x.kind}`)) + (x.advisory ? `<br><span class="tag">${esc(t('task.advisory'))}</span>` : ''),
        esc(x.inspectors.join(', ')) + (x.departments.length > 1 ? `<br><span class="muted">${esc(x.departments.join(', '))}</span>` : ''),
        esc(when(x.checked_in_at, {seconds: false})), esc(when(x.checked_out_at, {seconds: false}) || '—'), esc(x.justification ?? ''),
        esc(x.findings ?? ''), x.rating === null ? '—' : `${x.rating} ${esc(x.rating_comment ?? '')}`]),
      i => (vs[i].advisory ? 'advisory' : ''));
}

async function start() {
  translateDom();
  document.title = `${t('report.title')} · ${t('app.title')}`;
  const sel = document.getElementById('lang');
  sel.innerHTML = LANGS.map(l => `<option value="${l}" ${l === lang ? 'selected' : ''}>${esc(t(`lang.${l}`))}</option>`).join('');
  sel.addEventListener('change', () => setLang(sel.value));
  document.getElementById('print').addEventListener('click', () => window.print());
  let enterprises = [];
  try { enterprises = await get('/api/enterprises'); } catch (err) {
    document.getElementById('error').textContent = err.status === 401 ? t('report.signin') : err.message;
    return;
  }
  form.enterprise.innerHTML = enterprises.map(e => `<option value="${esc(e.id)}">${esc(e.name)} (${esc(e.id)})</option>`).join('');
  if (q.get('enterprise')) form.enterprise.value = q.get('enterprise');
  form.month.value = q.get('month') || when(new Date()).slice(0, 7);  // this month, site time
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    history.replaceState(null, '', qs({enterprise: form.enterprise.value, month: form.month.value}));
    show(form.enterprise.value, form.month.value);
  });
  if (form.enterprise.value) show(form.enterprise.value, form.month.value);
}

start();
