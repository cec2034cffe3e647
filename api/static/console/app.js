// The console's shell: sign-in, role-aware navigation, a hash router over the pages,
// and one live alert stream shared by every page (the critical-alert highlight shows
// wherever the regulator is).
import {get, post, esc, HttpError} from '/static/console/api.js';
import {t, lang, LANGS, setLang, translateDom, ruleName, alertMessage, roleName} from '/static/console/i18n.js';
import * as feed from '/static/console/feed.js';
import * as alertPage from '/static/console/alert.js';
import * as devicePage from '/static/console/device.js';
import * as enterprisePage from '/static/console/enterprise.js';
import * as visitsPage from '/static/console/visits.js';
import * as lists from '/static/console/lists.js';
import * as overview from '/static/console/overview.js';
import * as cases from '/static/console/cases.js';
import * as admin from '/static/console/admin.js';

const view = document.getElementById('view');
const live = new EventTarget();  // re-dispatches SSE 'alert' events to the current page

// route → page; each page's render(view, ctx) may return a cleanup function
const ROUTES = [
  [/^#\/overview$/, () => overview],
  [/^#\/feed$/, () => feed],
  [/^#\/cases$/, () => cases],
  [/^#\/case\/(\d+)$/, () => ({render: cases.renderCase})],
  [/^#\/tasks$/, () => ({render: cases.renderTasks})],
  [/^#\/invitations$/, () => ({render: cases.renderInvitations})],
  [/^#\/guard$/, () => ({render: cases.renderGuard})],
  [/^#\/admin$/, () => admin],
  [/^#\/alert\/(\d+)$/, () => alertPage],
  [/^#\/devices$/, () => lists.devices],
  [/^#\/device\/([^/?]+)$/, () => devicePage],
  [/^#\/enterprises$/, () => lists.enterprises],
  [/^#\/enterprise\/([^/?]+)$/, () => enterprisePage],
  [/^#\/enterprise\/([^/?]+)\/qr$/, () => ({render: enterprisePage.renderQrSheet})],
  [/^#\/visits$/, () => visitsPage],
  [/^#\/visit\/(\d+)$/, () => ({render: visitsPage.renderDetail})],
  [/^#\/work$/, () => lists.work],
];

function homeFor(me) {
  if (me.role === 'enterprise') return `#/enterprise/${encodeURIComponent(me.enterprise_id)}`;
  if (me.role === 'inspector') return '#/work';
  return '#/overview';
}

function navFor(me) {
  const staff = ['admin', 'regulator'].includes(me.role);
  const items = [];
  if (staff) items.push(['#/overview', t('nav.overview')]);
  if (me.role === 'inspector') items.push(['#/work', t('nav.work')]);
  items.push(['#/feed', t('nav.feed')]);
  if (me.role === 'enterprise') items.push([homeFor(me), t('nav.mysite')]);
  else items.push(['#/enterprises', t('nav.enterprises')]);
  items.push(['#/devices', t('nav.devices')], ['#/cases', t('nav.cases')]);
  if (me.role !== 'enterprise') items.push(['#/tasks', t('nav.tasks')]);
  items.push(['#/visits', t('nav.visits')], ['#/invitations', t('nav.invitations')]);
  if (staff) items.push(['#/guard', t('nav.guard')]);
  if (me.role !== 'inspector') items.push(['/api/reports/page', t('nav.reports')]);
  if (me.role === 'admin') items.push(['#/admin', t('nav.admin')]);
  return items.map(([h, t]) => `<a href="${h}">${esc(t)}</a>`).join('');
}

function splitHash() {
  const h = location.hash || '';
  const i = h.indexOf('?');
  return i < 0 ? [h, new URLSearchParams()] : [h.slice(0, i), new URLSearchParams(h.slice(i + 1))];
}

let cleanup = null;
async function route(me) {
  if (cleanup) { try { cleanup(); } catch { /* a page that failed to draw */ } cleanup = null; }
  const [path, params] = splitHash();
  if (!path || path === '#' || path === '#/') { location.replace(homeFor(me)); return; }
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('here', path.startsWith(a.getAttribute('href').split('?')[0]));
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    view.innerHTML = `<p class="muted">${esc(t('app.loading'))}</p>`;
    view.dataset.page = '';
    try {
      cleanup = await page().render(view, {me, args: m.slice(1).map(decodeURIComponent), params, live}) || null;
    } catch (e) {
      if (e instanceof HttpError && e.status === 401) { location.reload(); return; }  // session over: sign in again
      view.innerHTML = e instanceof HttpError && e.status === 404
        ? `<h2>${esc(t('app.notfound'))}</h2><p class="error">${esc(e.message)}</p><p><a href="${homeFor(me)}">${esc(t('app.back'))}</a></p>`
        : `<h2>${esc(t('app.loadfailed'))}</h2><p class="error">${esc(e.message)}</p>`;
      view.dataset.page = 'error';
    }
    return;
  }
  view.innerHTML = `<h2>${esc(t('app.notfound'))}</h2><p>${esc(t('app.nopage', {path}))}</p>`;
  view.dataset.page = 'error';
}

// a sound-free, visible highlight of criticals nobody has acknowledged, on any page: the
// count comes from the server, so it survives a reload and an engine that cleared them
const banner = document.getElementById('critical');
let hiddenAt = -1;  // the count when the person hid the banner (a new critical shows it again)
async function refreshUnseen(fresh = null) {
  let u;
  try { u = await get('/api/alert-unseen?limit=5'); } catch { return; }
  document.title = u.count ? `(${u.count}) ● ${t('app.title')}` : t('app.title');
  banner.dataset.count = String(u.count);
  if (!u.count || u.count === hiddenAt) { banner.hidden = !u.count || u.count === hiddenAt; if (!u.count) hiddenAt = -1; return; }
  const a = u.alerts.find(x => x.id === fresh?.id) || fresh || u.alerts[0];  // the stored one carries names
  banner.innerHTML = `<strong>${esc(fresh ? t('critical.new') : t('critical.unseen', {n: u.count}))}</strong>
    ${a ? `<a href="#/alert/${a.id}">#${a.id}</a> ${esc(a.enterprise_name || a.enterprise_id)} · ${esc(ruleName(a.rule))} — ${esc(alertMessage(a))}` : ''}
    ${u.count > 1 ? `<span>${esc(t('critical.more', {n: u.count - 1}))}</span>` : ''}
    <a href="#/overview">${esc(t('critical.all'))}</a> <button type="button" data-hide>${esc(t('critical.dismiss'))}</button>`;
  banner.hidden = false;
  if (fresh) { banner.classList.remove('flash'); void banner.offsetWidth; banner.classList.add('flash'); }
}
banner.addEventListener('click', e => {
  if (e.target.closest('button[data-hide]')) { hiddenAt = Number(banner.dataset.count); banner.hidden = true; }
});
document.addEventListener('offsite:unseen-changed', () => refreshUnseen());
const critical = a => refreshUnseen(a);

// The live stream, resumed where it stopped. The server ends a stream with `event: end`:
// "signed_out" → the session is over, sign in again; anything else (a restart, a lost
// feed) → reconnect with ?after=<the last event id> so nothing is lost or seen twice. A
// stream the browser gave up on (an error status) is retried the same way, with backoff.
const RETRY_FIRST_MS = 1000, RETRY_MAX_MS = 30000;
let lastEventId = null, retryMs = RETRY_FIRST_MS, stream = null;

function position(e) {
  const id = Number(e.lastEventId);
  if (e.lastEventId !== '' && Number.isFinite(id)) lastEventId = Math.max(lastEventId ?? id, id);
}

function resumeLater(status) {
  stream?.close();
  status.textContent = t('status.reconnecting'); status.className = '';
  const wait = retryMs;
  retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  setTimeout(async () => {
    try { await get('/auth/me'); }
    catch (e) {
      if (e.status === 401) { location.reload(); return; }  // the sign-in form
      resumeLater(status); return;  // the server is still away
    }
    connect(status);
  }, wait);
}

function connect(status) {
  const es = stream = new EventSource(`/api/alerts/stream${lastEventId === null ? '' : `?after=${lastEventId}`}`);
  document.body.dataset.stream = 'connecting';
  es.onopen = () => { status.textContent = t('status.live'); status.className = 'live'; };
  es.onerror = () => {
    status.textContent = t('status.reconnecting'); status.className = '';
    if (es.readyState === EventSource.CLOSED) resumeLater(status);  // the browser gave up
  };
  es.addEventListener('ready', e => {
    position(e); retryMs = RETRY_FIRST_MS;
    document.body.dataset.stream = 'live';
    document.body.dataset.streamAfter = String(lastEventId ?? '');
  });
  es.addEventListener('end', e => {
    position(e); es.close();
    document.body.dataset.stream = 'ended';
    let reason = '';
    try { reason = JSON.parse(e.data).reason; } catch { /* an old server: resume */ }
    if (reason === 'signed_out') { location.reload(); return; }
    resumeLater(status);
  });
  es.addEventListener('alert', e => {
    const id = Number(e.lastEventId);
    if (lastEventId !== null && id <= lastEventId) return;  // already shown
    position(e);
    const a = JSON.parse(e.data);
    if (a.severity === 'critical' && (a.event === 'opened' || a.event === 'reopened')) critical(a);
    else if (a.severity === 'critical') refreshUnseen();
    live.dispatchEvent(new CustomEvent('alert', {detail: a}));
  });
}

async function signIn() {
  const form = document.getElementById('login');
  form.hidden = false; view.hidden = true;
  document.getElementById('status').textContent = t('status.signedout');
  form.addEventListener('submit', async e => {
    e.preventDefault();
    const f = new FormData(form);
    try {
      await post('/auth/login', {username: f.get('username'), password: f.get('password')});
      location.reload();
    } catch (err) {
      document.getElementById('loginerr').textContent = err.status === 429 ? t('login.toomany') : t('login.wrong');
    }
  });
}

// the language switch in the header: zh-CN / English, kept in this browser
function languageSwitch() {
  const sel = document.getElementById('lang');
  sel.innerHTML = LANGS.map(l => `<option value="${l}" ${l === lang ? 'selected' : ''}>${esc(t(`lang.${l}`))}</option>`).join('');
  sel.addEventListener('change', () => setLang(sel.value));
}

// every form is handled by its page's script: a submit nobody handled must not reload
// the page with the form's fields in the address
document.addEventListener('submit', e => { if (!e.defaultPrevented) e.preventDefault(); });

// a request a page did not wait for that finds the session over (401): to the sign-in
// form, not an error in the console
window.addEventListener('unhandledrejection', e => {
  if (e.reason instanceof HttpError && e.reason.status === 401) { e.preventDefault(); location.reload(); }
});

async function main() {
  translateDom();
  document.title = t('app.title');
  languageSwitch();
  let me;
  try { me = await get('/auth/me'); } catch (e) { if (e.status === 401) return signIn(); throw e; }
  document.body.dataset.role = me.role;
  document.getElementById('who').textContent = `${me.user_id} · ${roleName(me.role)}${me.enterprise_id ? ' · ' + me.enterprise_id : ''}`;
  document.getElementById('nav').innerHTML = navFor(me);
  const out = document.getElementById('logout'); out.hidden = false;
  out.addEventListener('click', async () => { await post('/auth/logout'); location.hash = ''; location.reload(); });
  connect(document.getElementById('status'));
  refreshUnseen();
  window.addEventListener('hashchange', () => route(me));
  await route(me);
}

main();
