// Acting on an alert in place: acknowledge, assign, resolve, reopen, comment. Which
// buttons show follows the alert's state and the role (the server decides anyway: a
// refused action shows its reason).
import {post, esc} from '/static/console/api.js';

const ACTIVE = ['open', 'acknowledged', 'assigned'];
const STAFF = ['admin', 'regulator'];

export function actionButtons(a, me) {
  const b = [];
  const staff = STAFF.includes(me.role);
  if (staff && a.state === 'open') b.push(['acknowledge', 'ack']);
  if (staff && ACTIVE.includes(a.state)) b.push(['assign', 'assign'], ['resolve', 'resolve']);
  if (staff && ['resolved', 'cleared'].includes(a.state)) b.push(['reopen', 'reopen']);
  b.push(['comments', 'comment']);
  return b.map(([act, label]) => `<button type="button" data-act="${act}" data-id="${a.id}">${label}</button>`).join(' ');
}

// an inline one-line form under `anchor`; resolves to the text, or null if cancelled
function ask(anchor, label, required) {
  anchor.querySelector('form.ask')?.remove();
  const form = document.createElement('form');
  form.className = 'ask';
  form.innerHTML = `<input name="text" placeholder="${esc(label)}" ${required ? 'required' : ''} maxlength="4000">
    <button>OK</button> <button type="button" data-cancel>cancel</button>`;
  anchor.append(form);
  form.text.focus();
  return new Promise(done => {
    form.addEventListener('submit', e => { e.preventDefault(); const v = form.text.value.trim(); form.remove(); done(v); });
    form.querySelector('[data-cancel]').onclick = () => { form.remove(); done(null); };
  });
}

const PROMPTS = {assign: ['assign to (user)', true], resolve: ['resolution note (optional)', false],
                 comments: ['comment', true], reopen: ['why (optional)', false]};

// handles a click on a [data-act] button; returns the updated alert, or null
export async function act(button) {
  const {act: action, id} = button.dataset;
  let body = {};
  if (PROMPTS[action]) {
    const [label, required] = PROMPTS[action];
    const text = await ask(button.parentElement, label, required);
    if (text === null) return null;
    body = action === 'assign' ? {assignee: text} : (text ? {note: text} : {});
  }
  button.disabled = true;
  try {
    return await post(`/api/alerts/${id}/${action}`, body);
  } catch (e) {
    const err = document.createElement('span');
    err.className = 'error'; err.textContent = ` ${e.message}`;
    button.parentElement.append(err);
    setTimeout(() => err.remove(), 6000);
    return null;
  } finally {
    button.disabled = false;
  }
}
