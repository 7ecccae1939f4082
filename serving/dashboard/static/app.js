// lumen dashboard: one app's health over the JSON API (/v1/...).
// Every chart element carries data-points: how many buckets with data it
// shows, which the browser test reads.
(() => {
  'use strict';

  const LIVE_EVERY_MS = 5000;    // the live chart: the speed layer's minutes
  const SLOW_EVERY_MS = 60000;   // days, users, crash-free, ledger
  const MIN = 60, DAY = 86400;
  const color = name => getComputedStyle(document.documentElement).getPropertyValue('--' + name).trim();
  const $ = id => document.getElementById(id);
  const fmt = n => n == null ? '–' : Number(n).toLocaleString('en-US');
  const state = { app: '', version: '', date: '', apps: [], charts: {}, timers: [], watermark: null };
  window.lumenDashboard = state;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || ('HTTP ' + status));
      this.status = status;
    }
  }

  // The API key of a server run with --keys: kept in sessionStorage, so
  // only while this tab is open, and sent as a bearer header.
  const KEY = 'lumen.key';
  const apiKey = () => sessionStorage.getItem(KEY) || '';

  async function api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== '' && v != null) q.set(k, v);
    const qs = q.toString();
    const headers = { Accept: 'application/json' };
    if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
    let res;
    try {
      res = await fetch(path + (qs ? '?' + qs : ''), { headers });
    } catch (e) {
      throw new ApiError(0, { error: 'the lumen server does not answer (' + e.message + ')' });
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // askKey shows the sign-in form (with why, if the key was refused) and
  // starts over with the key given.
  function askKey(why) {
    stopTimers();
    $('main').hidden = true;
    banner('');
    $('signout').hidden = true;
    const form = $('login'), err = $('login-error');
    err.textContent = why || '';
    err.hidden = !why;
    form.hidden = false;
    $('key').focus();
    form.onsubmit = ev => {
      ev.preventDefault();
      const k = $('key').value.trim();
      if (!k) return;
      sessionStorage.setItem(KEY, k);
      $('key').value = '';
      form.hidden = true;
      main();
    };
  }

  // Days as YYYY-MM-DD (UTC) and unix seconds.
  const today = () => new Date().toISOString().slice(0, 10);
  const addDays = (day, n) => { const d = new Date(day + 'T00:00:00Z'); d.setUTCDate(d.getUTCDate() + n); return d.toISOString().slice(0, 10); };
  const secs = t => Math.floor(new Date(t).getTime() / 1000);
  const dayRange = (from, to) => { const out = []; for (let d = from; d <= to; d = addDays(d, 1)) out.push(d); return out; };

  function banner(msg) {
    const b = $('banner');
    b.textContent = msg || '';
    b.hidden = !msg;
  }

  // The batch/speed boundary: a dashed line and a shaded speed side.
  function boundaryPlugin(key, shift) {
    return {
      hooks: {
        draw: [u => {
          const at = state[key];
          if (at == null) return;
          const { left, top, width, height } = u.bbox;
          const x = Math.round(u.valToPos(at + shift, 'x', true));
          if (x >= left + width - 1) return; // all batch
          const ctx = u.ctx, px = devicePixelRatio || 1;
          ctx.save();
          ctx.font = (11 * px) + 'px system-ui, sans-serif';
          if (x <= left) { // all speed: say so, no shading
            ctx.fillStyle = '#b54708';
            ctx.textAlign = 'right';
            ctx.fillText('speed layer', left + width - 6 * px, top + 14 * px);
            ctx.restore();
            return;
          }
          ctx.fillStyle = 'rgba(247, 144, 9, 0.10)';
          ctx.fillRect(x, top, left + width - x, height);
          ctx.strokeStyle = color('speed');
          ctx.lineWidth = 1.5 * px;
          ctx.setLineDash([5 * px, 4 * px]);
          ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
          ctx.fillStyle = '#667085';
          ctx.textAlign = 'right';
          ctx.fillText('batch', x - 6 * px, top + 14 * px);
          ctx.fillStyle = '#b54708';
          const label = 'speed';
          if (ctx.measureText(label).width + 10 * px < left + width - x) {
            ctx.textAlign = 'left';
            ctx.fillText(label, x + 6 * px, top + 14 * px);
          } else { // no room on the speed side: point at it
            ctx.fillText(label + ' \u2192', x - 6 * px, top + 28 * px);
          }
          ctx.restore();
        }],
      },
    };
  }

  function makeChart(id, series, opts) {
    const el = $(id);
    const axes = opts.axes || [{}, {}];
    const u = new uPlot({
      width: Math.max(300, el.clientWidth),
      height: opts.height || 240,
      series: [{}].concat(series),
      axes: axes.map(a => Object.assign({ stroke: '#667085', grid: { stroke: '#f2f4f7' }, ticks: { stroke: '#e4e7ec' } }, a)),
      scales: Object.assign({ x: { time: true } }, opts.scales || {}),
      cursor: { points: { size: 7 } },
      legend: { live: true },
      plugins: opts.plugins || [],
    }, [[]].concat(series.map(() => [])), el);
    state.charts[id] = u;
    return u;
  }

  // Counts and users start at zero: a bar of 2,500 should not look empty.
  const fromZero = { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] };
  // Day charts show each day as a point with half a day of room either side.
  const dayX = { time: true, range: (u, min, max) => [min - DAY / 2, max + DAY / 2] };

  function initCharts() {
    const dayAxis = { values: (u, vals) => vals.map(v => new Date(v * 1000).toISOString().slice(5, 10)) };
    makeChart('chart-live', [
      { label: 'Loads', stroke: color('loads'), fill: 'rgba(47,111,222,0.08)', width: 2, scale: 'loads', points: { show: false } },
      { label: 'Crashes', stroke: color('crashes'), width: 2, scale: 'crashes', points: { show: false } },
    ], {
      axes: [{}, { scale: 'loads', label: 'loads / min' }, { scale: 'crashes', side: 1, label: 'crashes / min', grid: { show: false } }],
      scales: { loads: fromZero, crashes: fromZero },
      plugins: [boundaryPlugin('speedFrom', 0)],
    });
    makeChart('chart-daily', [
      { label: 'Loads', stroke: color('loads'), fill: 'rgba(47,111,222,0.08)', width: 2, scale: 'loads', points: { show: true, size: 6 } },
      { label: 'Crashes', stroke: color('crashes'), width: 2, scale: 'crashes', points: { show: true, size: 6 } },
    ], {
      axes: [dayAxis, { scale: 'loads', label: 'loads / day', size: 60 }, { scale: 'crashes', side: 1, label: 'crashes / day', grid: { show: false }, size: 60 }],
      scales: { x: dayX, loads: fromZero, crashes: fromZero },
      plugins: [boundaryPlugin('speedFrom', -DAY / 2)],
    });
    makeChart('chart-dau', [
      { label: 'Daily active users', stroke: color('users'), fill: 'rgba(122,90,248,0.08)', width: 2, points: { show: true, size: 6 } },
    ], { axes: [dayAxis, { size: 60 }], scales: { x: dayX, y: fromZero }, plugins: [boundaryPlugin('speedFrom', -DAY / 2)] });
    window.addEventListener('resize', () => {
      for (const [id, u] of Object.entries(state.charts)) u.setSize({ width: Math.max(300, $(id).clientWidth), height: u.height });
    });
  }

  // series turns API points into one value per x (0 where no events).
  function series(xs, points, step) {
    const by = new Map(points.map(p => [Math.floor(secs(p.bucket) / step) * step, p.count]));
    return xs.map(x => by.get(x) || 0);
  }

  function setPoints(id, n) { $(id).dataset.points = String(n); }

  function noteWatermark(resp) {
    state.watermark = resp.watermark;
    state.speedFrom = resp.speed_from ? secs(resp.speed_from) : null;
    const wm = resp.watermark ? 'Batch complete through <b>' + resp.watermark + '</b>' : 'No batch run yet: <b>all speed</b>';
    $('status').innerHTML = wm + ' · updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
  }

  const sel = () => ({ app: state.app, version: state.version });

  async function loadLive() {
    const now = Math.floor(Date.now() / 1000 / MIN) * MIN;
    const from = now - 59 * MIN;
    const p = Object.assign(sel(), { granularity: 'minute', from: new Date(from * 1000).toISOString().replace('.000', ''), to: new Date((now + MIN) * 1000 - 1).toISOString() });
    const [loads, crashes] = await Promise.all([api('/v1/counts', Object.assign({ kind: 'app_load' }, p)), api('/v1/counts', Object.assign({ kind: 'crash' }, p))]);
    const xs = []; for (let x = from; x <= now; x += MIN) xs.push(x);
    state.charts['chart-live'].setData([xs, series(xs, loads.points, MIN), series(xs, crashes.points, MIN)]);
    setPoints('chart-live', loads.points.length + crashes.points.length);
    const pill = $('live-pill');
    const last = loads.points.length ? secs(loads.points[loads.points.length - 1].bucket) : null;
    const fresh = last != null && now - last <= 5 * MIN;
    pill.textContent = fresh ? 'live' : (last == null ? 'no events this hour' : 'last event ' + Math.round((now - last) / MIN) + ' min ago');
    pill.className = 'pill ' + (fresh ? 'live' : 'stale');
  }

  async function loadDaily() {
    const from = addDays(state.date, -29), to = state.date;
    const p = Object.assign(sel(), { granularity: 'day', from, to });
    const [loads, crashes, users] = await Promise.all([
      api('/v1/counts', Object.assign({ kind: 'app_load' }, p)),
      api('/v1/counts', Object.assign({ kind: 'crash' }, p)),
      api('/v1/users', Object.assign({ kind: 'app_load' }, sel(), { from, to })),
    ]);
    noteWatermark(loads);
    const xs = dayRange(from, to).map(d => secs(d + 'T00:00:00Z'));
    state.charts['chart-daily'].setData([xs, series(xs, loads.points, DAY), series(xs, crashes.points, DAY)]);
    setPoints('chart-daily', loads.points.length + crashes.points.length);
    const dau = users.days.map(d => ({ bucket: d.day + 'T00:00:00Z', count: d.estimate }));
    state.charts['chart-dau'].setData([xs, series(xs, dau, DAY)]);
    setPoints('chart-dau', users.days.length);
  }

  async function loadActive() {
    const a = await api('/v1/active', Object.assign({ kind: 'app_load' }, sel(), { date: state.date }));
    const sub = r => r.speed_days ? r.batch_days + ' batch + ' + r.speed_days + ' speed days' : r.batch_days + ' batch days';
    $('kpi-dau').textContent = fmt(a.dau.estimate); $('kpi-dau-sub').textContent = a.date;
    $('kpi-wau').textContent = fmt(a.wau.estimate); $('kpi-wau-sub').textContent = sub(a.wau);
    $('kpi-mau').textContent = fmt(a.mau.estimate); $('kpi-mau-sub').textContent = sub(a.mau);
  }

  async function loadCrashFree() {
    const from = addDays(state.date, -29), to = state.date;
    const cf = await api('/v1/crash-free', { app: state.app, version: state.version, from, to });
    const rows = cf.versions.filter(v => v.active > 0);
    rows.sort((a, b) => (a.version === '' ? -1 : b.version === '' ? 1 : b.version.localeCompare(a.version, 'en', { numeric: true })));
    const min = rows.reduce((m, v) => Math.min(m, v.crash_free), 1);
    const floor = Math.max(0, Math.min(0.9, Math.floor((min - 0.01) * 20) / 20));
    const tbody = $('crashfree').querySelector('tbody');
    tbody.replaceChildren(...rows.map(v => {
      const tr = document.createElement('tr');
      if (v.version === '') tr.className = 'all';
      const pct = (v.crash_free * 100).toFixed(2) + ' %';
      const c = v.crash_free >= 0.995 ? color('good') : v.crash_free >= 0.98 ? color('warn') : color('bad');
      const w = Math.max(2, (v.crash_free - floor) / (1 - floor) * 100);
      tr.innerHTML = '<td></td><td class="num"></td><td class="num"></td><td class="num pct"></td><td><div class="bar"><span></span></div></td>';
      tr.children[0].textContent = v.version === '' ? 'All versions' : v.version;
      tr.children[1].textContent = fmt(v.active);
      tr.children[2].textContent = fmt(v.crashed);
      tr.children[3].innerHTML = '<b></b> <small></small>';
      tr.children[3].querySelector('b').textContent = pct;
      tr.children[3].querySelector('small').textContent = '\u00b1' + (v.error_bound * 100).toFixed(2);
      const bar = tr.querySelector('.bar span');
      bar.style.width = w + '%';
      bar.style.background = c;
      tr.title = 'crash-free ' + pct + ', 95 % bound ±' + (v.error_bound * 100).toFixed(2) + ' points';
      return tr;
    }));
    setPoints('crashfree', rows.length);
    $('cf-note').textContent = 'Bars start at ' + Math.round(floor * 100) + ' %. ± is a 95 % bound from the user-count sketches.';
    const all = cf.versions.find(v => v.version === (state.version || ''));
    if (all) {
      $('kpi-cf').textContent = all.active ? (all.crash_free * 100).toFixed(2) + ' %' : '–';
      $('kpi-cf').style.color = all.crash_free >= 0.995 ? color('good') : all.crash_free >= 0.98 ? color('warn') : color('bad');
      $('kpi-cf-sub').textContent = '±' + (all.error_bound * 100).toFixed(2) + ' points · ' + fmt(all.crashed) + ' of ' + fmt(all.active) + ' crashed';
    }
  }

  async function loadLate() {
    const from = addDays(state.date, -6), to = state.date;
    const p = Object.assign(sel(), { granularity: 'day', from, to });
    const [loads, crashes] = await Promise.all([api('/v1/late', Object.assign({ kind: 'app_load' }, p)), api('/v1/late', Object.assign({ kind: 'crash' }, p))]);
    const pending = loads.pending + crashes.pending;
    $('kpi-late').textContent = fmt(pending);
    $('kpi-late').style.color = pending ? '' : color('muted');
    $('kpi-late-sub').textContent = pending ? 'will arrive with tonight\u2019s batch' : 'nothing waiting for the batch';
    const byDay = new Map();
    for (const [k, r] of [['loads', loads], ['crashes', crashes]]) {
      for (const pt of r.points) {
        const d = pt.bucket.slice(0, 10);
        const e = byDay.get(d) || { loads: 0, crashes: 0, pending: false };
        e[k] += pt.count; e.pending = e.pending || pt.pending;
        byDay.set(d, e);
      }
    }
    const days = [...byDay.keys()].sort().reverse();
    const tbody = $('ledger').querySelector('tbody');
    if (!days.length) {
      tbody.innerHTML = '<tr><td colspan="4" class="note">No late events in the last 7 days.</td></tr>';
    } else {
      tbody.replaceChildren(...days.map(d => {
        const e = byDay.get(d);
        const tr = document.createElement('tr');
        tr.innerHTML = '<td></td><td class="num"></td><td class="num"></td><td></td>';
        tr.children[0].textContent = d;
        tr.children[1].textContent = fmt(e.loads);
        tr.children[2].textContent = fmt(e.crashes);
        tr.children[3].textContent = e.pending ? 'arrives with tonight\u2019s batch' : 'counted by the batch';
        tr.children[3].className = e.pending ? 'state-pending' : 'state-done';
        return tr;
      }));
    }
    setPoints('ledger', days.length);
  }

  // guard runs a loader, turning an API error into the banner.
  // A 400 or 404 is about the request (a bad app id): it replaces the
  // charts. Anything else (a 503, the server gone) is shown above them and
  // cleared by the next refresh that works.
  async function guard(fn) {
    try {
      await fn();
      if (state.transient) { state.transient = false; banner(''); }
      return true;
    } catch (e) {
      if (e.status === 401) {
        sessionStorage.removeItem(KEY);
        askKey('The key was refused: ' + e.message);
      } else if (e.status === 404 || e.status === 400 || e.status === 403) {
        $('main').hidden = true;
        banner(e.message);
      } else {
        state.transient = true;
        banner('Could not refresh: ' + e.message + ' (retrying)');
      }
      return false;
    }
  }

  function stopTimers() { state.timers.forEach(clearInterval); state.timers = []; }

  async function loadAll() {
    stopTimers();
    banner('');
    $('main').hidden = false;
    await guard(() => Promise.all([loadDaily(), loadActive(), loadCrashFree(), loadLate(), loadLive()]));
    if ($('main').hidden) return; // a bad request: nothing to refresh
    state.timers.push(setInterval(() => guard(loadLive), LIVE_EVERY_MS));
    state.timers.push(setInterval(() => guard(() => Promise.all([loadDaily(), loadActive(), loadCrashFree(), loadLate()])), SLOW_EVERY_MS));
    document.body.dataset.loaded = 'true';
  }

  function fillVersions() {
    const info = state.apps.find(a => a.app === state.app);
    const versions = info ? info.versions.slice().sort((a, b) => b.localeCompare(a, 'en', { numeric: true })) : [];
    const vs = $('version');
    vs.replaceChildren(new Option('All versions', ''), ...versions.map(v => new Option(v, v)));
    vs.value = versions.includes(state.version) ? state.version : '';
    state.version = vs.value;
  }

  function syncURL() {
    const q = new URLSearchParams();
    q.set('app', state.app);
    if (state.version) q.set('version', state.version);
    if (state.date !== today()) q.set('date', state.date);
    history.replaceState(null, '', '?' + q);
  }

  let started = false;
  async function main() {
    if (!started) {
      initCharts();
      started = true;
    }
    const url = new URLSearchParams(location.search);
    state.date = url.get('date') || today();
    $('date').value = state.date;
    let apps;
    try {
      apps = (await api('/v1/apps')).apps;
    } catch (e) {
      if (e.status === 401) {
        const had = apiKey() !== '';
        sessionStorage.removeItem(KEY);
        askKey(had ? 'The key was refused: ' + e.message : '');
        return;
      }
      banner('Could not list apps: ' + e.message);
      $('main').hidden = true;
      return;
    }
    $('signout').hidden = !apiKey();
    $('main').hidden = false;
    if (apps.length === 0 && apiKey()) {
      banner('This key may read no app with data yet.');
      $('main').hidden = true;
      return;
    }
    state.apps = apps;
    const pick = $('app');
    pick.replaceChildren(...apps.map(a => new Option(a.app, a.app)));
    state.app = url.get('app') || (apps[0] && apps[0].app) || '';
    state.version = url.get('version') || '';
    if (!state.app) {
      banner('The store has no data yet: run the batch or the stream, then reload.');
      $('main').hidden = true;
      return;
    }
    if (!apps.some(a => a.app === state.app)) {
      pick.prepend(new Option(state.app + ' (unknown)', state.app));
    }
    pick.value = state.app;
    fillVersions();
    pick.onchange = () => { state.app = pick.value; state.version = ''; fillVersions(); syncURL(); loadAll(); };
    $('version').onchange = e => { state.version = e.target.value; syncURL(); loadAll(); };
    $('date').onchange = e => { if (e.target.value) { state.date = e.target.value; syncURL(); loadAll(); } };
    await loadAll();
  }

  $('signout').addEventListener('click', () => { sessionStorage.removeItem(KEY); askKey(''); });
  main();
})();
