// The inspector's phone after scanning a site's code: sign in, see what brings them
// here (their open tasks at this site, its open cases, a visit to join), check in with a
// reason the frequency guard accepts, read the result, and check out with findings —
// all on this one page.
import {get, post, esc, HttpError, filesAsBase64} from '/static/console/api.js';
import {t, lang, LANGS, setLang, translateDom, when, countdown} from '/static/console/i18n.js';

const token = new URLSearchParams(location.search).get('token') || '';
const main = document.getElementById('main');

function languageSwitch() {
  const sel = document.getElementById('lang');
  sel.innerHTML = LANGS.map(l => `<option value="${l}" ${l === lang ? 'selected' : ''}>${esc(t(`lang.${l}`))}</option>`).join('');
  sel.addEventListener('change', () => setLang(sel.value));
}

function signIn() {
  const login = document.getElementById('login');
  login.hidden = false;
  login.addEventListener('submit', async e => {
    e.preventDefault();
    const f = new FormData(login);
    try {
      await post('/auth/login', {username: f.get('username'), password: f.get('password')});
      location.reload();
    } catch (err) {
      document.getElementById('loginerr').textContent = err.status === 429 ? t('login.toomany') : t('login.wrong');
    }
  });
}

const choice = (name, value, checked, body) =>
  `<label class="choice"><input type="radio" name="${name}" value="${esc(value)}" ${checked ? 'checked' : ''}><span>${body}</span></label>`;

// the check-in form for what the scan found
function drawForm(me, p, refusal = '') {
  const mineOpen = p.open_visits.find(v => v.inspector_id === me.user_id || (v.inspectors || []).some(x => x.inspector_id === me.user_id && !x.checked_out_at));
  if (mineOpen) return drawVisit(me, mineOpen, p);
  const others = p.open_visits;
  const g = p.guard;
  main.innerHTML = `<section class="card" id="site"><h2>${esc(p.enterprise_name)}</h2><p class="muted">${esc(p.enterprise_id)} · ${esc(p.region)}</p></section>
    <form id="checkin">
      <h2>${esc(t('scan.why'))}</h2>
      ${p.my_tasks.length ? `<p>${esc(t('scan.mytasks'))}</p>${p.my_tasks.map((k, i) => choice('basis', `task:${k.id}`, i === 0,
        `<b>${esc(t('task.title', {id: k.id}))}</b> ${k.advisory ? `<span class="badge">${esc(t('task.advisory'))}</span>` : ''}<br>${esc(k.reason)}
         ${k.due_at ? `<br><span class="muted">${esc(t('task.due'))} ${esc(when(k.due_at, {seconds: false}))} · ${esc(countdown(k.due_at))}</span>` : ''}`)).join('')}`
        : `<p class="muted" id="notasks">${esc(t('scan.notasks'))}</p>`}
      ${others.map(v => choice('basis', `join:${v.id}`, false,
        `${esc(t('scan.join', {id: v.id}))}<br><span class="muted">${esc((v.inspectors || []).map(x => `${x.inspector_id}${x.department ? ' · ' + x.department : ''}`).join(', ') || v.inspector_id)} · ${esc(when(v.checked_in_at, {seconds: false}))}</span>`)).join('')}
      ${choice('basis', 'own', !p.my_tasks.length, esc(t('scan.unscheduled')))}
      <div id="reason">
        ${g.needs_reason || refusal ? `<p class="warn" id="guardnote" role="alert">${esc(refusal || (g.no_disturbance ? t('scan.guardlisted') : t('scan.guardmax', {n: g.recent_visits, max: g.max_visits, days: g.days})))}</p>` : ''}
        <label for="case_id">${esc(t('scan.case'))}</label>
        <select id="case_id" name="case_id"><option value="">${esc(t('scan.nocase'))}</option>
          ${p.open_cases.map(c => `<option value="${c.id}">${esc(t('case.title', {id: c.id}))} · ${esc(t(`casestate.${c.state}`))} · ${esc(c.title)}</option>`).join('')}</select>
        <label for="complaint">${esc(t('scan.complaint'))}</label>
        <input id="complaint" name="complaint" maxlength="2000" placeholder="${esc(t('scan.complainthint'))}">
      </div>
      <label for="purpose">${esc(t('col.purpose'))}</label><textarea id="purpose" name="purpose" required rows="3"></textarea>
      <label for="alert_id">${esc(t('scan.alert'))}</label><input id="alert_id" name="alert_id" inputmode="numeric" pattern="[0-9]*">
      <p><button id="checkinbtn">${esc(t('scan.checkin'))}</button></p><p id="err" class="error" role="status"></p>
    </form>`;
  const form = main.querySelector('#checkin');
  const reason = main.querySelector('#reason');
  const basis = () => form.querySelector('input[name=basis]:checked')?.value || 'own';
  const sync = () => {
    const own = basis() === 'own';
    reason.hidden = !own;
    form.elements.purpose.required = !basis().startsWith('join:');
  };
  form.addEventListener('change', sync); sync();
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const b = basis(), body = {token, purpose: form.elements.purpose.value.trim() || t('scan.jointpurpose')};
    if (b.startsWith('task:')) body.task_id = Number(b.slice(5));
    if (b.startsWith('join:')) body.join_visit_id = Number(b.slice(5));
    if (b === 'own') {
      if (form.elements.case_id.value) body.case_id = Number(form.elements.case_id.value);
      if (form.elements.complaint.value.trim()) body.complaint = form.elements.complaint.value.trim();
    }
    if (form.elements.alert_id.value) body.alert_id = Number(form.elements.alert_id.value);
    const button = form.querySelector('#checkinbtn'); button.disabled = true;
    try {
      const v = await post('/api/visits/check-in', body);
      drawVisit(me, v, p, true);
    } catch (err) {
      button.disabled = false;
      if (err instanceof HttpError && err.status === 409) {
        // the frequency guard refused (and recorded it): ask for the case or complaint
        const kept = {purpose: form.elements.purpose.value, alert: form.elements.alert_id.value};
        drawForm(me, {...p, guard: {...p.guard, needs_reason: true}}, t('scan.refused', {reason: err.message}));
        main.querySelector('#purpose').value = kept.purpose;  // what was typed stays
        main.querySelector('#alert_id').value = kept.alert;
        main.querySelector('#complaint').focus();
        return;
      }
      form.querySelector('#err').textContent = err.message;
    }
  });
}

// the visit as the inspector reads it, and check-out with findings on the same page
function drawVisit(me, v, p, fresh = false) {
  const people = v.inspectors || [];
  const meIn = people.find(x => x.inspector_id === me.user_id);
  const done = meIn ? !!meIn.checked_out_at : !!v.checked_out_at;
  main.innerHTML = `<section class="card" id="result" data-visit="${v.id}" data-kind="${esc(v.kind)}">
      <h2>${fresh ? `<span class="ok">✓</span> ${esc(t('scan.checkedin'))}` : esc(t('visit.title', {id: v.id}))}</h2>
      <dl>
        <dt>${esc(t('col.enterprise'))}</dt><dd>${esc(p?.enterprise_name || v.enterprise_id)}</dd>
        <dt>${esc(t('visit.title', {id: ''}).trim())}</dt><dd>#${v.id} · ${esc(t(`visitkind.${v.kind}`))}</dd>
        ${v.task_id ? `<dt>${esc(t('visitfield.task_id'))}</dt><dd>${esc(t('task.title', {id: v.task_id}))}</dd>` : ''}
        ${v.case_id ? `<dt>${esc(t('visitfield.case_id'))}</dt><dd>${esc(t('case.title', {id: v.case_id}))}</dd>` : ''}
        ${v.justification ? `<dt>${esc(t('visitfield.justification'))}</dt><dd>${esc(v.justification)}</dd>` : ''}
        <dt>${esc(t('col.purpose'))}</dt><dd>${esc(v.purpose)}</dd>
        <dt>${esc(t('visit.in'))}</dt><dd>${esc(when(v.checked_in_at, {zone: true}))}</dd>
        ${people.length > 1 ? `<dt>${esc(t('visit.joint'))}</dt><dd>${esc(people.map(x => x.inspector_id).join(', '))}</dd>` : ''}
        ${v.checked_out_at ? `<dt>${esc(t('visit.out'))}</dt><dd>${esc(when(v.checked_out_at, {zone: true}))}</dd>` : ''}
        ${v.photos?.length ? `<dt>${esc(t('scan.photos'))}</dt><dd id="photocount">${esc(t('scan.photocount', {n: v.photos.length}))}</dd>` : ''}
      </dl>
      ${v.advisory ? `<p class="warn">${esc(t('task.advisory'))}</p>` : ''}
    </section>
    ${done ? `<p class="ok" id="doneout">${esc(t('scan.checkedout'))}</p>` : `<form id="checkout"><h2>${esc(t('visit.checkout'))}</h2>
      <label for="findings">${esc(t('col.findings'))}</label><textarea id="findings" name="findings" required rows="5"></textarea>
      <label for="photos">${esc(t('scan.photos'))}</label>
      <input id="photos" name="photos" type="file" accept="image/*" capture="environment" multiple aria-describedby="photoshint">
      <p id="photoshint" class="muted">${esc(t('scan.photoshint'))}</p>
      <p><button>${esc(t('visit.checkout'))}</button></p><p id="err" class="error" role="status"></p></form>`}
    <p><a href="/#/work">${esc(t('nav.work'))}</a></p>`;
  const form = main.querySelector('#checkout');
  if (!form) return;
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const button = form.querySelector('button'); button.disabled = true;
    try {
      const out = await post(`/api/visits/${v.id}/check-out`, {findings: form.elements.findings.value,
                                                               photos: await filesAsBase64(form.elements.photos)});
      drawVisit(me, out, p);
    } catch (err) { button.disabled = false; form.querySelector('#err').textContent = err.message; }
  });
}

async function start() {
  translateDom();
  document.title = `${t('scan.title')} · ${t('app.title')}`;
  languageSwitch();
  let me;
  try { me = await get('/auth/me'); } catch (e) { if (e.status === 401) return signIn(); throw e; }
  document.getElementById('who').textContent = t('scan.who', {user: me.user_id, role: t(`role.${me.role}`)});
  if (me.role !== 'inspector') { main.innerHTML = `<p class="error">${esc(t('scan.inspectorsonly'))}</p>`; return; }
  if (!token) { main.innerHTML = `<p class="error">${esc(t('scan.notoken'))}</p>`; return; }
  try {
    drawForm(me, await post('/api/visits/scan', {token}));
  } catch (err) {
    main.innerHTML = `<p class="error" id="scanerr">${esc(t('scan.badcode'))}</p><p class="muted">${esc(err.message)}</p>`;
  }
}

start();
