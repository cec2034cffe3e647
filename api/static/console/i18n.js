// Languages, names and the one time convention of the console. Every string a page
// shows comes from a catalogue (i18n/zh-CN.json, i18n/en.json; tests/unit/test_i18n.py
// fails when a key used here or in a page is missing from either). Every time is the
// sites' local time (Asia/Shanghai), 24-hour, so a regulator never converts in their head.

export const LANGS = ['zh-CN', 'en'];
export const SITE_TZ = 'Asia/Shanghai';
const STORE_KEY = 'offsite.lang';

// stored choice first, then the browser's languages; Chinese of any region reads zh-CN
export function pickLang(stored, browserLangs) {
  if (LANGS.includes(stored)) return stored;
  for (const l of browserLangs || []) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'zh-CN';  // the users are Chinese: the default when the browser names neither
}

function storedLang() { try { return localStorage.getItem(STORE_KEY); } catch { return null; } }
const browserLangs = navigator.languages?.length ? navigator.languages : [navigator.language];

// who is signed in, and the language they chose (kept per user on the server); a
// signed-out page (the sign-in form) has only this browser's choice
async function account() {
  try {
    const r = await fetch('/auth/me', {headers: {accept: 'application/json'}});
    if (!r.ok) return {signedIn: false, lang: null};
    const me = await r.json();
    return {signedIn: true, lang: me.lang ?? null};
  } catch { return {signedIn: false, lang: null}; }
}
const who = await account();

// a language picked on the sign-in form, just before signing in, is that person's choice:
// it becomes their setting on the server (the last explicit pick wins)
const PICKED_KEY = 'offsite.lang.signin';
function takePicked() {
  try {
    const l = sessionStorage.getItem(PICKED_KEY);
    sessionStorage.removeItem(PICKED_KEY);
    return LANGS.includes(l) ? l : null;
  } catch { return null; }
}
async function saveLang(l) {
  try {
    const r = await fetch('/auth/me/language', {method: 'PUT', headers: {'content-type': 'application/json'},
                                                body: JSON.stringify({lang: l})});
    return r.ok;
  } catch { return false; }  // offline: the next choice is kept
}
if (who.signedIn) {
  const picked = takePicked();
  if (picked && picked !== who.lang && await saveLang(picked)) who.lang = picked;
}

// signed in: the user's own choice, else the browser's (a new user follows the browser);
// signed out: what was picked in this browser, else the browser's
export const lang = pickLang(who.signedIn ? who.lang : storedLang(), browserLangs);

async function load(l) {
  const r = await fetch(`/static/console/i18n/${l}.json`);
  return r.ok ? r.json() : {};
}
const catalogue = await load(lang);
document.documentElement.lang = lang;

// kept per user on the server (every browser and phone they sign in on), and in this
// browser for its sign-in form
export async function setLang(l) {
  if (!LANGS.includes(l)) return;
  try { localStorage.setItem(STORE_KEY, l); } catch { /* private mode: this page only */ }
  if (who.signedIn) await saveLang(l);
  else {
    try { sessionStorage.setItem(PICKED_KEY, l); } catch { /* private mode: this page only */ }
  }
  location.reload();
}

// t('feed.title'), t('critical.more', {n: 3}); a missing key shows as itself (and fails a test)
export function t(key, vars) {
  let s = catalogue[key];
  if (s === undefined) s = key;
  return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
}

// fills [data-i18n] (text), [data-i18n-placeholder], [data-i18n-aria-label] and
// [data-i18n-title] under root: what the HTML files declare
export function translateDom(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const attr of ['placeholder', 'aria-label', 'title']) {
    const data = `data-i18n-${attr}`;
    for (const el of root.querySelectorAll(`[${data}]`)) el.setAttribute(attr, t(el.getAttribute(data)));
  }
}

// ---- time: one convention, the site's local time, 24 h -------------------------------
const PARTS = new Intl.DateTimeFormat('en-GB', {timeZone: SITE_TZ, hourCycle: 'h23', year: 'numeric',
  month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'});
function parts(d) {
  const o = {};
  for (const p of PARTS.formatToParts(d)) o[p.type] = p.value;
  return o;
}
const toDate = v => (v instanceof Date ? v : typeof v === 'number' ? new Date(v) : new Date(v));
export const zoneLabel = () => t('time.zone');

// '2026-12-06 11:01:50' in the site's zone; {seconds: false} drops seconds, {zone: true} adds it
export function when(v, {seconds = true, zone = false} = {}) {
  if (v === null || v === undefined || v === '') return '';
  const d = toDate(v);
  if (isNaN(d)) return String(v);
  const p = parts(d);
  const s = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${seconds ? ':' + p.second : ''}`;
  return zone ? `${s} ${zoneLabel()}` : s;
}
export function day(v) {
  const d = toDate(v);
  if (isNaN(d)) return String(v ?? '');
  const p = parts(d);
  return `${p.year}-${p.month}-${p.day}`;
}
// a chart tick: the time of day, with the date where the day changes or ticks are days apart
export function tick(epochS, incrS, prevS) {
  const p = parts(new Date(epochS * 1000));
  const hm = `${p.hour}:${p.minute}`;
  if (incrS >= 86400) return `${p.month}-${p.day}`;
  const newDay = prevS === null || prevS === undefined || day(prevS * 1000) !== day(epochS * 1000);
  return newDay ? `${p.month}-${p.day} ${hm}` : hm;
}
// 'in 2 d 3 h' / 'overdue by 5 h', for deadlines
export function countdown(v, now = Date.now()) {
  const ms = toDate(v).getTime() - now;
  const abs = Math.abs(ms), d = Math.floor(abs / 86400e3), h = Math.floor((abs % 86400e3) / 3600e3);
  const m = Math.floor((abs % 3600e3) / 60e3);
  const span = d ? t('time.dh', {d, h}) : h ? t('time.hm', {h, m}) : t('time.m', {m});
  return ms >= 0 ? t('time.left', {span}) : t('time.overdue', {span});
}

// ---- monitoring vocabulary -------------------------------------------------------------
// units by HJ 212 code (language-neutral); pH has none
const UNITS = {a21026: 'mg/m³', a21002: 'mg/m³', a34013: 'mg/m³', a21005: 'mg/m³', a21024: 'mg/m³',
  a05002: 'mg/m³', a24088: 'mg/m³', a19001: '%', a01011: 'm/s', a01012: '°C', a01013: 'kPa',
  a01014: '%', a00000: 'm³/h', w00000: 'L/s', w01018: 'mg/L', w21003: 'mg/L', w21001: 'mg/L',
  w21011: 'mg/L', w01009: 'mg/L', w01019: 'mg/L', w01001: ''};
export const POLLUTANT_CODES = Object.keys(UNITS);
export const unitOf = code => UNITS[code] ?? '';
// the name a regulator reads ('二氧化硫 SO₂'); an unknown code stays the code
export function pollutantName(code) {
  if (!code) return '';
  const key = `pollutant.${code}`;
  const name = t(key);
  return name === key ? code : name;
}
// name and code, for lists and filters
export const pollutant = code => (code ? (pollutantName(code) === code ? code : `${pollutantName(code)} (${code})`) : '');
// a value with its unit: '35.2 mg/m³'
export function withUnit(v, code, digits = 3) {
  if (v === null || v === undefined || v === '') return '';
  const u = unitOf(code);
  const n = Number(v);
  const s = Number.isFinite(n) ? (Math.abs(n) >= 10 ** digits ? n.toFixed(0) : String(Number(n.toPrecision(digits)))) : String(v);
  return u ? `${s} ${u}` : s;
}
export const FLAGS = ['N', 'F', 'M', 'S', 'D', 'C', 'T', 'B'];
export const flagName = f => (FLAGS.includes(f) ? t(`flag.${f}`) : f || '');
// 'exceedance.hour' → '超标（小时均值）'
export function ruleName(rule) {
  if (!rule) return '';
  const [base, kind] = String(rule).split('.');
  const key = `rule.${base}`;
  const name = t(key) === key ? base : t(key);
  return kind ? `${name}${t(`kind.${kind}`) === `kind.${kind}` ? '.' + kind : t(`kind.${kind}`)}` : name;
}
export const RULES = ['exceedance', 'exceedance_1h', 'exceedance_1d', 'implausible', 'spike', 'flatline',
  'stat', 'seasonal', 'noise', 'spikes', 'drift', 'slow_drift', 'slow_drift_water', 'clamp', 'dilution', 'flow_zero', 'false_stop', 'copy_paste', 'flag_abuse', 'capture', 'offline'];
// an alert's message in the reader's language: the rule's sentence with the alert's figures
// (the server's own English text stays the evidence, shown in English and as a tooltip)
export function alertMessage(a) {
  if (lang === 'en' || !a) return a?.message ?? '';
  const base = String(a.rule || '').split('.')[0];
  const key = `msg.${base}`;
  const vars = {pollutant: pollutantName(a.pollutant) || t('msg.device'), worst: withUnit(a.worst_value, a.pollutant),
                limit: withUnit(a.limit_value, a.pollutant), count: a.count ?? ''};
  return t(key) === key ? a.message ?? '' : t(key, vars);
}
export const severityName = s => t(`severity.${s}`);
export const stateName = s => t(`state.${s}`);
export const roleName = r => t(`role.${r}`);
