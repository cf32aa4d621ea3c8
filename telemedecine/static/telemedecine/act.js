// Act page: refreshes the progress of the study transfers (no inline script: strict CSP).
(function () {
  "use strict";
  var section = document.getElementById("examens");
  if (!section || !section.dataset.progressUrl) { return; }
  var url = section.dataset.progressUrl;
  var statusLine = document.getElementById("transferts-etat");
  var delay = 3000;
  var failures = 0;

  function update(transfer) {
    var row = section.querySelector('tr[data-transfer="' + transfer.id + '"]');
    if (!row) { return false; }
    var bar = row.querySelector("progress");
    if (bar) {
      bar.max = transfer.instances_total || 1;
      bar.value = transfer.instances_sent;
      bar.textContent = transfer.percent + " %";
    }
    var count = row.querySelector('[data-field="count"]');
    if (count) { count.textContent = transfer.instances_sent + " / " + transfer.instances_total; }
    var status = row.querySelector('[data-field="status"]');
    if (status) { status.textContent = transfer.status_label; }
    var error = row.querySelector('[data-field="error"]');
    if (error) {
      error.textContent = transfer.last_error || "";
      error.classList.toggle("fr-hidden", !transfer.last_error);
    }
    return true;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (body) {
        failures = 0;
        var known = true;
        body.transfers.forEach(function (transfer) { known = update(transfer) && known; });
        var retryVisible = section.querySelector('tr[data-transfer] form');
        var failed = body.transfers.some(function (t) { return t.status === "failed"; });
        if (!known || (failed && !retryVisible)) {
          // A new transfer or a failure that needs the "Relancer" button: show the fresh page.
          window.location.reload();
          return;
        }
        if (body.done) {
          if (statusLine) { statusLine.textContent = "Transferts terminés."; }
          return;
        }
        if (statusLine) { statusLine.textContent = "Transfert en cours : mise à jour automatique."; }
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        failures += 1;
        if (statusLine) { statusLine.textContent = "Mise à jour momentanément impossible ; nouvel essai."; }
        window.setTimeout(poll, Math.min(delay * Math.pow(2, failures), 60000));
      });
  }

  window.setTimeout(poll, delay);
})();
