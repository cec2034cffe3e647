// Visits: the list (per site, per inspector) and one visit in full. Fields beyond the
// core ones (a task, the enterprise's rating, a joint visit's people…) are shown as the
// server sends them, so the page keeps up with the API without a change here.
import {get, getOptional, post, qs, esc, when} from '/static/console/api.js';

const CORE = ['id', 'enterprise_id', 'inspector_id', 'purpose', 'alert_id', 'checked_in_at', 'checked_out_at', 'findings'];
const LABELS = {enterprise_id: 'enterprise', inspector_id: 'inspector', alert_id: 'alert', task_id: 'task',
                checked_in_at: 'checked in', checked_out_at: 'checked out', rating: 'enterprise rating',
                rating_comment: 'rating comment'};

function value(k, v) {
  if (v === null || v === undefined || v === '') return '<span class="muted">—</span>';
  if (k === 'enterprise_id') return `<a href="#/enterprise/${encodeURIComponent(v)}">${esc(v)}</a>`;
  if (k === 'alert_id') return `<a href="#/alert/${encodeURIComponent(v)}">#${esc(v)}</a>`;
  if (k === 'rating') return `${'★'.repeat(Number(v))}${'☆'.repeat(Math.max(0, 5 - Number(v)))} (${esc(v)}/5)`;
  if (/_at$/.test(k)) return esc(when(v));
  if (Array.isArray(v)) return esc(v.map(x => typeof x === 'object' ? JSON.stringify(x) : x).join(', '));
  if (typeof v === 'object') return `<code>${esc(JSON.stringify(v))}</code>`;
  return esc(v);
}

export async function render(view, {me, params}) {
  const f = {enterprise: params.get('enterprise') || '', inspector: params.get('inspector') || ''};
  const visits = await get(`/api/visits${qs({...f, limit: 500})}`);
  view.dataset.page = 'visits';
  view.innerHTML = `<h2>Visits</h2>
    <form class="filters" id="vf">
      ${me.role === 'enterprise' ? '' : `<label>enterprise <input name="enterprise" value="${esc(f.enterprise)}" size="10"></label>`}
      ${me.role === 'inspector' ? '' : `<label>inspector <input name="inspector" value="${esc(f.inspector)}" size="10"></label>`}
      <button>filter</button> <a class="csv" href="/api/export/visits.csv${qs(f)}" download>CSV</a></form>
    ${visits.length ? `<table class="grid"><thead><tr><th>#</th><th>enterprise</th><th>inspector</th><th>purpose</th><th>alert</th>
      <th>checked in</th><th>checked out</th><th class="msg">findings</th><th>rating</th></tr></thead><tbody>
      ${visits.map(v => `<tr><td><a href="#/visit/${v.id}">${v.id}</a></td><td>${value('enterprise_id', v.enterprise_id)}</td><td>${esc(v.inspector_id)}</td>
        <td>${esc(v.purpose)}</td><td>${v.alert_id ? value('alert_id', v.alert_id) : ''}</td><td>${esc(when(v.checked_in_at))}</td>
        <td>${esc(when(v.checked_out_at)) || '<i>on site</i>'}</td><td class="msg">${esc(v.findings)}</td><td>${v.rating ? value('rating', v.rating) : ''}</td></tr>`).join('')}
      </tbody></table>` : '<p class="muted">No visit.</p>'}`;
  view.querySelector('#vf').addEventListener('submit', e => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const k of ['enterprise', 'inspector']) { const v = e.target.elements[k]?.value.trim(); if (v) p.set(k, v); }
    location.hash = `#/visits?${p}`;
  });
}

export async function renderDetail(view, ctx) {
  const {me, args} = ctx;
  const v = await get(`/api/visits/${encodeURIComponent(args[0])}`);
  const task = v.task_id ? await getOptional(`/api/tasks/${encodeURIComponent(v.task_id)}`).catch(() => null) : null;
  view.dataset.page = 'visit';
  const keys = [...CORE.filter(k => k in v), ...Object.keys(v).filter(k => !CORE.includes(k))];
  const open = !v.checked_out_at;
  view.innerHTML = `<h2>Visit #${esc(v.id)} ${open ? '<span class="badge">on site</span>' : ''}</h2>
    <table class="kv">${keys.map(k => `<tr><th>${esc(LABELS[k] || k.replace(/_/g, ' '))}</th><td class="msg">${value(k, v[k])}</td></tr>`).join('')}</table>
    ${task ? `<section><h3>Task</h3><table class="kv">${Object.entries(task).map(([k, x]) => `<tr><th>${esc(k)}</th><td>${value(k, x)}</td></tr>`).join('')}</table></section>` : ''}
    ${me.role === 'inspector' && open && v.inspector_id === me.user_id ? `<form id="checkout" class="block"><h3>Check out</h3>
      <textarea name="findings" required rows="4" cols="60" placeholder="findings"></textarea><br><button>Check out</button> <span class="error" id="err"></span></form>` : ''}
    ${me.role === 'enterprise' ? `<form id="rate" class="block"><h3>Rate this visit</h3>
      <select name="rating">${[5, 4, 3, 2, 1].map(n => `<option value="${n}">${n}</option>`).join('')}</select>
      <input name="comment" placeholder="comment (optional)" size="40"> <button>Rate</button> <span class="error" id="err"></span></form>` : ''}`;
  const send = (form, url, body) => form.addEventListener('submit', async e => {
    e.preventDefault();
    try { await post(url, body(form)); renderDetail(view, ctx); } catch (err) { form.querySelector('#err').textContent = err.message; }
  });
  const co = view.querySelector('#checkout');
  if (co) send(co, `/api/visits/${v.id}/check-out`, f => ({findings: f.findings.value}));
  const rate = view.querySelector('#rate');
  if (rate) send(rate, `/api/visits/${v.id}/rating`, f => ({rating: Number(f.rating.value), ...(f.comment.value ? {comment: f.comment.value} : {})}));
}
