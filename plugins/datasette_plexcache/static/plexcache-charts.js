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

  window.plexcacheCharts = { draw: draw, drawAll: drawAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  } else {
    drawAll();
  }
})();
