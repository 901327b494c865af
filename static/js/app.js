/* Draws the server-built Plotly figures and wires the copy buttons.
 *
 * Figures arrive as <script type="application/json" id="..."> data blocks
 * next to an element with data-figure="<that id>": the CSP allows no inline
 * script, so every behaviour lives in this file.
 */
(function () {
  "use strict";

  function plotConfig() {
    // On narrow screens the mode bar would cover the range buttons and the legend.
    var wide = window.matchMedia("(min-width: 700px)").matches;
    return {
      responsive: true,
      displaylogo: false,
      displayModeBar: wide ? "hover" : false,
      scrollZoom: false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    };
  }

  function visibleYExtent(el) {
    // The lowest and highest price drawn inside the current x range: candle lows and highs,
    // and the y of every other shown trace (forecast, band).
    var xaxis = el._fullLayout.xaxis;
    var from = xaxis.r2l(xaxis.range[0]);
    var to = xaxis.r2l(xaxis.range[1]);
    var low = Infinity;
    var high = -Infinity;
    el.data.forEach(function (trace) {
      if (trace.visible === false || trace.visible === "legendonly") {
        return;
      }
      var candle = trace.type === "candlestick";
      var lows = candle ? trace.low : trace.y;
      var highs = candle ? trace.high : trace.y;
      (trace.x || []).forEach(function (x, i) {
        var at = xaxis.d2l(x);
        if (at < from || at > to || lows[i] == null || highs[i] == null) {
          return;
        }
        low = Math.min(low, lows[i]);
        high = Math.max(high, highs[i]);
      });
    });
    return low <= high ? [low, high] : null;
  }

  function fitYToVisibleX(el) {
    // Zooming in on the last day must not leave the candles squashed by the whole range's scale.
    el.on("plotly_relayout", function (change) {
      var keys = Object.keys(change);
      if (change["xaxis.autorange"]) {
        if (!change["yaxis.autorange"]) {
          window.Plotly.relayout(el, { "yaxis.autorange": true });
        }
        return;
      }
      var moved = keys.some(function (key) {
        return key.indexOf("xaxis.range") === 0;
      });
      var extent = moved ? visibleYExtent(el) : null;
      if (!extent) {
        return;
      }
      var pad = (extent[1] - extent[0]) * 0.05 || Math.abs(extent[1]) * 0.001 || 1;
      window.Plotly.relayout(el, { "yaxis.range": [extent[0] - pad, extent[1] + pad] });
    });
  }

  function drawFigures() {
    if (typeof window.Plotly === "undefined") {
      return;
    }
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(el, figure.data, figure.layout, plotConfig()).then(function () {
        if ("fitY" in el.dataset) {
          fitYToVisibleX(el);
        }
        el.dataset.rendered = "true";
      });
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments: fall back to a temporary selection.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) {
        resolve();
      } else {
        reject(new Error("copy refused"));
      }
    });
  }

  function wireCopyButtons() {
    document.querySelectorAll("[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copyTarget);
        if (!target) {
          return;
        }
        var label = button.textContent;
        copyText(target.textContent.trim()).then(
          function () {
            button.textContent = "Copied";
          },
          function () {
            button.textContent = "Select and copy by hand";
          }
        );
        window.setTimeout(function () {
          button.textContent = label;
        }, 2000);
      });
    });
  }

  function wireConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) {
          event.preventDefault();
        }
      });
    });
  }

  function start() {
    drawFigures();
    wireCopyButtons();
    wireConfirmations();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
