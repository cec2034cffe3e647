// Visits: the list (per site, per inspector) and one visit in full, with check-out for
// its inspector and a rating (once) for the enterprise.
import {get, getOptional, post, qs, esc, when, t, enterpriseNames} from '/static/console/api.js';

const FIELDS = ['enterprise_id', 'inspector_id', 'kind', 'purpose', 'justification', 'alert_id', 'task_id', 'case_id',
                'checked_in_at', 'checked_out_at', 'findings', 'rating', 'rating_comment', 'rated_at'];

let names = new Map();
function value(k, v) {
  if (v === null || v === undefined || v === '') return '<span class="muted">—</span>';
  if (k === 'enterprise_id') return `<a href="#/enterprise/${encodeURIComponent(v)}">${esc(names.get(v) || v)}</a>`;
  if (k === 'alert_id') return `<a href="#/alert/${encodeURIComponent(v)}">#${esc(v)}</a>`;
  if (k === 'case_id') return `<a href="#/case/${encodeURIComponent(v)}">${esc(t('case.title', {id: v}))}</a>`;
  if (k === 'task_id') return esc(t('task.title', {id: v}));
  if (k === 'kind') return esc(t(`visitkind.${v}`));
  if (k === 'rating') return `<span aria-label="${esc(t('visit.stars', {n: v}))}">${'★'.repeat(Number(v))}${'☆'.repeat(Math.max(0, 5 - Number(v)))}</span> (${esc(v)}/5)`;
  if (/_at$/.test(k)) return esc(when(v, {zone: true}));
  return esc(v);
}

export async function render(view, {me, params}) {
  const f = {enterprise: params.get('enterprise') || '', inspector: params.get('inspector') || ''};
  const [visits, known] = await Promise.all([get(`/api/visits${qs({...f, limit: 500})}`), enterpriseNames()]);
  names = known;
  view.dataset.page = 'visits';
  view.innerHTML = `<h2>${esc(t('nav.visits'))}</h2>
    <form class="filters" id="vf">
      ${me.role === 'enterprise' ? '' : `<label>${esc(t('col.enterprise'))} <input name="enterprise" value="${esc(f.enterprise)}" size="10"></label>`}
      ${me.role === 'inspector' ? '' : `<label>${esc(t('col.inspector'))} <input name="inspector" value="${esc(f.inspector)}" size="10"></label>`}
      <button>${esc(t('common.filter'))}</button> <a class="csv" href="/api/export/visits.csv${qs(f)}" download>${esc(t('common.csv'))}</a></form>
    ${visits.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>#</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.inspector'))}</th><th>${esc(t('col.purpose'))}</th><th>${esc(t('col.alert'))}</th>
      <th>${esc(t('visit.in'))} <span class="muted">${esc(t('time.zone'))}</span></th><th>${esc(t('visit.out'))}</th><th class="msg">${esc(t('col.findings'))}</th><th>${esc(t('visit.rating'))}</th></tr></thead><tbody>
      ${visits.map(v => `<tr><td><a href="#/visit/${v.id}">${v.id}</a></td><td>${value('enterprise_id', v.enterprise_id)}</td><td>${esc(v.inspector_id)}</td>
        <td>${esc(v.purpose)}</td><td>${v.alert_id ? value('alert_id', v.alert_id) : ''}</td><td>${esc(when(v.checked_in_at, {seconds: false}))}</td>
        <td>${esc(when(v.checked_out_at, {seconds: false})) || `<i>${esc(t('visit.onsite'))}</i>`}</td><td class="msg">${esc(v.findings)}</td><td>${v.rating ? value('rating', v.rating) : ''}</td></tr>`).join('')}
      </tbody></table></div>` : `<p class="muted">${esc(t('visit.none'))}</p>`}`;
  view.querySelector('#vf').addEventListener('submit', e => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['enterprise', 'inspector']) { const v = e.target.elements[k]?.value.trim(); if (v) p.set(k, v); }
    location.hash = `#/visits?${p}`;
  });
}

export async function renderDetail(view, ctx) {
  const {me, args} = ctx;
  const [v, known] = await Promise.all([get(`/api/visits/${encodeURIComponent(args[0])}`), enterpriseNames()]);
  names = known;
  const task = v.task_id && me.role !== 'enterprise' ? await getOptional(`/api/tasks/${encodeURIComponent(v.task_id)}`).catch(() => null) : null;
  view.dataset.page = 'visit';
  const open = !v.checked_out_at;
  const mine = me.role === 'inspector' && (v.inspector_id === me.user_id || (v.inspectors || []).some(p => p.inspector_id === me.user_id && !p.checked_out_at));
  const rated = v.rated_at || v.rating;
  view.innerHTML = `<h2>${esc(t('visit.title', {id: v.id}))} ${open ? `<span class="badge">${esc(t('visit.onsite'))}</span>` : ''}
      ${v.advisory ? `<span class="badge">${esc(t('task.advisory'))}</span>` : ''}</h2>
    <table class="kv">${FIELDS.filter(k => k in v && !(me.role === 'inspector' && k.startsWith('rat'))).map(k => `<tr><th>${esc(t(`visitfield.${k}`))}</th><td class="msg">${value(k, v[k])}</td></tr>`).join('')}</table>
    ${(v.inspectors || []).length > 1 ? `<section><h3>${esc(t('visit.joint'))}</h3><ul>${v.inspectors.map(p => `<li>${esc(p.inspector_id)} · ${esc(p.department)} · ${esc(when(p.checked_in_at, {seconds: false}))}${p.checked_out_at ? ' – ' + esc(when(p.checked_out_at, {seconds: false})) : ''}${p.findings ? ' — ' + esc(p.findings) : ''}</li>`).join('')}</ul></section>` : ''}
    ${task ? `<section><h3>${esc(t('task.title', {id: task.id}))}</h3><p>${esc(task.reason)} · ${esc(t(`taskstate.${task.state}`))}</p></section>` : ''}
    ${mine && open ? `<form id="checkout" class="block"><h3>${esc(t('visit.checkout'))}</h3>
      <label for="findings">${esc(t('col.findings'))}</label><textarea id="findings" name="findings" required rows="4"></textarea><br><button>${esc(t('visit.checkout'))}</button> <span class="error" id="err" role="status"></span></form>` : ''}
    ${me.role === 'enterprise' && !rated ? `<form id="rate" class="block"><h3>${esc(t('visit.rate'))}</h3>
      <label>${esc(t('visit.rating'))} <select name="rating">${[5, 4, 3, 2, 1].map(n => `<option value="${n}">${'★'.repeat(n)} ${n}</option>`).join('')}</select></label>
      <label>${esc(t('visit.comment'))} <input name="comment" size="40"></label> <button>${esc(t('visit.rate'))}</button> <span class="error" id="err" role="status"></span></form>` : ''}
    ${me.role === 'enterprise' && rated ? `<p id="rated" class="muted">${esc(t('visit.rated'))}</p>` : ''}`;
  const send = (form, url, body) => form.addEventListener('submit', async e => {
    e.preventDefault();
    const button = form.querySelector('button'); button.disabled = true;
    try { await post(url, body(form)); await renderDetail(view, ctx); }
    catch (err) { form.querySelector('#err').textContent = err.message; button.disabled = false; }
  });
  const co = view.querySelector('#checkout');
  if (co) send(co, `/api/visits/${v.id}/check-out`, form => ({findings: form.elements.findings.value}));
  const rate = view.querySelector('#rate');
  if (rate) send(rate, `/api/visits/${v.id}/rating`, form => ({rating: Number(form.elements.rating.value), ...(form.elements.comment.value ? {comment: form.elements.comment.value} : {})}));
}
