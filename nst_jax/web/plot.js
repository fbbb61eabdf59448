"use strict";
// The loss plot and the time words shared by the live page and the studio (set as text, never as HTML).
const NAMES = ["total", "content", "style", "tv", "temporal"];
const COLOURS = ["#222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
function human(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m < 60 ? m + " min " + String(Math.round(s % 60)).padStart(2, "0") + " s"
                : Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}
function plot(losses, svgId = "plot", legendId = "legend") {
  const svg = document.getElementById(svgId);
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (losses.length < 1) return;
  const W = 480, H = 300, L = 50, B = 24;
  const its = losses.map(r => r[0]);
  const series = NAMES.map((_, k) => losses.map(r => r[k + 1])).filter(s => s.every(v => v !== undefined));
  const positive = series.flat().filter(v => v > 0);
  const lo = Math.log10(Math.min(...positive)), hi = Math.log10(Math.max(...positive)) + 1e-9;
  const x0 = Math.min(...its), x1 = Math.max(...its) + 1e-9;
  const X = i => L + (W - L - 10) * (i - x0) / (x1 - x0), Y = v => 10 + (H - B - 10) * (hi - Math.log10(Math.max(v, 10 ** lo))) / (hi - lo);
  const ns = "http://www.w3.org/2000/svg";
  series.forEach((s, k) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", s.map((v, j) => X(its[j]).toFixed(1) + "," + Y(v).toFixed(1)).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", COLOURS[k]); line.setAttribute("stroke-width", "1.5");
    svg.appendChild(line);
  });
  const label = (x, y, value) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "10");
    t.textContent = value; svg.appendChild(t);
  };
  label(2, 14, (10 ** hi).toPrecision(3)); label(2, H - B, (10 ** lo).toPrecision(3));
  label(L, H - 6, "iteration " + x0); label(W - 90, H - 6, "iteration " + Math.round(x1));
  const legend = document.getElementById(legendId);
  legend.textContent = "";
  series.forEach((s, k) => {
    const span = document.createElement("span");
    span.style.color = COLOURS[k];
    span.textContent = NAMES[k] + " " + s[s.length - 1].toPrecision(4);
    legend.appendChild(span);
  });
}
