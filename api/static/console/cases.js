// The closed loop on screen (discovery → verification → rectification → feedback):
// cases with their timeline, deadline and moves; the enterprise's notices and response
// form with attachments; verdicts; inspection tasks with a person picker; invitations;
// and the frequency guard's no-disturbance list and refusals. The server decides who
// may do what; the buttons shown follow the role.
import {get, post, put, del, qs, esc, when, t, enterpriseNames, filesAsBase64} from '/static/console/api.js';
import {countdown, roleName} from '/static/console/i18n.js';
import {assignableUsers, userOptions} from '/static/console/actions.js';

const STAFF = ['admin', 'regulator'];
const NEXT = {discovered: ['verifying'], verifying: ['rectifying', 'closed'], rectifying: ['feedback'],
              feedback: ['closed', 'rectifying'], closed: []};
const caseState = s => `<span class="badge" data-state="${esc(s)}">${esc(t(`casestate.${s}`))}</span>`;
const deadline = (c, now = Date.now()) => (c.response_due_at && c.state !== 'closed'
  ? `<span class="deadline ${new Date(c.response_due_at) < now ? 'over' : ''}">${esc(t('case.due'))} ${esc(when(c.response_due_at, {seconds: false, zone: true}))} · ${esc(countdown(c.response_due_at, now))}</span>` : '');

function errorInto(form, err) {
  const el = form.querySelector('.error') || form.appendChild(Object.assign(document.createElement('p'), {className: 'error'}));
  el.setAttribute('role', 'status'); el.textContent = err.message;
}

// a form whose submit posts and then redraws; body(form) builds the JSON
function onSubmit(form, send, after) {
  form?.addEventListener('submit', async e => {
    e.preventDefault();
    const b = form.querySelector('button[type=submit], button:not([type])'); if (b) b.disabled = true;
    try { await send(form); await after(); } catch (err) { if (b) b.disabled = false; errorInto(form, err); }
  });
}

// ---- the list of cases, and the enterprise's notices --------------------------------
export async function render(view, {me, params}) {
  const state = params.get('state') || '';
  const [list, notices, names] = await Promise.all([
    get(`/api/cases${qs({state, limit: 200})}`),
    me.role === 'enterprise' ? get('/api/cases/notifications?limit=50').catch(() => []) : Promise.resolve(null),
    enterpriseNames()]);
  view.dataset.page = 'cases';
  view.innerHTML = `<h2>${esc(t('nav.cases'))}</h2>
    ${notices ? `<section id="notices"><h3>${esc(t('case.notices'))}</h3>${notices.length ? `<ul>${notices.map(n => `<li>${esc(when(n.at, {seconds: false}))} ·
        ${n.case_id ? `<a href="#/case/${n.case_id}">${esc(t('case.title', {id: n.case_id}))}</a> · ` : ''}${esc(n.message)}</li>`).join('')}</ul>`
      : `<p class="muted">${esc(t('common.none'))}</p>`}</section>` : ''}
    <form class="filters" id="cf"><label>${esc(t('col.state'))} <select name="state"><option value="">${esc(t('feed.all'))}</option>
      ${Object.keys(NEXT).map(s => `<option value="${s}" ${s === state ? 'selected' : ''}>${esc(t(`casestate.${s}`))}</option>`).join('')}</select></label></form>
    ${STAFF.includes(me.role) ? `<p class="muted">${esc(t('case.howtoopen'))} <a href="#/feed">${esc(t('nav.feed'))}</a></p>` : ''}
    ${list.length ? `<div class="scroll" tabindex="0"><table class="grid" id="caselist"><thead><tr><th>#</th><th>${esc(t('col.title'))}</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.state'))}</th>
      <th>${esc(t('col.opened'))}</th><th>${esc(t('col.deadline'))}</th></tr></thead><tbody>
      ${list.map(c => `<tr data-case="${c.id}"><td><a href="#/case/${c.id}">${c.id}</a></td><td class="msg"><a href="#/case/${c.id}">${esc(c.title)}</a></td>
        <td><a href="#/enterprise/${encodeURIComponent(c.enterprise_id)}">${esc(names.get(c.enterprise_id) || c.enterprise_id)}</a></td><td>${caseState(c.state)}${c.escalated_at ? ` <span class="error">${esc(t('casestep.escalated'))}</span>` : ''}</td>
        <td>${esc(when(c.opened_at, {seconds: false}))}</td><td>${deadline(c)}</td></tr>`).join('')}</tbody></table></div>`
      : `<p class="muted">${esc(t('case.none'))}</p>`}`;
  view.querySelector('#cf').addEventListener('change', e => { location.hash = `#/cases${qs({state: e.target.value})}`; });
}


// ---- one case: timeline, deadline, responses, verdicts, moves, tasks --------------------
export async function renderCase(view, ctx) {
  const {me, args} = ctx;
  const [c, names] = await Promise.all([get(`/api/cases/${encodeURIComponent(args[0])}`), enterpriseNames()]);
  const staff = STAFF.includes(me.role);
  const inspectors = staff ? (await assignableUsers().catch(() => [])).filter(u => u.role === 'inspector') : [];
  view.dataset.page = 'case';
  // one timeline of steps and responses, oldest first
  const items = [...c.steps.map(s => ({at: s.at, html: `<b>${esc(t(`casestep.${s.kind}`))}</b>${s.from_state && s.to_state ? ` ${esc(t(`casestate.${s.from_state}`))} → ${esc(t(`casestate.${s.to_state}`))}` : ''}
      · ${esc(s.actor)}${s.note ? ` — ${esc(s.note)}` : ''}`})),
    // the inspectors' photos of their findings, taken at check-out on the phone
    ...(c.photos || []).map(p => ({at: p.created_at, html: `<b>${esc(t('casestep.photo'))}</b> · ${esc(p.inspector_id)}
      · <a href="#/visit/${p.visit_id}">${esc(t('visit.title', {id: p.visit_id}))}</a>
      <a href="/api/visits/${p.visit_id}/photos/${p.id}" download="${esc(p.filename)}" data-photo="${p.id}"><img class="photo" src="/api/visits/${p.visit_id}/photos/${p.id}" alt="${esc(t('photo.alt', {name: p.filename}))}" loading="lazy"></a>`}))]
    .sort((a, b) => new Date(a.at) - new Date(b.at));
  view.innerHTML = `<h2>${esc(t('case.title', {id: c.id}))} ${caseState(c.state)} <span class="muted">${esc(c.title)}</span></h2>
    <p><a href="#/enterprise/${encodeURIComponent(c.enterprise_id)}">${esc(names.get(c.enterprise_id) || c.enterprise_id)}</a> · ${esc(t('col.opened'))} ${esc(when(c.opened_at, {seconds: false, zone: true}))} · ${esc(c.opened_by)}
      ${c.escalated_at ? ` · <span class="error">${esc(t('casestep.escalated'))} ${esc(when(c.escalated_at, {seconds: false}))}</span>` : ''}</p>
    <p id="deadline">${deadline(c)}</p>
    <p>${esc(t('case.alerts'))}: ${c.alerts.map(id => `<a href="#/alert/${id}">#${id}</a>`).join(' ')}</p>
    <div class="cols">
      <section><h3>${esc(t('case.timeline'))}</h3><ol class="timeline" id="timeline">${items.map(i => `<li><span class="muted">${esc(when(i.at, {seconds: false}))}</span><br>${i.html}</li>`).join('')}</ol></section>
      <section><h3>${esc(t('case.responses'))}</h3><div id="responses">${c.responses.length ? c.responses.map(r => `<div class="card" data-response="${r.id}">
          <p><b>${esc(r.responder)}</b> · ${esc(when(r.at, {seconds: false}))}</p><p class="msg">${esc(r.explanation)}</p>
          ${r.attachments.length ? `<ul>${r.attachments.map(a => `<li><a href="/api/cases/${c.id}/attachments/${a.id}" download="${esc(a.filename)}">${esc(a.filename)}</a> <span class="muted">${Math.ceil(a.size / 1024)} KB</span></li>`).join('')}</ul>` : ''}
          ${r.verdict ? `<p data-verdict="${esc(r.verdict)}"><b>${esc(t(`casestep.${r.verdict}`))}</b> · ${esc(r.verdict_by)} · ${esc(when(r.verdict_at, {seconds: false}))}${r.verdict_note ? ' — ' + esc(r.verdict_note) : ''}</p>`
            : staff ? `<form class="verdict stack" data-response="${r.id}"><label>${esc(t('col.note'))} <input name="note" maxlength="4000"></label>
                <label>${esc(t('case.again'))} <input name="hours" type="number" min="1" max="8760" value="72"></label>
                <button type="button" data-accept="1">${esc(t('case.accept'))}</button> <button type="button" data-accept="0">${esc(t('case.reject'))}</button></form>`
            : `<p class="muted">${esc(t('case.awaiting'))}</p>`}</div>`).join('') : `<p class="muted">${esc(t('case.noresponse'))}</p>`}</div>
        ${me.role === 'enterprise' && c.state !== 'closed' ? `<form id="respond" class="block stack"><h3>${esc(t('case.respond'))}</h3>
          <label for="explanation">${esc(t('case.explanation'))}</label><textarea id="explanation" name="explanation" required rows="5"></textarea>
          <label for="files">${esc(t('case.files'))}</label><input id="files" name="files" type="file" multiple>
          <p><button>${esc(t('common.send'))}</button></p><p class="error" role="status"></p></form>` : ''}
      </section>
    </div>
    <section><h3>${esc(t('nav.tasks'))}</h3>${c.tasks.length ? `<ul>${c.tasks.map(k => `<li data-task="${k.id}">${esc(t('task.title', {id: k.id}))} · ${esc(t(`taskstate.${k.state}`))} · ${esc(k.assignee)} — ${esc(k.reason)}
        ${k.due_at ? ` · ${esc(t('task.due'))} ${esc(when(k.due_at, {seconds: false}))}` : ''}${k.visit_id ? ` · <a href="#/visit/${k.visit_id}">${esc(t('visit.title', {id: k.visit_id}))}</a>` : ''}${k.findings ? ` — ${esc(k.findings)}` : ''}</li>`).join('')}</ul>`
      : `<p class="muted">${esc(t('alert.notask'))}</p>`}
      ${staff && c.state !== 'closed' ? `<form id="newtask" class="stack"><h3>${esc(t('case.sendinspector'))}</h3>
        <label for="assignee">${esc(t('act.assignee'))}</label><select id="assignee" name="assignee" required><option value="">${esc(t('act.pickuser'))}</option>${userOptions(inspectors)}</select>
        <label for="reason">${esc(t('case.taskreason'))}</label><input id="reason" name="reason" required maxlength="4000">
        <label for="due_hours">${esc(t('case.duehours'))}</label><input id="due_hours" name="due_hours" type="number" min="1" max="8760" value="72">
        <p><button>${esc(t('case.createtask'))}</button></p><p class="error" role="status"></p></form>` : ''}</section>
    ${staff && NEXT[c.state].length ? `<section><form id="move" class="stack"><h3>${esc(t('case.move'))}</h3>
      <label for="to">${esc(t('case.to'))}</label><select id="to" name="to">${NEXT[c.state].map(s => `<option value="${s}">${esc(t(`casestate.${s}`))}</option>`).join('')}</select>
      <label for="movenote">${esc(t('case.why'))}</label><input id="movenote" name="note" required maxlength="4000">
      <p><button>${esc(t('case.movebtn'))}</button></p><p class="error" role="status"></p></form></section>` : ''}`;
  const again = () => renderCase(view, ctx);
  onSubmit(view.querySelector('#move'), f => post(`/api/cases/${c.id}/move`, {to: f.elements.to.value, note: f.elements.note.value}), again);
  onSubmit(view.querySelector('#newtask'), f => post(`/api/cases/${c.id}/tasks`, {assignee: f.elements.assignee.value, reason: f.elements.reason.value,
    ...(f.elements.due_hours.value ? {due_hours: Number(f.elements.due_hours.value)} : {})}), again);
  onSubmit(view.querySelector('#respond'), async f => post(`/api/cases/${c.id}/responses`, {explanation: f.elements.explanation.value,
    attachments: await filesAsBase64(f.elements.files)}), again);
  for (const f of view.querySelectorAll('form.verdict')) {
    f.addEventListener('click', async e => {
      const b = e.target.closest('button[data-accept]');
      if (!b) return;
      const accept = b.dataset.accept === '1';
      try {
        await post(`/api/cases/${c.id}/responses/${f.dataset.response}/verdict`, {accept, ...(f.elements.note.value ? {note: f.elements.note.value} : {}),
          ...(!accept && f.elements.hours.value ? {respond_again_hours: Number(f.elements.hours.value)} : {})});
        await again();
      } catch (err) { errorInto(f, err); }
    });
  }
}

// ---- tasks ------------------------------------------------------------------------
export async function renderTasks(view, {me, params}) {
  const state = params.get('state') ?? 'open';
  const [tasks, names] = await Promise.all([get(`/api/tasks${qs({state, limit: 500})}`), enterpriseNames()]);
  view.dataset.page = 'tasks';
  view.innerHTML = `<h2>${esc(t('nav.tasks'))}</h2>
    <form class="filters" id="tf"><label>${esc(t('col.state'))} <select name="state"><option value="">${esc(t('feed.all'))}</option>
      ${['open', 'done'].map(s => `<option value="${s}" ${s === state ? 'selected' : ''}>${esc(t(`taskstate.${s}`))}</option>`).join('')}</select></label></form>
    ${tasks.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>#</th><th>${esc(t('col.enterprise'))}</th><th>${esc(t('col.inspector'))}</th><th>${esc(t('col.state'))}</th>
      <th class="msg">${esc(t('case.taskreason'))}</th><th>${esc(t('task.due'))}</th></tr></thead><tbody>
      ${tasks.map(k => `<tr data-task="${k.id}"><td>${k.id}</td><td><a href="#/enterprise/${encodeURIComponent(k.enterprise_id)}">${esc(names.get(k.enterprise_id) || k.enterprise_id)}</a></td><td>${esc(k.assignee)}</td>
        <td>${esc(t(`taskstate.${k.state}`))}${k.advisory ? ` <span class="badge">${esc(t('task.advisory'))}</span>` : ''}</td>
        <td class="msg">${esc(k.reason)}${k.case_id ? ` · <a href="#/case/${k.case_id}">${esc(t('case.title', {id: k.case_id}))}</a>` : ''}${k.findings ? ` — ${esc(k.findings)}` : ''}</td>
        <td>${k.due_at ? `${esc(when(k.due_at, {seconds: false}))}${k.state === 'open' ? ` · ${esc(countdown(k.due_at))}` : ''}` : ''}</td></tr>`).join('')}</tbody></table></div>`
      : `<p class="muted">${esc(t('common.none'))}</p>`}
    <p class="muted">${esc(t('work.signedin', {user: me.user_id}))} · ${esc(roleName(me.role))}</p>`;
  view.querySelector('#tf').addEventListener('change', e => { location.hash = `#/tasks?state=${encodeURIComponent(e.target.value)}`; });
}

// ---- invitations: the enterprise asks, a regulator schedules ------------------------------
export async function renderInvitations(view, ctx) {
  const {me} = ctx;
  const [list, names] = await Promise.all([get('/api/invitations'), enterpriseNames()]);
  const staff = STAFF.includes(me.role);
  const inspectors = staff ? (await assignableUsers().catch(() => [])).filter(u => u.role === 'inspector') : [];
  view.dataset.page = 'invitations';
  view.innerHTML = `<h2>${esc(t('nav.invitations'))}</h2><p class="muted">${esc(t('invitation.explain'))}</p>
    ${me.role === 'enterprise' ? `<form id="invite" class="stack block"><h3>${esc(t('invitation.request'))}</h3>
      <label for="scope">${esc(t('invitation.scope'))}</label><textarea id="scope" name="scope" required rows="3"></textarea>
      <label for="preferred">${esc(t('invitation.preferred'))} <span class="muted">${esc(t('time.zone'))}</span></label><input id="preferred" name="preferred" type="datetime-local">
      <p><button>${esc(t('common.send'))}</button></p><p class="error" role="status"></p></form>` : ''}
    ${list.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>#</th><th>${esc(t('col.enterprise'))}</th><th class="msg">${esc(t('invitation.scope'))}</th><th>${esc(t('invitation.preferred'))}</th>
      <th>${esc(t('col.state'))}</th><th>${esc(t('col.actions'))}</th></tr></thead><tbody>
      ${list.map(i => `<tr data-invitation="${i.id}"><td>${i.id}</td><td>${esc(names.get(i.enterprise_id) || i.enterprise_id)}</td><td class="msg">${esc(i.scope)}</td><td>${esc(when(i.preferred_at, {seconds: false}))}</td>
        <td>${esc(t(`invitationstate.${i.state}`))}</td><td class="acts">${staff && i.state === 'requested' ? `<form class="schedule" data-invitation="${i.id}">
          <label><span class="sr">${esc(t('act.assignee'))}</span><select name="assignee" required><option value="">${esc(t('act.pickuser'))}</option>${userOptions(inspectors)}</select></label>
          <button>${esc(t('invitation.schedule'))}</button><span class="error" role="status"></span></form>` : ''}</td></tr>`).join('')}</tbody></table></div>`
      : `<p class="muted">${esc(t('common.none'))}</p>`}`;
  const again = () => renderInvitations(view, ctx);
  // datetime-local is the sites' local time (UTC+8): send it with its offset
  onSubmit(view.querySelector('#invite'), f => post('/api/invitations', {scope: f.elements.scope.value,
    ...(f.elements.preferred.value ? {preferred_at: `${f.elements.preferred.value}:00+08:00`} : {})}), again);
  for (const f of view.querySelectorAll('form.schedule')) {
    onSubmit(f, form => post(`/api/invitations/${form.dataset.invitation}/schedule`, {assignee: form.elements.assignee.value}), again);
  }
}

// ---- the frequency guard: no-disturbance list and refusals ------------------------------
export async function renderGuard(view, ctx) {
  const {me} = ctx;
  const staff = STAFF.includes(me.role);
  const [listed, refusals, enterprises] = await Promise.all([
    get('/api/visits/guard/no-disturbance'),
    staff ? get('/api/visits/guard/refusals?limit=200') : Promise.resolve([]),
    get('/api/enterprises')]);
  view.dataset.page = 'guard';
  view.innerHTML = `<h2>${esc(t('nav.guard'))}</h2><p class="muted">${esc(t('guard.explain'))}</p>
    <section><h3>${esc(t('guard.list'))}</h3>${listed.length ? `<div class="scroll" tabindex="0"><table class="grid"><thead><tr><th>${esc(t('col.enterprise'))}</th><th class="msg">${esc(t('guard.reason'))}</th>
      <th>${esc(t('guard.until'))}</th><th>${esc(t('col.who'))}</th><th></th></tr></thead><tbody>
      ${listed.map(n => `<tr data-enterprise="${esc(n.enterprise_id)}"><td>${esc(enterprises.find(e => e.id === n.enterprise_id)?.name || n.enterprise_id)}</td><td class="msg">${esc(n.reason)}</td><td>${esc(when(n.until, {seconds: false})) || '—'}</td>
        <td>${esc(n.added_by)} · ${esc(when(n.added_at, {seconds: false}))}</td><td>${staff ? `<button type="button" data-remove="${esc(n.enterprise_id)}">${esc(t('guard.remove'))}</button>` : ''}</td></tr>`).join('')}</tbody></table></div>`
      : `<p class="muted">${esc(t('common.none'))}</p>`}
      ${staff ? `<form id="addlisted" class="stack"><h3>${esc(t('guard.add'))}</h3>
        <label for="gent">${esc(t('col.enterprise'))}</label><select id="gent" name="enterprise" required>${enterprises.map(e => `<option value="${esc(e.id)}">${esc(e.name)} (${esc(e.id)})</option>`).join('')}</select>
        <label for="greason">${esc(t('guard.reason'))}</label><input id="greason" name="reason" required maxlength="2000">
        <p><button>${esc(t('common.save'))}</button></p><p class="error" role="status"></p></form>` : ''}</section>
    ${staff ? `<section><h3>${esc(t('guard.refusals'))}</h3>${refusals.length ? `<div class="scroll" tabindex="0"><table class="grid" id="refusals"><thead><tr><th>${esc(t('col.when'))}</th><th>${esc(t('col.enterprise'))}</th>
      <th>${esc(t('col.inspector'))}</th><th class="msg">${esc(t('guard.reason'))}</th></tr></thead><tbody>
      ${refusals.map(r => `<tr><td>${esc(when(r.at, {seconds: false}))}</td><td>${esc(enterprises.find(e => e.id === r.enterprise_id)?.name || r.enterprise_id)}</td><td>${esc(r.inspector_id)}</td><td class="msg">${esc(r.reason)}</td></tr>`).join('')}</tbody></table></div>`
      : `<p class="muted">${esc(t('common.none'))}</p>`}</section>` : ''}`;
  const again = () => renderGuard(view, ctx);
  onSubmit(view.querySelector('#addlisted'), f => put(`/api/visits/guard/no-disturbance/${encodeURIComponent(f.elements.enterprise.value)}`, {reason: f.elements.reason.value}), again);
  for (const b of view.querySelectorAll('button[data-remove]')) {
    b.addEventListener('click', async () => {
      b.disabled = true;
      await del(`/api/visits/guard/no-disturbance/${encodeURIComponent(b.dataset.remove)}`).catch(() => {});
      again();
    });
  }
}
