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
