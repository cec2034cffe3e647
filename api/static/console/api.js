// Talking to the API. The session is an HttpOnly cookie set by POST /auth/login: every
// fetch (same origin) and the EventSource send it, so no page ever handles a token.

export class HttpError extends Error {
  constructor(status, detail) { super(detail || `HTTP ${status}`); this.status = status; }
}

async function detailOf(r) {
  try { const b = await r.json(); return typeof b.detail === 'string' ? b.detail : JSON.stringify(b.detail); }
  catch { return `HTTP ${r.status}`; }
}

export async function get(url) {
  const r = await fetch(url, {headers: {accept: 'application/json'}});
  if (!r.ok) throw new HttpError(r.status, await detailOf(r));
  return r.json();
}

// A route that may not exist on this server (e.g. /api/tasks before it is deployed):
// null on 404, the JSON otherwise.
export async function getOptional(url) {
  try { return await get(url); } catch (e) { if (e.status === 404) return null; throw e; }
}

export async function post(url, body) {
  const r = await fetch(url, {method: 'POST', headers: {'content-type': 'application/json'},
                              body: JSON.stringify(body ?? {})});
  if (!r.ok) throw new HttpError(r.status, await detailOf(r));
  return r.status === 204 ? null : r.json();
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

export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString(undefined, {dateStyle: 'short', timeStyle: 'medium'});
}

export const num = (v, digits = 3) => v === null || v === undefined ? '' : Number(v).toPrecision(digits);
export const pct = v => v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)} %`;

// an element from an HTML string (the caller escapes what it interpolates)
export function html(s) {
  const t = document.createElement('template'); t.innerHTML = s.trim(); return t.content.firstElementChild;
}

// HJ 212 pollutant codes a regulator reads every day, named (the code stays: it is what
// the devices, rules and exports use)
const POLLUTANTS = {a21026: 'SO₂', a21002: 'NOₓ', a34013: 'particulates', a19001: 'O₂',
  a01011: 'flue-gas velocity', a01012: 'flue-gas temp.', a01013: 'flue-gas pressure',
  a01014: 'flue-gas humidity', a21005: 'CO', a21024: 'HCl', a05002: 'CH₄', a24088: 'NMHC',
  w01018: 'COD', w21003: 'NH₃-N', w01001: 'pH', w00000: 'flow', w21011: 'total P', w21001: 'total N'};
export const pollutant = code => code ? (POLLUTANTS[code] ? `${code} ${POLLUTANTS[code]}` : code) : '';
