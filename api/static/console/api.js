// Talking to the API. The session is an HttpOnly cookie set by POST /auth/login: every
// fetch (same origin) and the EventSource send it, so no page ever handles a token.

import {lang} from '/static/console/i18n.js';

export class HttpError extends Error {
  constructor(status, detail) { super(detail || `HTTP ${status}`); this.status = status; }
}

async function detailOf(r) {
  try {
    const b = await r.json();
    if (typeof b.detail === 'string') return b.detail;
    // a validation error: the field and why, not a JSON dump
    if (Array.isArray(b.detail)) return b.detail.map(d => `${(d.loc || []).slice(1).join('.')}: ${d.msg}`).join('; ');
    return JSON.stringify(b.detail);
  }
  catch { return `HTTP ${r.status}`; }
}

// the API answers its human messages in the console's language (codes stay the same)
const LANG_HEADER = {'accept-language': lang === 'en' ? 'en' : 'zh-CN,zh;q=0.9'};

export async function get(url) {
  const r = await fetch(url, {headers: {accept: 'application/json', ...LANG_HEADER}});
  if (!r.ok) throw new HttpError(r.status, await detailOf(r));
  return r.json();
}

// A route that may not exist on this server (e.g. /api/tasks before it is deployed):
// null on 404, the JSON otherwise.
export async function getOptional(url) {
  try { return await get(url); } catch (e) { if (e.status === 404) return null; throw e; }
}

export async function post(url, body) { return send('POST', url, body); }
export async function put(url, body) { return send('PUT', url, body); }
export async function del(url) { return send('DELETE', url); }

async function send(method, url, body) {
  const r = await fetch(url, {method, headers: {'content-type': 'application/json', ...LANG_HEADER},
                              body: method === 'DELETE' ? undefined : JSON.stringify(body ?? {})});
  if (!r.ok) throw new HttpError(r.status, await detailOf(r));
  return r.status === 204 ? null : r.json();
}

// files of an <input type=file> → [{filename, content_type, content_base64}], as the
// API takes attachments and photos
export async function filesAsBase64(input) {
  const out = [];
  for (const f of input?.files || []) {
    const b64 = await new Promise((ok, fail) => {
      const r = new FileReader();
      r.onload = () => ok(String(r.result).split(',', 2)[1] || '');
      r.onerror = () => fail(r.error);
      r.readAsDataURL(f);
    });
    out.push({filename: f.name, content_type: f.type || 'application/octet-stream', content_base64: b64});
  }
  return out;
}

// enterprise id → name, fetched once per page load (lists carry ids; people read names)
let names = null;
export async function enterpriseNames() {
  names ??= get('/api/enterprises').then(list => new Map(list.map(e => [e.id, e.name]))).catch(() => new Map());
  return names;
}

// query string from an object; arrays repeat the key, empty values are left out
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined && x !== null && x !== '') u.append(k, x);
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}

export const esc = s => String(s ?? '').replace(/[&<>"']/g,
  c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));

export const num = (v, digits = 3) => v === null || v === undefined ? '' : Number(v).toPrecision(digits);
export const pct = v => v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)} %`;

// an element from an HTML string (the caller escapes what it interpolates)
export function html(s) {
  const tpl = document.createElement("template"); tpl.innerHTML = s.trim(); return tpl.content.firstElementChild;
}

// names, units and times live in i18n.js; re-exported so pages import from one place
export {when, day, pollutant, pollutantName, withUnit, unitOf, t} from '/static/console/i18n.js';
