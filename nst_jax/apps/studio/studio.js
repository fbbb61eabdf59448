"use strict";
// The studio page: the new-run form (left), the run in view, large, with a before/after view and its loss
// plot (centre), the runs (right). Everything from the studio is set as text, never as HTML.
const HEADERS = {"X-NST-JAX-Studio": "1"};
const OPTIONS = ["style_weight", "size", "iterations", "init", "style_statistic", "original_colors", "seed"];
const WORDS = {style_weight: "k", size: "size", iterations: "iterations", init: "init", style_statistic: "statistic",
               original_colors: "original colours", seed: "seed"};
let state = null, chosenContent = null, chosenStyles = new Set(), formReady = false, busy = false;
let followed = null;   // {id, extra}: the run the message line speaks of, kept true as its state changes
let pinned = null;     // the run clicked to be in view; null: the running one, else the last one
let mode = "slider", cut = 50;
const el = id => document.getElementById(id);
const make = (tag, props = {}) => Object.assign(document.createElement(tag), props);
const runOf = id => state && state.runs.find(r => r.id === id);

// ---------------------------------------------------------------- the message line
function say(text, good) {
  followed = null;
  const m = el("message"); m.textContent = text; m.className = good ? "good" : "bad";
  m.removeAttribute("data-run"); m.title = "";
}
function sayRun(id, extra = "") { followed = {id, extra}; showMessage(); }
function showMessage() {
  const r = followed && runOf(followed.id);
  if (!r) return;
  const m = el("message");
  m.textContent = r.name + " — " + r.says + followed.extra;
  m.className = ["failed", "unreadable"].includes(r.status) ? "bad" : "good";
  m.dataset.run = r.id; m.title = "run " + r.id;
}
async function post(url, body, raw) {
  const headers = raw ? HEADERS : {...HEADERS, "Content-Type": "application/json"};
  try {
    const r = await fetch(url, {method: "POST", headers, body: raw ? body : JSON.stringify(body)});
    try { return await r.json(); } catch (e) { return {ok: false, message: "the studio answered " + r.status}; }
  } catch (e) { return {ok: false, message: "the studio cannot be reached"}; }
}

// ---------------------------------------------------------------- a new run
async function uploadFiles(files, role) {
  for (const file of files) {
    const d = await post("/api/upload?name=" + encodeURIComponent(file.name), file, true);
    if (!d.ok) { say(file.name + ": " + d.message); continue; }
    say("uploaded " + d.upload.name + " (" + d.upload.width + "×" + d.upload.height + ")", true);
    if (role === "content") chosenContent = d.upload.id; else chosenStyles.add(d.upload.id);
  }
  await refresh();
}
const DROPS = [["content-drop", "content-file", "content"], ["style-drop", "style-files", "style"]];
for (const [drop, input, role] of DROPS) {
  el(input).addEventListener("change", e => { uploadFiles([...e.target.files], role); e.target.value = ""; });
  el(drop).addEventListener("dragover", e => { e.preventDefault(); el(drop).classList.add("over"); });
  el(drop).addEventListener("dragleave", () => el(drop).classList.remove("over"));
  el(drop).addEventListener("drop", e => {
    e.preventDefault(); el(drop).classList.remove("over");
    uploadFiles(role === "content" ? [...e.dataTransfer.files].slice(0, 1) : [...e.dataTransfer.files], role);
  });
}
let shownChoices = "";
function showChoices() {
  const key = state.uploads.map(u => u.id).join() + "|" + chosenContent + "|" + [...chosenStyles].join();
  if (key === shownChoices) return;
  shownChoices = key;
  for (const [box, multiple] of [["content-choices", false], ["style-choices", true]]) {
    const list = el(box); list.textContent = "";
    for (const u of state.uploads) {
      const input = make("input", {type: multiple ? "checkbox" : "radio", name: box, value: u.id,
                                   checked: multiple ? chosenStyles.has(u.id) : chosenContent === u.id});
      input.addEventListener("change", () => {
        if (!multiple) chosenContent = u.id;
        else if (input.checked) chosenStyles.add(u.id); else chosenStyles.delete(u.id);
      });
      const label = make("label", {className: "choice", title: u.name + " (" + u.width + "×" + u.height + ")"});
      label.append(input, make("img", {src: "/uploads/" + u.id, alt: u.name}), make("span", {textContent: u.name}));
      list.appendChild(label);
    }
  }
}
function fillForm(choices) {
  for (const name of ["init", "style_statistic", "original_colors"]) {
    const select = el("opt-" + name);
    for (const c of choices[name]) select.appendChild(make("option", {value: c, textContent: c}));
  }
  for (const name of OPTIONS) el("opt-" + name).value = choices.defaults[name];
  el("opt-size").max = choices.max_size; el("opt-iterations").max = choices.max_iterations;
  formReady = true;
}
el("options").addEventListener("submit", async e => {
  e.preventDefault();
  if (busy) return;
  if (!chosenContent || chosenStyles.size === 0) { say("choose a content image and at least one style image"); return; }
  const options = {};
  for (const name of OPTIONS) options[name] = el("opt-" + name).value;
  busy = true; el("start").disabled = true;
  const d = await post("/api/runs", {content: chosenContent, styles: [...chosenStyles], options});
  busy = false; el("start").disabled = false;
  if (!d.ok) { say(d.message); return; }
  pinned = null;
  await refresh();
  sayRun(d.id, d.message.endsWith("already") ? " (asked before: the same run)" : "");
});

// ---------------------------------------------------------------- the runs
function imageOf(r) {
  if (["running", "stopping"].includes(r.status) && r.live) return "/runs/" + r.id + "/live.png?v=" + r.live;
  return r.image ? "/runs/" + r.id + "/result.png?v=" + r.image : "";
}
function setSrc(img, src) {
  img.hidden = !src;
  if (src && img.dataset.src !== src) { img.dataset.src = src; img.src = src; }
}
async function act(r, what) {
  const d = await post("/api/runs/" + r.id + "/" + what, {});
  if (d.ok) { await refresh(); sayRun(r.id); } else say(r.name + " — " + d.message);
}
function card(r) {
  const c = make("div", {className: "card", title: "run " + r.id + " — click to view it"});
  c.dataset.id = r.id;
  const text = make("div");
  const buttons = make("div", {className: "buttons"});
  const stop = make("button", {type: "button", className: "stop", textContent: "Stop", onclick: () => act(r, "stop")});
  const go = make("button", {type: "button", className: "continue", textContent: "Continue",
                             onclick: () => act(r, "continue")});
  const download = make("a", {className: "download", textContent: "download", href: "/runs/" + r.id + "/download"});
  const pick = make("label", {className: "small"});
  pick.append(make("input", {type: "checkbox", className: "pick"}), " compare");
  buttons.append(stop, go, download, pick);
  text.append(make("div", {className: "name"}), make("div", {className: "status"}), buttons);
  const thumb = make("div", {className: "thumb"});
  thumb.appendChild(make("img", {className: "result", alt: "result of " + r.name}));
  c.append(thumb, text,
           make("div", {className: "settings small"}));
  c.addEventListener("click", e => {
    if (e.target.closest("button, a, label")) return;
    pinned = r.id; showRuns(); showView();
  });
  return c;
}
function showRuns() {
  const box = el("runs"), viewed = viewedRun();
  const cards = new Map([...box.children].map(c => [c.dataset.id, c]));
  for (const r of state.runs) {   // oldest first: each new one goes on top
    let c = cards.get(r.id);
    if (!c) { c = card(r); box.prepend(c); }
    c.dataset.status = r.status;
    c.classList.toggle("viewed", viewed !== undefined && viewed.id === r.id);
    c.querySelector(".name").textContent = r.name;
    c.querySelector(".status").textContent = r.says;
    c.querySelector(".settings").textContent = "run " + r.id + " · " +
      OPTIONS.filter(k => k in r.options).map(k => WORDS[k] + " " + r.options[k]).join(" · ");
    setSrc(c.querySelector("img.result"), imageOf(r));
    c.querySelector(".stop").hidden = !["queued", "running"].includes(r.status);
    c.querySelector(".continue").hidden = !["stopped", "new", "failed"].includes(r.status);
    c.querySelector(".download").hidden = !r.image || !["finished", "stopped"].includes(r.status);
  }
}

// ---------------------------------------------------------------- the run in view
function viewedRun() {
  const runs = state.runs;
  return runOf(pinned) || runOf(state.current) || runOf(state.live_id) || runs[runs.length - 1];
}
function setMode(m) {
  mode = m;
  for (const b of el("view-tools").querySelectorAll("button")) {
    b.setAttribute("aria-pressed", String(b.dataset.mode === m));
  }
  el("cut").hidden = m !== "slider";
  showView();
}
function setCut(percent) {
  cut = Math.max(0, Math.min(100, percent));
  el("cut").value = cut;
  el("content-image").style.clipPath = "inset(0 " + (100 - cut) + "% 0 0)";
  el("viewer").querySelector(".divider").style.left = cut + "%";
}
for (const b of el("view-tools").querySelectorAll("button")) b.addEventListener("click", () => setMode(b.dataset.mode));
el("cut").addEventListener("input", e => setCut(Number(e.target.value)));
el("viewer").addEventListener("pointerdown", e => {
  if (mode !== "slider") return;
  const box = el("viewer").getBoundingClientRect(), move = ev => setCut(100 * (ev.clientX - box.left) / box.width);
  move(e);
  el("viewer").setPointerCapture(e.pointerId);
  el("viewer").onpointermove = move;
  el("viewer").onpointerup = () => { el("viewer").onpointermove = null; };
});
el("result-image").addEventListener("load", e => {
  el("view-size").textContent = " · " + e.target.naturalWidth + "×" + e.target.naturalHeight + " px";
});
function showView() {
  const r = viewedRun(), viewer = el("viewer");
  el("viewer-empty").hidden = !!r;
  for (const id of ["view-line", "view-tools", "plot-box", "run-header"]) el(id).hidden = !r;
  if (!r) { viewer.className = "none"; viewer.style.aspectRatio = "2"; viewer.style.width = "100%"; return; }
  const live = state.live_id === r.id ? state.live : null;
  el("view-name").textContent = r.name;
  el("view-id").textContent = "run " + r.id + (pinned === r.id ? " · shown because you clicked it" : "");
  el("view-state").textContent = r.status;
  el("live-iteration").textContent = live && ["running", "stopping"].includes(r.status) ? live.iteration : r.iteration;
  el("live-target").textContent = r.options.iterations;
  const running = live && r.status === "running";
  el("live-rate").textContent = running && live.rate ? " · " + live.rate.toFixed(2) + " it/s" : "";
  el("live-eta").textContent = running && live.eta !== null ? " · ETA " + human(live.eta) : "";
  const upload = state.uploads.find(u => u.id === r.content_id);
  const ratio = upload ? upload.width / upload.height : 4 / 3, cols = mode === "side" ? 2 : 1;
  viewer.className = mode;
  viewer.style.aspectRatio = (cols * ratio).toFixed(4);
  viewer.style.width = "min(100%, calc(" + (cols * ratio).toFixed(4) + " * var(--maxh)))";
  const src = imageOf(r);
  setSrc(el("result-image"), src);
  if (!src) el("view-size").textContent = "";
  el("result-tag").textContent = src ? "result" : "result: no image yet";
  setSrc(el("content-image"), upload ? "/uploads/" + upload.id : "");
  setCut(mode === "slider" ? cut : 0);
  el("live-header").textContent = live ? live.header.join("\n") : "";
  el("run-header").hidden = !live || live.header.length === 0;
  el("plot").style.display = live && live.losses.length ? "" : "none";   // shown first: drawn to its width
  lossPlot(live ? live.losses : []);
  el("plot-note").textContent = live ? "" : "The loss plot shows the running run, or the last one this session ran.";
}
function human(s) {
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + " min " + String(Math.round(s % 60)).padStart(2, "0") + " s"
                : Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

// ---------------------------------------------------------------- compare
const SETTINGS_ROWS = 2 + OPTIONS.length;   // the rows of what was asked, before those of how it went
function compareRows(r) {
  return [["content", r.content], ["styles", r.styles.join(", ")],
          ...OPTIONS.map(k => [WORDS[k], String(r.options[k])]),
          ["state", r.says], ["loss", r.loss === null ? "–" : r.loss.toPrecision(5)], ["run", r.id]];
}
el("compare-button").addEventListener("click", () => {
  const box = el("compare"); box.textContent = "";
  const ids = [...document.querySelectorAll(".card")].filter(c => c.querySelector(".pick").checked)
    .map(c => c.dataset.id);
  el("compare-title").hidden = ids.length < 1;
  if (ids.length < 1) { say("tick the runs to compare"); return; }
  const runs = state.runs.filter(r => ids.includes(r.id)), tables = runs.map(compareRows);
  runs.forEach((r, i) => {
    const figure = make("figure"); figure.dataset.id = r.id;
    figure.append(make("figcaption", {textContent: r.name, title: "run " + r.id}),
                  make("img", {src: "/runs/" + r.id + "/result.png?v=" + r.image, alt: r.name}));
    const table = make("table");
    tables[i].forEach(([k, v], row) => {   // a setting that differs between the runs compared is in bold
      const differs = row < SETTINGS_ROWS && tables.some(t => t[row][1] !== v);
      const tr = make("tr", {className: differs ? "differs" : ""});
      tr.append(make("td", {textContent: k}), make("td", {textContent: v}));
      table.appendChild(tr);
    });
    figure.appendChild(table); box.appendChild(figure);
  });
  el("compare-section").scrollIntoView();
});

// ---------------------------------------------------------------- the state, pushed by the studio
function show(d) {
  state = d;
  if (!formReady && d.choices) fillForm(d.choices);
  showChoices(); showRuns(); showView(); showMessage();
}
async function refresh() {
  const r = await fetch("/api/state");
  if (r.ok) show(await r.json()); else say("the studio answered " + r.status);
}
refresh().then(() => {
  const events = new EventSource("/events");
  events.onmessage = e => show({...JSON.parse(e.data), choices: state && state.choices});
});

// ---------------------------------------------------------------- the loss plot
// The weighted losses on a log scale: y ticks at powers of ten (with 2 and 5 between them when the range
// is under two decades), x ticks at round iterations, and each line named at its end.
const NAMES = ["total", "content", "style", "tv", "temporal"];
const COLOURS = ["#222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
const SUPER = {"-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹"};
function number(v, powers = false) {   // 0.05, 216, 6.62×10⁵; `powers`: 10⁰, 10², 10⁴ (an axis of many decades)
  if (v === 0) return "0";
  const e = Math.floor(Math.log10(Math.abs(v)) + 1e-9);
  if (!powers && e >= -2 && e <= 3) return String(Number(v.toPrecision(3)));
  const m = Number((v / 10 ** e).toPrecision(3));
  return (m === 1 ? "" : m + "×") + "10" + String(e).split("").map(c => SUPER[c]).join("");
}
function logTicks(lo, hi) {   // lo, hi: the data's smallest and largest values (> 0)
  const a = Math.log10(lo), b = Math.log10(hi), span = b - a;
  if (span < 0.5) {   // under half a decade: round values on a linear step, around the data
    const step = niceStep((hi - lo) / 4 || lo / 10), from = Math.floor(lo / step) * step;
    const to = Math.ceil(hi / step) * step;
    return {from, to: to > from ? to : from + step, ticks: niceTicks(from, to > from ? to : from + step, 5),
            powers: false};
  }
  const steps = span < 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(span / 7)), top = Math.ceil(b - 1e-9);   // at most about seven powers of ten
  const all = [];
  for (let e = Math.floor(a) - every; e <= top; e++) {
    if (steps.length === 1 && (top - e) % every) continue;
    for (const m of steps) all.push(m * 10 ** e);
  }
  const below = all.filter(v => v <= lo * (1 + 1e-9)), above = all.filter(v => v >= hi * (1 - 1e-9));
  const from = below[below.length - 1], to = above[0];
  return {from, to, ticks: all.filter(v => v >= from && v <= to), powers: to > 1e4 || from < 1e-2};
}
function niceStep(raw) {   // the 1, 2 or 5 × 10ⁿ at or above `raw`
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map(m => m * p).find(s => s >= raw * (1 - 1e-9));
}
function niceTicks(a, b, most, least = 0) {   // round values from a to b, at most about `most` of them
  const step = niceStep(Math.max(least, (b - a) / most)), ticks = [];
  for (let k = Math.ceil(a / step - 1e-9); k * step <= b * (1 + 1e-12); k++) {
    ticks.push(Number((k * step).toPrecision(12)));
  }
  return ticks;
}
function svgEl(svg, tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  svg.appendChild(e);
  return e;
}
function lossPlot(losses) {
  const svg = el("plot");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (losses.length < 1) return;
  const W = Math.max(svg.clientWidth, 320), H = svg.clientHeight || 200;
  const L = 56, R = Math.min(150, W / 3), T = 18, B = 30;   // margins: ticks left, line names right
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const its = losses.map(r => r[0]);
  const series = NAMES.map((name, k) => ({name, colour: COLOURS[k], values: losses.map(r => r[k + 1])}))
    .filter(s => s.values.every(v => v !== undefined));
  // the range leaves out the first point when there are more (a run from the content image starts at 0)
  const ranged = series.flatMap(s => (s.values.length > 2 ? s.values.slice(1) : s.values)).filter(v => v > 0);
  if (!ranged.length) return;
  const {from, to, ticks, powers} = logTicks(Math.min(...ranged), Math.max(...ranged));
  const x0 = its[0], x1 = Math.max(its[its.length - 1], x0 + 1);
  const X = i => L + (W - L - R) * (i - x0) / (x1 - x0);
  const Y = v => T + (H - T - B) * (Math.log10(to) - Math.log10(Math.min(to, Math.max(v, from))))
                                  / (Math.log10(to) - Math.log10(from));
  for (const t of ticks) {
    svgEl(svg, "line", {x1: L, x2: W - R, y1: Y(t), y2: Y(t), stroke: "#e4e4e4"});
    svgEl(svg, "text", {x: L - 5, y: Y(t) + 4, "text-anchor": "end", class: "ytick"}, number(t, powers));
  }
  for (const t of niceTicks(x0, x1, 8, 1)) {
    svgEl(svg, "line", {x1: X(t), x2: X(t), y1: H - B, y2: H - B + 4, stroke: "#888"});
    svgEl(svg, "text", {x: X(t), y: H - B + 15, "text-anchor": "middle", class: "xtick"}, String(t));
  }
  svgEl(svg, "line", {x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#888"});
  svgEl(svg, "line", {x1: L, x2: L, y1: T, y2: H - B, stroke: "#888"});
  svgEl(svg, "text", {x: W - R, y: H - 2, "text-anchor": "end"}, "iteration");
  svgEl(svg, "text", {x: L + 4, y: 11}, "weighted losses, log scale");
  const labels = series.map(s => {
    const points = s.values.map((v, j) => X(its[j]).toFixed(1) + "," + Y(v).toFixed(1)).join(" ");
    const line = svgEl(svg, "polyline", {points, fill: "none", stroke: s.colour,
                                         "stroke-width": s.name === "total" ? 2 : 1.5});
    svgEl(line, "title", {}, s.name);
    const last = s.values[s.values.length - 1];
    return {s, y: Y(last), text: s.name + " " + number(last)};
  }).sort((a, b) => a.y - b.y);
  labels.forEach((l, k) => { if (k) l.y = Math.max(l.y, labels[k - 1].y + 13); });   // apart, top down
  const over = labels.length ? labels[labels.length - 1].y - (H - B) : 0;
  for (const l of labels) {
    const y = over > 0 ? Math.max(T + 4, l.y - over) : l.y;
    svgEl(svg, "text", {x: W - R + 6, y: y + 4, style: "fill: " + l.s.colour, class: "line-label",
                        "data-name": l.s.name}, l.text);
  }
}
