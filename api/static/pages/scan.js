// the scan-code page (scan.html): sign in, then check in with the code's token
const token = new URLSearchParams(location.search).get('token') || '';
const show = t => document.getElementById('out').textContent = t;
const me = await fetch('/auth/me');
if (me.ok) {
  const u = await me.json();
  document.getElementById('who').textContent = `signed in as ${u.user_id} (${u.role})`;
  document.getElementById('f').hidden = false;
} else {
  const login = document.getElementById('login'); login.hidden = false;
  login.addEventListener('submit', async e => {
    e.preventDefault();
    const f = new FormData(login);
    const r = await fetch('/auth/login', {method:'POST', headers:{'content-type':'application/json'},
      body: JSON.stringify({username: f.get('username'), password: f.get('password')})});
    if (r.ok) location.reload(); else show((await r.json()).detail);
  });
}
document.getElementById('f').addEventListener('submit', async e => {
  e.preventDefault();
  const f = new FormData(e.target), body = {token, purpose: f.get('purpose')};
  if (f.get('alert_id')) body.alert_id = Number(f.get('alert_id'));
  const r = await fetch('/api/visits/check-in', {method:'POST', headers:{'content-type':'application/json'}, body: JSON.stringify(body)});
  document.getElementById('out').textContent = JSON.stringify(await r.json(), null, 2);
});
