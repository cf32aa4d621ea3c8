/* Dashboards: draws each <canvas data-chart="ID"> from the JSON of <script id="ID" type="application/json">
   (Django json_script). No inline script (strict CSP). Target datasets are dashed lines; a missing value
   (small cell "< 5" or nothing to compute) is a gap. The table under each chart holds the same figures. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") {
    return; // Chart.js not installed: the tables remain.
  }
  var palette = ["#000091", "#009081", "#c9191e", "#b34000", "#6a6af4", "#3a3a3a"];
  var targetColour = "#e1000f";
  var numberFormat = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 2 });

  function formatValue(value, unit) {
    if (value === null || value === undefined) {
      return "< 5 ou non disponible";
    }
    var text = numberFormat.format(value);
    return unit === "%" ? text + " %" : text;
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) {
      return;
    }
    var data = JSON.parse(source.textContent);
    var colour = 0;
    var datasets = data.datasets.map(function (dataset) {
      if (dataset.target) {
        return {
          type: "line",
          label: dataset.label,
          data: dataset.data,
          borderColor: targetColour,
          backgroundColor: targetColour,
          borderDash: [6, 4],
          borderWidth: 2,
          pointRadius: 0,
          fill: false,
          order: 0
        };
      }
      var c = palette[colour++ % palette.length];
      return {
        type: data.type,
        label: dataset.label,
        data: dataset.data,
        borderColor: c,
        backgroundColor: data.type === "bar" ? c : c + "33",
        borderWidth: 2,
        pointRadius: data.labels.length > 60 ? 0 : 2,
        spanGaps: false,
        order: 1
      };
    });
    new window.Chart(canvas, {
      type: data.type,
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: {
            beginAtZero: true,
            ticks: {
              callback: function (value) {
                return formatValue(value, data.unit);
              }
            }
          }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (context) {
                return context.dataset.label + " : " + formatValue(context.raw, data.unit);
              }
            }
          }
        }
      }
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
