// Acting on an alert in place: acknowledge, assign, resolve, reopen, comment. Which
// buttons show follows the alert's state and the role (the server decides anyway: a
// refused action shows its reason). Assign picks from the people work may go to.
import {get, post, esc, t} from '/static/console/api.js';
import {roleName} from '/static/console/i18n.js';

const ACTIVE = ['open', 'acknowledged', 'assigned'];
const STAFF = ['admin', 'regulator'];

export function actionButtons(a, me) {
  const b = [];
  const staff = STAFF.includes(me.role);
  // a critical the engine cleared before anyone saw it is still acknowledged (it stays pinned until then)
  if (staff && (a.state === 'open' || (a.state === 'cleared' && a.severity === 'critical' && !a.acknowledged_at))) b.push('acknowledge');
  if (staff && ACTIVE.includes(a.state)) b.push('assign', 'resolve');
  if (staff && ['resolved', 'cleared'].includes(a.state)) b.push('reopen');
  b.push('comments');
  return b.map(act => `<button type="button" data-act="${act}" data-id="${a.id}">${esc(t(`act.${act}`))}</button>`).join(' ');
}

// the people an alert or task may be assigned to, fetched once per page load
let assignable = null;
export async function assignableUsers() {
  assignable ??= get('/api/users/assignable').catch(e => { assignable = null; throw e; });
  return assignable;
}
export function userOptions(users, selected = '') {
  return users.map(u => `<option value="${esc(u.id)}" ${u.id === selected ? 'selected' : ''}>${esc(u.id)} · ${esc(roleName(u.role))}${u.department ? ' · ' + esc(u.department) : ''}</option>`).join('');
}

// an inline form under `anchor`; resolves to {text, user}, or null if cancelled
async function ask(anchor, label, required, picker) {
  anchor.querySelector('form.ask')?.remove();
  const form = document.createElement('form');
  form.className = 'ask';
  const users = picker ? await assignableUsers() : [];
  form.innerHTML = `${picker ? `<label><span class="sr">${esc(t('act.assignee'))}</span><select name="user" required>
      <option value="">${esc(t('act.pickuser'))}</option>${userOptions(users)}</select></label>` : ''}
    <label><span class="sr">${esc(label)}</span><input name="text" placeholder="${esc(label)}" ${required ? 'required' : ''} maxlength="4000"></label>
    <button>${esc(t('common.ok'))}</button> <button type="button" data-cancel>${esc(t('common.cancel'))}</button>`;
  anchor.append(form);
  (form.elements.user || form.elements.text).focus();
  return new Promise(done => {
    form.addEventListener('submit', e => {
      e.preventDefault();
      const v = {text: form.elements.text.value.trim(), user: form.elements.user?.value || ''};
      form.remove(); done(v);
    });
    form.querySelector('[data-cancel]').addEventListener('click', () => { form.remove(); done(null); });
  });
}

// [label key, text required, user picker]
const PROMPTS = {assign: ['act.assignnote', false, true], resolve: ['act.resolvenote', false, false],
                 comments: ['act.comment', true, false], reopen: ['act.reopennote', false, false]};

// handles a click on a [data-act] button; returns the updated alert, or null
export async function act(button) {
  const {act: action, id} = button.dataset;
  let body = {};
  const anchor = button.closest('td, p, div') || button.parentElement;
  if (PROMPTS[action]) {
    const [label, required, picker] = PROMPTS[action];
    const got = await ask(anchor, t(label), required, picker);
    if (got === null) return null;
    body = got.text ? {note: got.text} : {};
    if (picker) body.assignee = got.user;
  }
  button.disabled = true;
  try {
    const updated = await post(`/api/alerts/${id}/${action}`, body);
    document.dispatchEvent(new CustomEvent('offsite:unseen-changed'));
    return updated;
  } catch (e) {
    const err = document.createElement('span');
    err.className = 'error'; err.setAttribute('role', 'status'); err.textContent = ` ${e.message}`;
    anchor.append(err);
    setTimeout(() => err.remove(), 6000);
    return null;
  } finally {
    button.disabled = false;
  }
}
