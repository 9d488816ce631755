// WXP dashboard: polls the server's read-only JSON API (/api/swarms...) and draws it.
// Plain JS, no dependencies, nothing loaded from anywhere but this server.
'use strict';

(function () {
  const FAST_MS = 2000;   // while the shown swarm is not final
  const SLOW_MS = 10000;  // otherwise
  const FINAL = new Set(['FINISHED', 'STOPPED']);
  const COLORS = { g: '#2563eb', gw: '#dc2626', mean: '#059669', step: '#7c3aed' };

  const state = { swarms: [], selected: null, detail: null, particles: null, timer: null };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  function fmt(x) {
    if (x === null || x === undefined || typeof x !== 'number' || !isFinite(x)) return '–';
    if (x === 0) return '0';
    const a = Math.abs(x);
    if (a >= 1e6 || a < 1e-4) return x.toExponential(3);
    return String(parseFloat(x.toPrecision(6)));
  }

  // For the summary cards: 4 significant digits fit a card at any width.
  function fmtShort(x) {
    if (typeof x !== 'number' || !isFinite(x)) return '–';
    const a = Math.abs(x);
    if (x !== 0 && (a >= 1e6 || a < 1e-4)) return x.toExponential(2);
    return String(parseFloat(x.toPrecision(4)));
  }

  function age(ts) {
    if (!ts) return '–';
    const t = Date.parse(ts);
    if (!isFinite(t) || t <= 0) return '–';
    let s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + String(s % 60).padStart(2, '0') + 's ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + String(Math.floor(s / 60) % 60).padStart(2, '0') + 'm ago';
    return Math.floor(s / 86400) + 'd ago';
  }

  function label(enumName) {
    return String(enumName || '').replace(/_/g, ' ').toLowerCase();
  }

  async function getJson(path) {
    const r = await fetch(path, { cache: 'no-store' });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return r.json();
  }

  function selectedFromHash() {
    const m = location.hash.match(/^#\/swarm\/(.+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  // ---- swarms list ----
  function renderSwarmList() {
    const ul = $('swarm-list');
    ul.replaceChildren();
    for (const s of state.swarms) {
      const g = s.global_best && s.global_best.particle_id >= 0 ? fmt(s.global_best.utility) : '–';
      const li = el('li', { 'data-swarm': s.name, class: s.name === state.selected ? 'selected' : '' }, [
        el('span', { class: 'name', text: s.name }),
        el('span', { class: 'badge ' + s.state, text: label(s.state) }),
        el('span', { class: 'meta', text: 'iter ' + s.iteration + ' · g ' + g + ' · ' + s.agents_online + ' agents' }),
      ]);
      li.addEventListener('click', () => { location.hash = '#/swarm/' + encodeURIComponent(s.name); });
      ul.appendChild(li);
    }
    $('no-swarms').hidden = state.swarms.length > 0;
  }

  // ---- summary cards ----
  function card(labelText, value, hint) {
    return el('div', { class: 'card' }, [
      el('div', { class: 'label', text: labelText }),
      el('div', { class: 'value', text: value }),
      el('div', { class: 'hint', text: hint || '\u00a0' }),
    ]);
  }

  function renderCards(s) {
    const hasPool = s.global_best && s.global_best.particle_id >= 0;
    const cards = [
      card('Iteration', String(s.iteration), s.last_round_time ? 'last round closed ' + age(s.last_round_time) : 'no round closed yet'),
      card('Global best g', hasPool ? fmtShort(s.global_best.utility) : '–',
           hasPool ? 'particle ' + s.global_best.particle_id + ', iteration ' + s.global_best.iteration : 'before the initial evaluation'),
      card('Global worst g_w', hasPool ? fmtShort(s.global_worst.utility) : '–',
           hasPool ? 'particle ' + s.global_worst.particle_id + ', iteration ' + s.global_worst.iteration : ''),
      card('Step length λ', fmtShort(s.step_length), 'next iteration'),
      card('Particles', s.particles_live + ' / ' + s.particles, s.particles_stale + ' stale'),
      card('Agents online', String(s.agents_online), s.experts_joined + ' of ' + s.min_experts + ' experts joined'),
      card('Weights', 'v' + s.utility_weight_version, label(s.mode) + ' · ' + label(s.space)),
    ];
    $('cards').replaceChildren(...cards);
  }

  // ---- charts ----
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    // The axis runs from the tick at or below the lowest value to the one at or above the
    // highest, so both ends are labelled.
    const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
    const ticks = [];
    for (let i = first; i <= last; ++i) ticks.push(parseFloat((i * step).toPrecision(12)));
    return { lo: ticks[0], hi: ticks[ticks.length - 1], ticks };
  }

  // series: [{color, dashed, alpha, width, points: [[x, y]...]}]; markers: [{x, text}]
  function drawChart(canvas, series, markers, yLabelFmt) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const pts = series.flatMap((s) => s.points).filter((p) => isFinite(p[1]));
    canvas.dataset.points = String(pts.length);
    ctx.font = '12px system-ui, sans-serif';
    if (pts.length === 0) {
      ctx.fillStyle = '#6b7687';
      ctx.textAlign = 'center';
      ctx.fillText('No closed iterations yet', w / 2, h / 2);
      return;
    }
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const xMax = Math.max(1, ...xs);
    const yt = niceTicks(Math.min(...ys), Math.max(...ys), h > 200 ? 5 : 3);
    const left = 64, right = 12, top = 14, bottom = 26;
    const X = (x) => left + (x / xMax) * (w - left - right);
    const Y = (y) => top + (1 - (y - yt.lo) / (yt.hi - yt.lo)) * (h - top - bottom);
    ctx.strokeStyle = '#eef0f3';
    ctx.fillStyle = '#6b7687';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of yt.ticks) {
      ctx.beginPath(); ctx.moveTo(left, Y(t)); ctx.lineTo(w - right, Y(t)); ctx.stroke();
      ctx.fillText((yLabelFmt || fmt)(t), left - 8, Y(t));
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    const xStep = Math.max(1, Math.ceil(xMax / 10));
    for (let x = 0; x <= xMax; x += xStep) ctx.fillText(String(x), X(x), h - bottom + 8);
    for (const m of markers || []) {
      ctx.save();
      ctx.strokeStyle = '#9ca3af';
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(X(m.x), top); ctx.lineTo(X(m.x), h - bottom); ctx.stroke();
      ctx.fillStyle = '#4b5563';
      ctx.textAlign = 'left';
      ctx.fillText(m.text, X(m.x) + 4, top);
      ctx.restore();
    }
    for (const s of series) {
      const p = s.points.filter((q) => isFinite(q[1]));
      if (p.length === 0) continue;
      ctx.save();
      ctx.globalAlpha = s.alpha || 1;
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = s.width || 2;
      if (s.dashed) ctx.setLineDash([5, 4]);
      ctx.beginPath();
      p.forEach((q, i) => (i ? ctx.lineTo(X(q[0]), Y(q[1])) : ctx.moveTo(X(q[0]), Y(q[1]))));
      ctx.stroke();
      if (!s.dashed && p.length <= 60) {
        for (const q of p) { ctx.beginPath(); ctx.arc(X(q[0]), Y(q[1]), 2.5, 0, 2 * Math.PI); ctx.fill(); }
      }
      ctx.restore();
    }
  }

  function legendItem(color, text, dashed) {
    const key = el('span', { class: 'key' + (dashed ? ' dashed' : '') });
    key.style.background = color;
    key.style.color = color;
    return el('span', {}, [key, document.createTextNode(text)]);
  }

  function renderCharts(detail) {
    const entries = (detail.history && detail.history.entries) || [];
    const current = detail.status.utility_weight_version;
    const byVersion = new Map();
    for (const e of entries) {
      if (!byVersion.has(e.utility_weight_version)) byVersion.set(e.utility_weight_version, []);
      byVersion.get(e.utility_weight_version).push(e);
    }
    const versions = [...byVersion.keys()].sort((a, b) => a - b);
    const series = [];
    const markers = [];
    for (const v of versions) {
      const es = byVersion.get(v).slice().sort((a, b) => a.iteration - b.iteration);
      const old = v !== current;
      const style = { dashed: old, alpha: old ? 0.45 : 1, width: old ? 1.5 : 2 };
      series.push({ ...style, color: COLORS.mean, points: es.map((e) => [e.iteration, e.mean_utility]) });
      series.push({ ...style, color: COLORS.gw, points: es.map((e) => [e.iteration, e.global_worst_utility]) });
      series.push({ ...style, color: COLORS.g, points: es.map((e) => [e.iteration, e.global_best_utility]) });
      // A newer version re-read the iterations closed so far: it took effect after the
      // last iteration the previous version saw.
      const prev = byVersion.get(v - 1);
      if (prev && prev.length) {
        markers.push({ x: Math.max(...prev.map((e) => e.iteration)), text: 'weights v' + v });
      }
    }
    const legend = [legendItem(COLORS.g, 'g (best)'), legendItem(COLORS.gw, 'g_w (worst)'), legendItem(COLORS.mean, 'mean')];
    if (versions.length > 1) legend.push(legendItem('#6b7687', 'earlier weight versions', true));
    $('legend').replaceChildren(...legend);
    const utility = $('utility-chart');
    drawChart(utility, series, markers);
    utility.dataset.currentPoints = String((byVersion.get(current) || []).length);
    const cur = (byVersion.get(current) || []).filter((e) => e.iteration > 0);
    drawChart($('step-chart'), [{ color: COLORS.step, points: cur.map((e) => [e.iteration, e.step_length]) }], []);
  }

  // ---- weights ----
  function renderWeights(detail) {
    const tbody = $('weights-table').querySelector('tbody');
    const w = detail.weights || { components: [] };
    tbody.replaceChildren(...w.components.map((c, i) => el('tr', {}, [
      el('td', { text: i === 0 ? 'v' + w.version + ' (current)' : '' }),
      el('td', { text: c.name }),
      el('td', { text: c.direction === 'MINIMIZE' ? 'minimize' : 'maximize' }),
      el('td', { class: 'num', text: fmt(c.weight) }),
    ])));
    const entries = (detail.history && detail.history.entries) || [];
    const versions = [...new Set(entries.map((e) => e.utility_weight_version))].sort((a, b) => a - b);
    $('weight-history').textContent = versions.length > 1
      ? 'History holds readings under versions ' + versions.map((v) => 'v' + v).join(', ') + '; earlier ones are drawn dashed.'
      : 'Weights unchanged since the swarm was created.';
  }

  // ---- particles ----
  function renderParticles(list, status) {
    const ps = (list && list.particles) || [];
    const best = status.global_best ? status.global_best.particle_id : -1;
    const tbody = $('particles-table').querySelector('tbody');
    tbody.replaceChildren(...ps.map((p) => {
      const stale = p.iteration >= 0 && p.iteration < status.iteration;
      const tr = el('tr', { 'data-particle-id': String(p.particle_id), class: (p.particle_id === best ? 'best' : '') + (stale ? ' stale' : '') }, [
        el('td', { class: 'num', text: String(p.particle_id) }),
        el('td', { class: 'owner', text: p.owner }),
        el('td', { class: 'num', text: p.iteration < 0 ? '–' : String(p.iteration) }),
        el('td', { class: 'num utility', text: p.iteration < 0 ? '–' : fmt(p.utility) }),
        el('td', { class: 'num', text: p.iteration < 0 ? '–' : fmt(p.best_utility) }),
        el('td', { class: 'num restarts', text: String(p.restarts) }),
        el('td', { text: age(p.last_report_time) }),
      ]);
      tr.dataset.utility = String(p.utility);
      tr.dataset.restarts = String(p.restarts);
      return tr;
    }));
    const owners = new Set(ps.map((p) => p.owner));
    $('particle-summary').textContent = ps.length
      ? ps.length + ' particles on ' + owners.size + (owners.size === 1 ? ' agent' : ' agents') + (best >= 0 ? ' · highlighted: g' : '')
      : 'The pool is built once enough experts have joined.';
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) { $('swarm-view').hidden = true; $('empty-view').hidden = false; return; }
    $('swarm-view').hidden = false;
    $('empty-view').hidden = true;
    const s = d.status;
    $('swarm-name').textContent = s.name;
    const badge = $('swarm-state');
    badge.className = 'badge ' + s.state;
    badge.textContent = label(s.state);
    $('swarm-reason').textContent = s.termination_reason ? 'ended by ' + s.termination_reason.replace(/_/g, ' ') : '';
    renderCards(s);
    renderCharts(d);
    renderWeights(d);
    renderParticles(state.particles, s);
    document.title = s.name + ' · WXP dashboard';
  }

  async function refresh() {
    clearTimeout(state.timer);
    let next = SLOW_MS;
    try {
      state.swarms = (await getJson('/api/swarms')).swarms || [];
      state.selected = selectedFromHash();
      if (!state.selected && state.swarms.length) state.selected = state.swarms[0].name;
      if (state.selected && state.swarms.some((s) => s.name === state.selected)) {
        const name = encodeURIComponent(state.selected);
        const [detail, particles] = await Promise.all([
          getJson('/api/swarms/' + name), getJson('/api/swarms/' + name + '/particles')]);
        state.detail = detail;
        state.particles = particles;
      } else {
        state.detail = null;
        state.particles = null;
      }
      renderSwarmList();
      renderDetail();
      if (state.swarms.some((s) => !FINAL.has(s.state))) next = FAST_MS;
      $('live-dot').className = 'dot ok';
      $('refreshed').textContent = 'updated ' + new Date().toLocaleTimeString() +
        (next === FAST_MS ? ' · every 2 s' : ' · every 10 s');
    } catch (err) {
      $('live-dot').className = 'dot err';
      $('refreshed').textContent = 'cannot reach the server (' + err.message + '); retrying';
      next = FAST_MS;
    }
    state.timer = setTimeout(refresh, next);
  }

  window.addEventListener('hashchange', refresh);
  window.addEventListener('resize', () => { if (state.detail) renderCharts(state.detail); });
  refresh();
})();
