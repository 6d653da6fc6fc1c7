/*
 * The overview's bar chart: readings accepted (and quarantined) per UTC day.
 *
 * Data comes from a json_script element named by the container's data-source; the SVG is
 * built here because the admin's CSP allows only scripts served by the hub itself.
 */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 220;
  var MARGIN = { top: 10, right: 8, bottom: 26, left: 58 };

  var numberFormat = new Intl.NumberFormat();
  var compactFormat = (function () {
    try {
      return new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
    } catch (e) {
      return numberFormat;
    }
  })();
  var dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  var dayTitle = new Intl.DateTimeFormat(undefined, {
    weekday: "short", year: "numeric", month: "short", day: "numeric", timeZone: "UTC"
  });

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function text(parent, x, y, content, anchor) {
    var node = el("text", { x: x, y: y, "text-anchor": anchor || "middle" }, parent);
    node.textContent = content;
    return node;
  }

  // A round axis maximum: `ticks` even steps of a round size (1, 1.5, 2, 2.5 … 8 × 10^n).
  function niceMax(value, ticks) {
    if (value <= 0) { return ticks; }
    var raw = value / ticks;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * power) { return Math.max(steps[i] * power, 1) * ticks; }
    }
    return 10 * power * ticks;
  }

  function parseDay(iso) { return new Date(iso + "T00:00:00Z"); }

  // Drawn at the container's pixel width, so labels keep their size on any screen.
  function draw(container, days) {
    var WIDTH = Math.max(container.clientWidth - 24, 320);
    var plotW = WIDTH - MARGIN.left - MARGIN.right;
    var plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
    var ticks = 4;
    var top = niceMax(Math.max.apply(null, days.map(function (d) {
      return d.accepted + d.quarantined;
    }).concat([0])), ticks);
    var band = plotW / days.length;
    var barW = Math.max(band * 0.72, 1);
    var labelStep = Math.max(1, Math.ceil(64 / band));
    var y = function (v) { return MARGIN.top + plotH - (v / top) * plotH; };

    var svg = el("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT,
      width: WIDTH,
      height: HEIGHT,
      role: "img",
      "aria-label": "Readings accepted per day over the last " + days.length + " days"
    });

    for (var t = 0; t <= ticks; t++) {
      var value = (top / ticks) * t;
      var ty = y(value);
      el("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: ty, y2: ty,
                   "class": t === 0 ? "axis" : "grid" }, svg);
      text(svg, MARGIN.left - 8, ty + 4, compactFormat.format(value), "end");
    }

    days.forEach(function (d, i) {
      var x = MARGIN.left + i * band + (band - barW) / 2;
      var group = el("g", { "class": "bar-group" }, svg);
      var title = el("title", {}, group);
      title.textContent = dayTitle.format(parseDay(d.day)) + ": " +
        numberFormat.format(d.accepted) + " accepted, " +
        numberFormat.format(d.quarantined) + " rejected at ingest";
      // The whole column answers to the pointer, even on a day without readings.
      el("rect", { x: MARGIN.left + i * band, y: MARGIN.top, width: band, height: plotH,
                   fill: "transparent" }, group);
      if (d.accepted > 0) {
        el("rect", { x: x, y: y(d.accepted), width: barW,
                     height: Math.max(y(0) - y(d.accepted), 1), "class": "bar-accepted" }, group);
      }
      if (d.quarantined > 0) {
        var base = y(d.accepted);
        el("rect", { x: x, y: y(d.accepted + d.quarantined), width: barW,
                     height: Math.max(base - y(d.accepted + d.quarantined), 1),
                     "class": "bar-quarantined" }, group);
      }
      // Label today and every step-th day before it, as often as the width allows.
      if ((days.length - 1 - i) % labelStep === 0) {
        text(svg, MARGIN.left + i * band + band / 2, HEIGHT - 8,
             dayLabel.format(parseDay(d.day)));
      }
    });

    var totalAccepted = days.reduce(function (s, d) { return s + d.accepted; }, 0);
    var totalQuarantined = days.reduce(function (s, d) { return s + d.quarantined; }, 0);

    container.textContent = "";
    if (totalAccepted + totalQuarantined === 0) {
      var empty = document.createElement("p");
      empty.className = "hub-quiet empty";
      empty.textContent = "No readings arrived in the last " + days.length + " days.";
      container.appendChild(empty);
      return;
    }
    container.appendChild(svg);

    var legend = document.createElement("ul");
    legend.className = "legend";
    // "Rejected at ingest", not "quarantined": the quarantine also holds what platforms
    // refused and what pulls could not map, which the figure above the chart counts.
    [["accepted", "Accepted", totalAccepted],
     ["quarantined", "Rejected at ingest", totalQuarantined]].forEach(function (item) {
      var li = document.createElement("li");
      var swatch = document.createElement("span");
      swatch.className = "swatch swatch-" + item[0];
      li.appendChild(swatch);
      li.appendChild(document.createTextNode(
        item[1] + ": " + numberFormat.format(item[2]) + " in " + days.length + " days"));
      legend.appendChild(li);
    });
    container.appendChild(legend);
  }

  function init() {
    document.querySelectorAll(".hub-chart[data-source]").forEach(function (container) {
      var source = document.getElementById(container.getAttribute("data-source"));
      if (!source) { return; }
      var days = JSON.parse(source.textContent);
      if (!days.length) { return; }
      draw(container, days);
      var width = container.clientWidth;
      var pending = null;
      window.addEventListener("resize", function () {
        clearTimeout(pending);
        pending = setTimeout(function () {
          if (container.clientWidth !== width) {
            width = container.clientWidth;
            draw(container, days);
          }
        }, 150);
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
