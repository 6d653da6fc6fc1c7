/* Small line charts for Volue events: reads data-series from .volue-chart, draws SVG.
   Served from 'self' because the CSP forbids inline scripts. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLOURS = ["#417690", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#2c3e50"];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function draw(box) {
    var series;
    try { series = JSON.parse(box.getAttribute("data-series")); } catch (e) { return; }
    var rows = Math.ceil(series.length / 3);
    var W = 640, H = 200 + 14 * rows, L = 50, R = 10, T = 10, B = 26 + 14 * rows;
    var times = [], values = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        times.push(Date.parse(p[0])); values.push(Number(p[1]));
      });
      // A value holds for its period: the last one ends one step after it starts.
      var n = s.points.length;
      var step = n > 1 ? Date.parse(s.points[n - 1][0]) - Date.parse(s.points[n - 2][0])
                       : 3600000;
      s.end = Date.parse(s.points[n - 1][0]) + step;
      times.push(s.end);
    });
    if (!times.length) { return; }
    var t0 = Math.min.apply(null, times), t1 = Math.max.apply(null, times);
    var v0 = Math.min(0, Math.min.apply(null, values)), v1 = Math.max.apply(null, values);
    if (t1 === t0) { t1 = t0 + 3600000; }
    if (v1 === v0) { v1 = v0 + 1; }
    var x = function (t) { return L + (t - t0) / (t1 - t0) * (W - L - R); };
    var y = function (v) { return T + (1 - (v - v0) / (v1 - v0)) * (H - T - B); };
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, class: "volue-chart-svg",
                         role: "img", "aria-label": "event curve"});
    svg.appendChild(el("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis"}));
    svg.appendChild(el("line", {x1: L, y1: T, x2: L, y2: H - B, class: "axis"}));
    svg.appendChild(el("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, v1.toFixed(1)));
    svg.appendChild(el("text", {x: L - 4, y: H - B, "text-anchor": "end"}, v0.toFixed(1)));
    var fmt = function (t) { return new Date(t).toISOString().slice(0, 16).replace("T", " ") + "Z"; };
    svg.appendChild(el("text", {x: L, y: H - B + 16}, fmt(t0)));
    svg.appendChild(el("text", {x: W - R, y: H - B + 16, "text-anchor": "end"}, fmt(t1)));
    series.forEach(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      // Step line: a price or a limit holds for its whole period.
      var d = "";
      s.points.forEach(function (p, j) {
        var px = x(Date.parse(p[0])), py = y(Number(p[1]));
        d += (j === 0 ? "M" : "H" + px.toFixed(1) + " V") + (j === 0 ? px.toFixed(1) + " " : "") +
             py.toFixed(1) + " ";
      });
      d += "H" + x(s.end).toFixed(1);
      svg.appendChild(el("path", {d: d, fill: "none", stroke: colour, "stroke-width": 2}));
      svg.appendChild(el("text", {x: L + (i % 3) * 195, y: H - B + 32 + Math.floor(i / 3) * 14,
                                  fill: colour}, s.label));
    });
    box.appendChild(svg);
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".volue-chart"), draw);
  });
})();
