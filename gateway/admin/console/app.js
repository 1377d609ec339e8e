/*
 * The operator console (docs/console.md): a single page on the admin
 * listener that reads the admin JSON API and sends its actions.
 *
 * Rules this file keeps (the page is served with a Content-Security-Policy
 * without 'unsafe-inline'):
 * - every piece of data reaches the DOM through textContent or
 *   createElement (partner names and journal fields come from outside);
 *   innerHTML is never used;
 * - no inline handler or style attribute: listeners are added here, and the
 *   only styles set from here go through the CSSOM (element.style.width);
 * - the admin token is read from the login field for the single call that
 *   opens a session and never stored; the session cookie is HttpOnly, and
 *   the CSRF value lives in the variable <session> below (no localStorage,
 *   no sessionStorage): a reload of the page means logging in again.
 */
'use strict';

(function () {
  const session = { csrf: null, operator: null, role: null };

  const OUTCOMES = ['forwarded', 'denied', 'quota', 'error'];
  const EVENT_TYPES = ['auth.failures', 'cert.unknown', 'siren.enumeration', 'quota.storm',
    'maintenance.access', 'cert.expiring', 'admin.reload', 'admin.reload_refused', 'admin.suspend',
    'admin.resume', 'policy.rejected', 'admin.auth_failed', 'admin.auth_blocked', 'admin.session',
    'datapass.webhook', 'datapass.sync', 'habilitation.expiring', 'journal.broken',
    'journal.break_ack', 'journal.anchor_failed', 'admin.journal_hold', 'admin.journal_hold_lifted',
    'suspension.expired', 'admin.environment_cut', 'admin.environment_restored', 'admin.event_ack'];
  const SOON_DAYS = 30;
  const DAY_MS = 86400000;

  /* ---------------------------------------------------------------- DOM */

  const $ = (id) => document.getElementById(id);

  /* An element; <attrs>: "class", "text" (textContent), anything else an
   * attribute (true: present, false/null/undefined: absent). Children are
   * nodes or strings (strings become text nodes). */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of kids.flat()) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* Replace the rows of <tbody>, keeping the keyboard focus on the control
   * with the same data-key when the refresh rebuilt it. */
  function replaceRows(tbody, rows) {
    const active = document.activeElement;
    const key = active && tbody.contains(active) ? active.getAttribute('data-key') : null;
    tbody.replaceChildren(...rows);
    if (key) {
      const again = Array.from(tbody.querySelectorAll('[data-key]')).find((x) => x.getAttribute('data-key') === key);
      if (again) again.focus();
    }
  }

  function emptyRow(cols, text) {
    return el('tr', { class: 'empty' }, el('td', { colspan: cols, text }));
  }

  function kv(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([k, v, cls]) => [
      el('dt', { text: k }),
      v instanceof Node ? el('dd', { class: cls }, v) : el('dd', { class: cls, text: v }),
    ]));
  }

  /* ---------------------------------------------------------- formatting */

  /* An ISO 8601 date-time as "YYYY-MM-DD HH:MM:SSZ"; anything else as is. */
  function fmtTime(iso) {
    if (iso === null || iso === undefined || iso === '') return '–';
    const s = String(iso);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(s)) return s;
    return s.replace('T', ' ').replace(/\.\d+(?=Z|[+-]\d\d:?\d\d$)/, '');
  }
  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');
  const fmtPct = (x) => (typeof x === 'number' ? (x * 100).toFixed(x > 0 && x < 0.001 ? 3 : 1) + ' %' : '–');
  const fmtMs = (x) => (typeof x === 'number' ? x.toFixed(x < 10 ? 2 : 1) + ' ms' : '–');
  function fmtBytes(n) {
    if (typeof n !== 'number') return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }
  /* How long ago <iso> was ("12 s ago", "3 min ago", "5 h ago"), or its
   * date beyond a day. */
  function fmtAgo(iso) {
    if (!iso) return 'never';
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (Number.isNaN(s)) return String(iso);
    if (s < 60) return Math.max(0, Math.round(s)) + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return fmtTime(iso);
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  /* "k=v; k=v" of an object's members (a detail, a slot), as text. */
  function fmtObject(o, skip) {
    if (!o || typeof o !== 'object') return fmtValue(o);
    return Object.entries(o).filter(([k]) => !(skip || []).includes(k))
      .map(([k, v]) => k + '=' + fmtValue(v)).join('; ');
  }

  /* An expiry date: its text and class, highlighted when less than 30 days
   * away ("soon") or past ("expired"). */
  function expiry(iso) {
    if (!iso) return { text: '–', cls: null };
    const days = (Date.parse(iso) - Date.now()) / DAY_MS;
    if (Number.isNaN(days)) return { text: String(iso), cls: null };
    const day = String(iso).slice(0, 10);
    if (days < 0) return { text: day + ' (expired)', cls: 'expired' };
    if (days < SOON_DAYS) return { text: day + ' (' + Math.floor(days) + ' d left)', cls: 'soon' };
    return { text: day, cls: null };
  }

  function expiryCell(iso) {
    const x = expiry(iso);
    return el('td', { class: x.cls, text: x.text });
  }

  /* ---------------------------------------------------------------- API */

  /* One call of the admin API with the session cookie; non-GET calls carry
   * the CSRF value. Resolves to {status, ok, data}; a 401 ends the session
   * on the page. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET') headers['X-CSRF-Token'] = session.csrf || '';
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      return { status: 0, ok: false, data: { error: 'network', message: String(e.message || e) } };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401 && session.csrf) ended('Your session ended: log in again.');
    return { status: r.status, ok: r.ok, data };
  }

  function apiError(res) {
    const d = res.data || {};
    let m = (res.status ? res.status + ' ' : '') + (d.error || 'error');
    if (d.message) m += ': ' + d.message;
    return m;
  }

  /* GET <path>, throwing on failure (the poller shows it). */
  async function get(path) {
    const res = await api('GET', path);
    if (!res.ok) throw new Error(path + ': ' + apiError(res));
    return res.data || {};
  }

  /* --------------------------------------------------------------- flash */

  let flashTimer = null;
  function flash(kind, text) {
    const f = $('flash');
    f.className = kind;
    f.textContent = text;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { f.textContent = ''; f.className = ''; }, kind === 'error' ? 15000 : 6000);
  }

  /* --------------------------------------------------------- log in / out */

  async function login(ev) {
    ev.preventDefault();
    const input = $('login-token');
    const token = input.value.trim();
    input.value = '';
    $('login-error').textContent = '';
    if (!token) { $('login-error').textContent = 'Enter your admin token.'; return; }
    $('login-submit').disabled = true;
    let r, data = null;
    try {
      r = await fetch('/admin/session', {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
      });
      try { data = await r.json(); } catch (e) { data = null; }
    } catch (e) {
      $('login-error').textContent = 'The gateway did not answer: ' + (e.message || e);
      return;
    } finally {
      $('login-submit').disabled = false;
    }
    if (!r.ok || !data || typeof data.csrf !== 'string') {
      $('login-error').textContent = r.status === 401 ? 'Unknown token.'
        : r.status === 429 ? 'Too many failed attempts from this address: wait and retry.'
          : 'Log in refused: ' + apiError({ status: r.status, data });
      input.focus();
      return;
    }
    session.csrf = data.csrf;
    session.operator = data.operator;
    session.role = data.role;
    $('who-name').textContent = data.operator;
    $('who-role').textContent = data.role === 'operator' ? 'operator' : 'read-only';
    $('who-role').className = 'badge role-' + (data.role === 'operator' ? 'operator' : 'read');
    $('who').hidden = false;
    $('nav').hidden = false;
    document.body.classList.toggle('readonly', !canAct());
    for (const b of document.querySelectorAll('button.action')) {
      b.disabled = !canAct();
      b.title = canAct() ? '' : 'Your role is read-only';
    }
    if (!location.hash || location.hash === '#login') location.hash = '#overview';
    else route(true);
  }

  async function logout() {
    if (session.csrf) await api('DELETE', '/admin/session');
    ended('Logged out.');
  }

  /* Forget the session and go back to the login form. */
  function ended(message) {
    session.csrf = null;
    session.operator = null;
    session.role = null;
    stopPolling();
    $('who').hidden = true;
    $('nav').hidden = true;
    const d = $('confirm');
    if (d.open) d.close();
    show('login', true);
    $('login-error').textContent = message || '';
  }

  const canAct = () => session.role === 'operator';

  /* A button for an action: disabled for a read-only operator. */
  function actionButton(label, key, onClick, cls) {
    const b = el('button', { type: 'button', class: 'action ' + (cls || ''), 'data-key': key, text: label });
    if (!canAct()) {
      b.disabled = true;
      b.title = 'Your role is read-only';
    }
    b.addEventListener('click', onClick);
    return b;
  }

  /* ------------------------------------------------------- views, polling */

  const VIEWS = {};
  let current = { name: null, arg: null };
  let generation = 0;
  let pollTimer = null;

  function stopPolling() {
    generation++;
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  function show(name, focus) {
    for (const s of document.querySelectorAll('main > .view')) s.hidden = s.id !== 'view-' + name;
    for (const a of document.querySelectorAll('#nav a')) {
      const on = a.getAttribute('data-view') === name || (name === 'partner' && a.getAttribute('data-view') === 'partners');
      if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    if (focus) {
      const h = document.querySelector('#view-' + name + ' h1');
      if (h) h.focus();
    }
  }

  /* Show view <name> and refresh it now and every view.every ms; a refresh
   * whose generation is stale (the view changed meanwhile) draws nothing. */
  function startView(name, arg, focus) {
    stopPolling();
    const mine = generation;
    const v = VIEWS[name];
    current = { name, arg };
    show(name, focus);
    if (v.enter) v.enter(arg);
    const alive = () => mine === generation && session.csrf !== null;
    const tick = async () => {
      if (!alive()) return;
      try {
        await v.refresh(arg, alive);
        if (alive()) document.body.classList.remove('stale');
      } catch (e) {
        if (alive()) {
          document.body.classList.add('stale');
          flash('error', String(e.message || e));
        }
      }
      if (alive()) pollTimer = setTimeout(tick, v.every);
    };
    tick();
  }

  /* After an action: draw the current view again from fresh data. */
  function refreshView() {
    if (current.name) startView(current.name, current.arg, false);
  }

  function route(focus) {
    if (!session.csrf) { show('login', true); return; }
    const h = decodeURIComponent(location.hash.replace(/^#/, ''));
    const slash = h.indexOf('/');
    const name = slash < 0 ? h : h.slice(0, slash);
    const arg = slash < 0 ? null : h.slice(slash + 1);
    if (name === 'partner' && arg) startView('partner', arg, focus);
    else if (VIEWS[name] && name !== 'partner') startView(name, null, focus);
    else startView('overview', null, focus);
  }

  /* ---------------------------------------------------- confirmation step */

  let pending = null;

  /* Ask for confirmation of an action. <opts>: title, text, fields
   * ([{name, label, type: 'text'|'textarea'|'datetime-local', required,
   * hint}]), ok (button label), run(values) -> Promise<{status, ok, data}>,
   * done(res) (optional, called with any answer), success(res) -> text. */
  function confirmAction(opts) {
    const d = $('confirm');
    pending = opts;
    $('confirm-title').textContent = opts.title;
    $('confirm-text').textContent = opts.text || '';
    $('confirm-error').textContent = '';
    $('confirm-ok').textContent = opts.ok || 'Confirm';
    $('confirm-ok').disabled = false;
    const box = $('confirm-fields');
    box.replaceChildren(...(opts.fields || []).map((f) => {
      const id = 'confirm-' + f.name;
      const input = f.type === 'textarea'
        ? el('textarea', { id, name: f.name, rows: 3, maxlength: 512, required: !!f.required })
        : el('input', { id, name: f.name, type: f.type || 'text', autocomplete: 'off', required: !!f.required });
      if (f.value) input.value = f.value;
      return el('div', { class: 'field' },
        el('label', { for: id, text: f.label + (f.required ? '' : ' (optional)') }),
        input,
        f.hint ? el('small', { class: 'muted', text: f.hint }) : null);
    }));
    d.showModal();
    const first = box.querySelector('input, textarea');
    (first || $('confirm-cancel')).focus();
  }

  async function confirmSubmit(ev) {
    ev.preventDefault();
    const opts = pending;
    if (!opts) return;
    const values = {};
    for (const f of opts.fields || []) {
      const v = $('confirm-' + f.name).value.trim();
      if (f.required && !v) {
        $('confirm-error').textContent = f.label + ' is required.';
        $('confirm-' + f.name).focus();
        return;
      }
      values[f.name] = v;
    }
    $('confirm-ok').disabled = true;
    $('confirm-error').textContent = '';
    const res = await opts.run(values);
    if (pending !== opts) return;
    $('confirm-ok').disabled = false;
    if (opts.done) opts.done(res);
    if (res.ok) {
      pending = null;
      $('confirm').close();
      flash('ok', opts.success ? opts.success(res) : opts.title + ': done.');
      refreshView();
    } else if (res.status !== 401) {
      $('confirm-error').textContent = apiError(res);
    }
  }

  function confirmCancel() {
    pending = null;
    $('confirm').close();
  }

  /* datetime-local (the operator's local time) to RFC 3339 UTC, or null. */
  function toUtc(local) {
    if (!local) return null;
    const t = new Date(local);
    if (Number.isNaN(t.getTime())) return undefined;
    return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  /* ------------------------------------------------------------ actions */

  const enc = encodeURIComponent;

  function suspend(p) {
    confirmAction({
      title: 'Suspend ' + p.client_id,
      text: 'Every request of ' + (p.organisation || p.client_id) + ' (' + p.client_id +
        ') is refused with 403 910213 from its next request on, open connections included.',
      fields: [
        { name: 'reason', label: 'Reason', type: 'textarea', required: true },
        { name: 'until', label: 'End', type: 'datetime-local', hint: 'Your local time; empty: until resumed by hand.' },
      ],
      ok: 'Suspend',
      run: (v) => {
        const body = { reason: v.reason };
        const until = toUtc(v.until);
        if (until === undefined) return Promise.resolve({ status: 0, ok: false, data: { error: 'the end is not a date' } });
        if (until) body.until = until;
        return api('POST', '/admin/consumers/' + enc(p.client_id) + '/suspend', body);
      },
      success: () => p.client_id + ' suspended.',
    });
  }

  function resume(p) {
    confirmAction({
      title: 'Resume ' + p.client_id,
      text: 'Lift the suspension of ' + (p.organisation || p.client_id) + ': its requests are served again.',
      fields: [{ name: 'reason', label: 'Reason', type: 'textarea', required: true }],
      ok: 'Resume',
      run: (v) => api('POST', '/admin/consumers/' + enc(p.client_id) + '/resume', { reason: v.reason }),
      success: () => p.client_id + ' resumed.',
    });
  }

  function placeHold(consumer) {
    confirmAction({
      title: 'Place a legal hold',
      text: 'Retention deletes no journal file while a hold is in force.',
      fields: [
        { name: 'reason', label: 'Reason', type: 'textarea', required: true },
        { name: 'consumer', label: 'Consumer (client_id)', value: consumer || '', hint: 'Empty: a hold on everything.' },
      ],
      ok: 'Place the hold',
      run: (v) => api('POST', '/admin/journal/hold', v.consumer ? { reason: v.reason, consumer: v.consumer } : { reason: v.reason }),
      success: () => 'Legal hold placed.',
    });
  }

  function liftHold(h) {
    confirmAction({
      title: 'Lift the legal hold on ' + (h.consumer || 'everything'),
      text: 'When no hold is left, retention runs at once and deletes the files past their retention.',
      ok: 'Lift the hold',
      run: () => api('DELETE', '/admin/journal/hold' + (h.consumer ? '?consumer=' + enc(h.consumer) : '')),
      success: () => 'Legal hold lifted.',
    });
  }

  function cutEnv(env) {
    confirmAction({
      title: 'Cut the ' + env + ' environment',
      text: 'Every consumer of ' + env + ' is refused with 403 910213 until the environment is restored.',
      fields: [{ name: 'reason', label: 'Reason', type: 'textarea', required: true }],
      ok: 'Cut ' + env,
      run: (v) => api('POST', '/admin/environments/' + enc(env) + '/cut', { reason: v.reason }),
      success: () => env + ' cut.',
    });
  }

  function restoreEnv(env) {
    confirmAction({
      title: 'Restore the ' + env + ' environment',
      text: 'Its consumers are served again (those suspended one by one stay suspended).',
      fields: [{ name: 'reason', label: 'Reason', type: 'textarea', required: true }],
      ok: 'Restore ' + env,
      run: (v) => api('POST', '/admin/environments/' + enc(env) + '/restore', { reason: v.reason }),
      success: () => env + ' restored.',
    });
  }

  function reload() {
    confirmAction({
      title: 'Reload the policies',
      text: 'Read the policy directory again (as SIGHUP). A rejected file keeps its previous version.',
      ok: 'Reload',
      run: () => api('POST', '/admin/reload'),
      done: showReload,
      success: (res) => 'Policies reloaded: ' + fmtNum((res.data || {}).habilitations) + ' habilitations.',
    });
  }

  /* The per-file result of a reload, under the Policies card. */
  function showReload(res) {
    const d = res.data || {};
    const box = $('ov-reload-result');
    const parts = [el('h3', { text: 'Last reload: ' + (res.ok ? 'applied' : 'refused (' + res.status + ')') })];
    if (d.message) parts.push(el('p', { text: d.message }));
    if (d.changes) {
      const c = d.changes;
      parts.push(el('p', {
        text: 'Partners ' + c.before + ' → ' + c.after + ': ' + c.added + ' added, ' + c.changed +
          ' changed, ' + c.removed + ' removed.',
      }));
    }
    const files = Array.isArray(d.files) ? d.files : null;
    const rejected = Array.isArray(d.rejected) ? d.rejected : [];
    if (files) {
      parts.push(el('table', { class: 'compact', id: 'reload-files' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'File' }), el('th', { scope: 'col', text: 'Result' }))),
        el('tbody', {}, files.map((f) => el('tr', {},
          el('td', { text: f.file }), el('td', { class: f.error ? 'bad' : 'good', text: f.error || f.result || 'loaded' }))))));
    }
    if (rejected.length) {
      parts.push(el('table', { class: 'compact', id: 'reload-rejected' },
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col', text: 'Rejected file' }), el('th', { scope: 'col', text: 'Error' }),
          el('th', { scope: 'col', text: 'Serving' }))),
        el('tbody', {}, rejected.map((f) => el('tr', {},
          el('td', { text: f.file }), el('td', { class: 'bad', text: f.error }),
          el('td', { text: f.kept_previous ? 'previous version' : 'nothing (partner refused)' }))))));
    } else if (res.ok) {
      parts.push(el('p', { class: 'good', text: 'Every file loaded.' }));
    }
    if (!res.ok && Array.isArray(d.errors)) parts.push(el('ul', {}, d.errors.map((m) => el('li', { text: m }))));
    box.replaceChildren(...parts);
  }

  function ack(e) {
    confirmAction({
      title: 'Acknowledge event ' + e.id,
      text: e.type + ' (' + e.severity + ')' + (e.consumer ? ' on ' + e.consumer : '') + ' at ' + fmtTime(e.time) + '.',
      ok: 'Acknowledge',
      run: () => api('POST', '/admin/events/' + enc(String(e.id)) + '/ack'),
      success: () => 'Event ' + e.id + ' acknowledged.',
    });
  }

  /* ------------------------------------------------------------ overview */

  function niceMax(x) {
    if (!(x > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
  }

  /* The chart: one line per outcome, requests per second (count / step_s). */
  function drawChart(series) {
    const pts = Array.isArray(series && series.points) ? series.points : [];
    const step = (series && series.step_s) || 10;
    const W = Math.max(480, Math.round($('ov-chart').clientWidth) || 720), H = 230, L = 48, R = 10, T = 22, B = 26;
    const rate = (p, o) => ((p.outcomes && p.outcomes[o]) || 0) / step;
    let max = 0;
    const totals = {};
    for (const o of OUTCOMES) totals[o] = 0;
    for (const p of pts) for (const o of OUTCOMES) {
      max = Math.max(max, rate(p, o));
      totals[o] += (p.outcomes && p.outcomes[o]) || 0;
    }
    const ymax = niceMax(max);
    const n = Math.max(pts.length - 1, 1);
    const x = (i) => L + (i * (W - L - R)) / n;
    const y = (v) => T + (H - T - B) * (1 - v / ymax);
    const summary = 'Last 15 minutes: ' + OUTCOMES.map((o) => o + ' ' + totals[o]).join(', ') + ' requests.';
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': summary, class: 'chart', id: 'chart' });
    s.append(svg('title', {}, summary));
    for (const f of [0, 0.5, 1]) {
      const yy = y(ymax * f);
      s.append(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, class: 'grid' }));
      s.append(svg('text', { x: L - 6, y: yy + 4, class: 'axis', 'text-anchor': 'end' }, String(+(ymax * f).toFixed(2))));
    }
    s.append(svg('text', { x: L - 6, y: 11, class: 'axis', 'text-anchor': 'end' }, 'req/s'));
    [['−15 min', 0], ['−10 min', 1 / 3], ['−5 min', 2 / 3], ['now', 1]].forEach(([label, f]) => {
      s.append(svg('text', { x: L + f * (W - L - R), y: H - 6, class: 'axis', 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle' }, label));
    });
    for (const o of OUTCOMES) {
      if (!pts.length) break;
      const d = pts.map((p, i) => x(i).toFixed(1) + ',' + y(rate(p, o)).toFixed(1)).join(' ');
      s.append(svg('polyline', { points: d, class: 'line o-' + o, 'data-outcome': o }));
    }
    $('ov-chart').replaceChildren(s);
    $('ov-legend').replaceChildren(...OUTCOMES.map((o) =>
      el('li', {}, el('span', { class: 'swatch o-' + o, 'aria-hidden': 'true' }), o + ': ' + fmtNum(totals[o]))));
    return OUTCOMES.reduce((a, o) => a + totals[o], 0);
  }

  VIEWS.overview = {
    every: 5000,
    async refresh(arg, alive) {
      const [ov, envs, holds] = await Promise.all([
        get('/admin/overview'), get('/admin/environments'), get('/admin/journal/hold')]);
      if (!alive()) return;
      $('ov-now').textContent = fmtTime(ov.now);
      const total = drawChart(ov.series);

      const codes = Object.entries(ov.errors_by_code || {}).sort(([a], [b]) => a.localeCompare(b));
      replaceRows($('ov-errors'), codes.length ? codes.map(([code, n]) => el('tr', {},
        el('td', { text: code }), el('td', { text: fmtNum(n) }),
        el('td', { text: total ? fmtPct(n / total) : '–' }))) : [emptyRow(3, 'No error.')]);

      const up = ov.upstream_ms || {};
      kv($('ov-latency'), [['p50', fmtMs(up.p50)], ['p90', fmtMs(up.p90)], ['p99', fmtMs(up.p99)]]);
      const q = ov.quota_store || {};
      kv($('ov-quota'), [['Store', fmtValue(q.kind)],
        ['Degraded', q.degraded ? 'yes' : 'no', q.degraded ? 'bad' : 'good']]);
      const j = ov.journal || {};
      kv($('ov-journal'), [['State', fmtValue(j.state), j.state === 'writing' || j.state === 'ok' ? 'good' : 'bad'],
        ['Queue', fmtNum(j.queue)], ['Free space', fmtBytes(j.free_bytes)],
        ['Last checkpoint', fmtTime(j.last_checkpoint)], ['Chain verified at', fmtTime(j.verified_at)]]);
      kv($('ov-runtime'), [['Workers', fmtNum(ov.workers)], ['Connections', fmtNum(ov.connections)]]);
      const pol = ov.policies || {};
      kv($('ov-policies'), [['Loaded', fmtNum(pol.loaded)],
        ['Rejected', fmtNum(pol.rejected), pol.rejected ? 'bad' : ''], ['Pending', fmtNum(pol.pending)]]);

      replaceRows($('ov-envs'), (envs.environments || []).map((e) => {
        const cd = e.cut_detail;
        return el('tr', { 'data-env': e.environment },
          el('th', { scope: 'row', text: e.environment }),
          el('td', { class: e.cut ? 'bad' : 'good', text: e.cut ? 'cut' + (cd && cd.reason ? ': ' + cd.reason : '') : 'serving' }),
          el('td', {}, e.cut
            ? actionButton('Restore…', 'env-' + e.environment, () => restoreEnv(e.environment))
            : actionButton('Cut…', 'env-' + e.environment, () => cutEnv(e.environment), 'danger')));
      }));

      $('ov-retention').textContent = holds.retention_suspended ? 'Retention is suspended.' : 'Retention runs.';
      replaceRows($('ov-holds'), (holds.holds || []).length ? holds.holds.map((h) => el('tr', {},
        el('td', { text: h.consumer || 'everything' }), el('td', { text: h.reason }),
        el('td', { text: h.by }), el('td', { text: fmtTime(h.since) }),
        el('td', {}, actionButton('Lift…', 'hold-' + (h.consumer || ''), () => liftHold(h)))))
        : [emptyRow(5, 'No legal hold.')]);
    },
  };

  /* ------------------------------------------------------------ partners */

  const byStr = (f) => (p) => String(f(p) || '').toLowerCase();
  const PCOLS = [
    { label: 'Organisation', sort: byStr((p) => p.organisation) },
    { label: 'client_id', sort: byStr((p) => p.client_id) },
    { label: 'Environment', sort: byStr((p) => p.environment) },
    { label: 'State', sort: byStr((p) => p.state) },
    { label: 'Quota', sort: (p) => (p.quota && p.quota.limit ? p.quota.used / p.quota.limit : 0) },
    { label: 'Last call', sort: byStr((p) => p.last_call) },
    { label: 'Error rate', sort: (p) => p.error_rate || 0 },
    { label: 'Certificate until', sort: byStr((p) => p.cert_not_after || '9999') },
    { label: 'Habilitation until', sort: byStr((p) => p.habilitation_until || '9999') },
    { label: 'Suspended', sort: (p) => (p.suspension ? 1 : 0) },
    { label: 'Actions' },
  ];
  const psort = { col: 0, dir: 1 };
  let partnersCache = [];

  function partnersHead() {
    $('partners-head').replaceChildren(...PCOLS.map((c, i) => {
      const th = el('th', { scope: 'col' });
      if (!c.sort) { th.textContent = c.label; return th; }
      if (psort.col === i) th.setAttribute('aria-sort', psort.dir > 0 ? 'ascending' : 'descending');
      const b = el('button', { type: 'button', class: 'sort', 'data-col': i, text: c.label + (psort.col === i ? (psort.dir > 0 ? ' ▲' : ' ▼') : '') });
      b.addEventListener('click', () => {
        psort.dir = psort.col === i ? -psort.dir : 1;
        psort.col = i;
        partnersHead();
        drawPartners();
        $('partners-head').querySelector('[data-col="' + i + '"]').focus();
      });
      th.append(b);
      return th;
    }));
  }

  function quotaBar(q) {
    if (!q || typeof q.limit !== 'number') return el('span', { text: '–' });
    const used = q.used || 0;
    const pct = q.limit > 0 ? Math.min(100, (100 * used) / q.limit) : 0;
    const fill = el('span', { class: 'fill' });
    fill.style.width = pct.toFixed(1) + '%';
    return el('div', { class: 'quota' + (pct >= 100 ? ' full' : pct >= 80 ? ' high' : '') },
      el('span', {
        class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': q.limit, 'aria-valuenow': used,
        'aria-label': 'quota used in the last ' + (q.window_s || 60) + ' s',
      }, fill),
      el('span', { class: 'qtext', text: fmtNum(used) + ' / ' + fmtNum(q.limit) }));
  }

  function suspensionText(s) {
    if (!s) return 'no';
    let t = 'yes: ' + (s.reason || 'no reason');
    if (s.operator) t += ' (by ' + s.operator + ')';
    if (s.until) t += ', until ' + fmtTime(s.until);
    return t;
  }

  function suspendOrResume(p, key) {
    return p.suspension
      ? actionButton('Resume…', key, () => resume(p))
      : actionButton('Suspend…', key, () => suspend(p), 'danger');
  }

  function partnerRow(p) {
    const link = el('a', { href: '#partner/' + enc(p.client_id), class: 'org' });
    link.textContent = p.organisation || p.client_id;
    return el('tr', { 'data-client-id': p.client_id, class: p.suspension ? 'suspended' : null },
      el('td', { class: 'c-org' }, link),
      el('td', { class: 'c-client mono', text: p.client_id }),
      el('td', { text: p.environment }),
      el('td', { class: 'c-state' }, el('span', { class: 'badge state-' + p.state, text: p.state })),
      el('td', { class: 'c-quota' }, quotaBar(p.quota)),
      el('td', { class: 'nowrap', title: p.last_call ? fmtTime(p.last_call) : null, text: fmtAgo(p.last_call) }),
      el('td', { class: p.error_rate >= 0.1 ? 'bad' : null, text: fmtPct(p.error_rate) }),
      expiryCell(p.cert_not_after),
      expiryCell(p.habilitation_until),
      el('td', { class: 'c-suspended', text: suspensionText(p.suspension) }),
      el('td', { class: 'c-actions' }, suspendOrResume(p, 'act-' + p.client_id)));
  }

  function drawPartners() {
    const q = $('partners-search').value.trim().toLowerCase();
    const rows = partnersCache.filter((p) => !q || [p.organisation, p.client_id, p.siret, p.habilitation]
      .some((v) => String(v || '').toLowerCase().includes(q)));
    const c = PCOLS[psort.col];
    rows.sort((a, b) => {
      const x = c.sort(a), y = c.sort(b);
      return (x < y ? -1 : x > y ? 1 : 0) * psort.dir || String(a.client_id).localeCompare(String(b.client_id));
    });
    $('partners-count').textContent = rows.length + ' of ' + partnersCache.length + ' partners';
    replaceRows($('partners-body'), rows.length ? rows.map(partnerRow) : [emptyRow(PCOLS.length, 'No partner matches.')]);
  }

  VIEWS.partners = {
    every: 2000,
    enter() { partnersHead(); },
    async refresh(arg, alive) {
      const d = await get('/admin/partners');
      if (!alive()) return;
      partnersCache = Array.isArray(d.partners) ? d.partners : [];
      drawPartners();
    },
  };

  /* ------------------------------------------------------ partner detail */

  function eventDetail(e) {
    return fmtObject(e.detail);
  }

  VIEWS.partner = {
    every: 5000,
    enter() {
      $('pd-title').textContent = '';
    },
    async refresh(id, alive) {
      const p = await get('/admin/partners/' + enc(id));
      if (!alive()) return;
      $('pd-title').textContent = (p.organisation || p.client_id) + ' — ' + p.client_id;
      const fields = $('pd-fields');
      kv(fields, [
        ['Organisation', fmtValue(p.organisation)], ['SIRET', fmtValue(p.siret)],
        ['client_id', p.client_id], ['Habilitation', fmtValue(p.habilitation)],
        ['Environment', fmtValue(p.environment)], ['State', fmtValue(p.state)],
        ['Quota', quotaBar(p.quota)], ['Last call', p.last_call ? fmtTime(p.last_call) + ' (' + fmtAgo(p.last_call) + ')' : 'never'],
        ['Error rate (15 min)', fmtPct(p.error_rate)],
        ['Certificate until', expiry(p.cert_not_after).text, expiry(p.cert_not_after).cls],
        ['Habilitation until', expiry(p.habilitation_until).text, expiry(p.habilitation_until).cls],
        ['Suspended', suspensionText(p.suspension), p.suspension ? 'bad' : ''],
      ]);
      replaceRows($('pd-actions'), [suspendOrResume(p, 'pd-act'),
        actionButton('Place a legal hold…', 'pd-hold', () => placeHold(p.client_id))]);

      const recs = Array.isArray(p.records) ? p.records.slice().reverse() : [];
      replaceRows($('pd-records'), recs.length ? recs.map((r) => el('tr', {},
        el('td', { text: fmtValue(r.seq) }), el('td', { text: fmtTime(r.ts) }),
        el('td', { class: 'mono', text: [r.method, r.route || r.path].filter(Boolean).join(' ') }),
        el('td', { text: fmtValue(r.decision) }), el('td', { text: fmtValue(r.status) }),
        el('td', { text: fmtValue(r.code) }), el('td', { text: fmtValue(r.reason) }),
        el('td', { class: r.verified ? 'good' : 'bad', text: r.verified ? '✓ verified' : '✗ not verified' })))
        : [emptyRow(8, 'No record.')]);

      const evs = Array.isArray(p.events) ? p.events.slice().reverse() : [];
      replaceRows($('pd-events'), evs.length ? evs.map((e) => el('tr', { class: 'sev-' + e.severity },
        el('td', { text: fmtValue(e.id) }), el('td', { text: fmtTime(e.time) }), el('td', { text: fmtValue(e.type) }),
        el('td', { text: fmtValue(e.severity) }), el('td', { text: fmtValue(e.operator) }),
        el('td', { class: 'detail', text: eventDetail(e) }))) : [emptyRow(6, 'No event.')]);

      const rc = p.recette;
      const sandbox = p.environment === 'sandbox';
      $('pd-recette-card').hidden = !sandbox;
      if (sandbox) {
        const have = rc && rc.available && typeof rc.markdown === 'string';
        $('pd-recette-none').textContent = have ? '' : 'No recette report yet.';
        $('pd-recette').textContent = have ? rc.markdown : '';
        $('pd-recette').hidden = !have;
      }
    },
  };

  /* -------------------------------------------------------------- events */

  const evState = { next: null, byId: new Map(), filters: { type: '', severity: '', consumer: '' }, ticks: 0 };
  const EV_KEEP = 500;

  function eventsQuery(full) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(evState.filters)) if (v) q.set(k, v);
    if (!full && evState.next !== null && evState.next !== undefined) q.set('after', String(evState.next));
    q.set('limit', '200');
    return '/admin/events?' + q.toString();
  }

  function eventRow(e) {
    const acked = e.acked
      ? el('td', { class: 'good', text: 'by ' + e.acked.operator + ' at ' + fmtTime(e.acked.time) })
      : el('td', {}, actionButton('Acknowledge…', 'ack-' + e.id, () => ack(e)));
    return el('tr', { 'data-event-id': e.id, class: 'sev-' + e.severity },
      el('td', { text: fmtValue(e.id) }), el('td', { text: fmtTime(e.time) }),
      el('td', { class: 'c-type', text: fmtValue(e.type) }), el('td', { class: 'c-sev', text: fmtValue(e.severity) }),
      el('td', { class: 'c-consumer', text: e.consumer || '–' }), el('td', { class: 'c-operator', text: e.operator || '–' }),
      el('td', { class: 'detail', text: eventDetail(e) }), acked);
  }

  VIEWS.events = {
    every: 2000,
    enter() {
      evState.next = null;
      evState.byId = new Map();
      evState.ticks = 0;
      $('events-body').replaceChildren();
    },
    async refresh(arg, alive) {
      // every 15th poll (30 s) reads the whole window again: acknowledgements
      // by other operators show up
      const full = evState.next === null || ++evState.ticks % 15 === 0;
      const d = await get(eventsQuery(full));
      if (!alive()) return;
      if (full) evState.byId = new Map();
      for (const e of Array.isArray(d.events) ? d.events : []) evState.byId.set(e.id, e);
      if (d.next !== undefined && d.next !== null) evState.next = d.next;
      const ids = Array.from(evState.byId.keys()).sort((a, b) => b - a);
      for (const id of ids.slice(EV_KEEP)) evState.byId.delete(id);
      const list = $('ev-types');
      const known = new Set(EVENT_TYPES.concat(Array.from(evState.byId.values()).map((e) => e.type)));
      if (list.children.length !== known.size) {
        list.replaceChildren(...Array.from(known).sort().map((t) => el('option', { value: t })));
      }
      replaceRows($('events-body'), ids.length
        ? ids.slice(0, EV_KEEP).map((id) => eventRow(evState.byId.get(id)))
        : [emptyRow(8, 'No event matches.')]);
    },
  };

  function applyFilters(ev) {
    ev.preventDefault();
    evState.filters = {
      type: $('ev-type').value.trim(), severity: $('ev-severity').value, consumer: $('ev-consumer').value.trim(),
    };
    startView('events', null, false);
  }

  /* --------------------------------------------------------- maintenance */

  function slotText(s) {
    if (!s) return 'none';
    if (typeof s !== 'object') return String(s);
    const start = s.start || s.from;
    const end = s.end || s.until;
    let t = start || end ? fmtTime(start) + ' → ' + fmtTime(end) : '';
    const rest = fmtObject(s, ['start', 'end', 'from', 'until']);
    if (rest) t += (t ? ' (' + rest + ')' : rest);
    return t || '–';
  }

  const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

  /* One slot of the calendar as a row: day, start, end, length. */
  function slotRow(s, now) {
    const a = Date.parse(s && s.start), b = Date.parse(s && s.end);
    if (Number.isNaN(a) || Number.isNaN(b)) return el('tr', {}, el('td', { colspan: 4, text: slotText(s) }));
    const on = a <= now && now < b;
    return el('tr', { class: on ? 'current' : null },
      el('td', { text: WEEKDAYS[new Date(a).getUTCDay()] + ' ' + String(s.start).slice(0, 10) }),
      el('td', { text: fmtTime(s.start) }), el('td', { text: fmtTime(s.end) }),
      el('td', { text: Math.round((b - a) / 60000) + ' min' + (on ? ' (now)' : '') }));
  }

  VIEWS.maintenance = {
    every: 30000,
    async refresh(arg, alive) {
      const d = await get('/admin/maintenance');
      if (!alive()) return;
      $('mt-current').textContent = d.current ? slotText(d.current) : 'No slot now: the gateway serves.';
      $('mt-current').className = d.current ? 'bad' : 'good';
      $('mt-next').textContent = d.next ? slotText(d.next) : 'No slot planned.';
      const tz = d.timezone || 'Europe/Paris';
      $('mt-tz').textContent = tz === 'UTC' ? 'Times in UTC, the time zone of the configuration\'s slots.'
        : 'Times in UTC; the configuration\'s slots are written in ' + tz + ' local time.';
      const slots = Array.isArray(d.slots) ? d.slots : [];
      const now = Date.now();
      replaceRows($('mt-slots'), slots.length ? slots.map((s) => slotRow(s, now))
        : [emptyRow(4, 'No maintenance slot in the coming days.')]);
    },
  };

  /* ---------------------------------------------------------------- init */

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('confirm-form').addEventListener('submit', confirmSubmit);
    $('confirm-cancel').addEventListener('click', confirmCancel);
    $('confirm').addEventListener('cancel', () => { pending = null; });
    $('act-reload').addEventListener('click', reload);
    $('act-hold').addEventListener('click', () => placeHold(''));
    $('partners-search').addEventListener('input', drawPartners);
    $('events-filters').addEventListener('submit', applyFilters);
    window.addEventListener('hashchange', () => route(true));
    show('login', true);
    $('login-token').focus();
  });
}());
