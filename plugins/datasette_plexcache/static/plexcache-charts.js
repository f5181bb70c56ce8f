/* plexcache: draw the Vega-Lite charts of the overview and progress pages.
 *
 * Each <figure class="plexcache-chart"> holds its spec (data inline) in a
 * <script type="application/json" class="plexcache-chart-spec">. vega-embed
 * is vendored (static/vendor): nothing is fetched from another host, and the
 * embed's actions menu (which links to the online Vega editor) is off.
 * A click on a bar follows its `href`: the rows behind it.
 */
(function () {
  "use strict";

  function draw(figure) {
    var specEl = figure.querySelector(".plexcache-chart-spec");
    var canvas = figure.querySelector(".plexcache-chart-canvas");
    if (!specEl || !canvas || figure.getAttribute("data-chart-rows") === "0") return null;
    if (typeof window.vegaEmbed !== "function") {
      figure.setAttribute("data-chart-state", "unavailable");
      return null;
    }
    var spec = JSON.parse(specEl.textContent);
    return window
      .vegaEmbed(canvas, spec, { actions: false, renderer: "svg", tooltip: { theme: "light" } })
      .then(function (result) {
        figure.setAttribute("data-chart-state", "drawn");
        figure._plexcacheView = result.view;
        return result;
      })
      .catch(function (error) {
        figure.setAttribute("data-chart-state", "failed");
        canvas.textContent = "The chart could not be drawn: " + error;
      });
  }

  function drawAll(root) {
    var figures = (root || document).querySelectorAll("figure.plexcache-chart");
    for (var i = 0; i < figures.length; i++) draw(figures[i]);
  }

  // JSON with sorted keys: the page's spec (Jinja's tojson) and the JSON
  // API's list the same keys in different orders
  function canonical(value) {
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map(function (k) {
        return JSON.stringify(k) + ":" + canonical(value[k]);
      }).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  // Replace a chart's specification (e.g. the progress page's runs chart
  // after a sync) and draw it again; nothing happens when it did not change.
  function update(chartId, chart) {
    var figure = document.getElementById("chart-" + chartId);
    var specEl = figure && figure.querySelector(".plexcache-chart-spec");
    if (!specEl || !chart || !chart.spec) return;
    if (canonical(chart.spec) === canonical(JSON.parse(specEl.textContent))) return;
    specEl.textContent = JSON.stringify(chart.spec);
    figure.setAttribute("data-chart-rows", String(chart.rows));
    if (figure.parentNode && figure.parentNode.hidden) figure.parentNode.hidden = false;
    if (figure._plexcacheView) figure._plexcacheView.finalize();
    draw(figure);
  }

  window.plexcacheCharts = { draw: draw, drawAll: drawAll, update: update };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  } else {
    drawAll();
  }
})();
