// Resumable upload of a DICOM study (a folder or a zip) in pieces, with a real progress bar.
// A folder is sent as one "bundle" stream (see telemedecine/dicom/archive.py): "ENRSDCM1", then for each
// file its name length (4 bytes), its name (UTF-8), its size (8 bytes) and its bytes, all big endian.
// The Blob is composed lazily: nothing is read into memory before its piece is sent.
(function () {
  "use strict";
  var form = document.getElementById("depot-form");
  if (!form) { return; }
  var folderInput = document.getElementById("depot-dossier");
  var archiveInput = document.getElementById("depot-archive");
  var button = document.getElementById("depot-envoyer");
  var bar = document.getElementById("depot-progression");
  var percent = document.getElementById("depot-pourcentage");
  var state = document.getElementById("depot-etat");
  var errorBox = document.getElementById("depot-erreur");
  var choiceError = document.getElementById("depot-erreur-choix");
  var result = document.getElementById("depot-resultat");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var chunkSize = parseInt(form.dataset.chunkSize, 10);
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  var maxFiles = parseInt(form.dataset.maxFiles, 10);
  var MAX_RETRIES = 8;

  function setState(text) { state.textContent = text; }
  function showError(text) {
    errorBox.innerHTML = "";
    if (!text) { return; }
    var alert = document.createElement("div");
    alert.className = "fr-alert fr-alert--error fr-alert--sm";
    var p = document.createElement("p");
    p.textContent = text;
    alert.appendChild(p);
    errorBox.appendChild(alert);
  }
  function setProgress(done, total) {
    var value = total > 0 ? Math.min(100, Math.floor((done * 100) / total)) : 0;
    bar.value = value;
    bar.textContent = value + " %";
    percent.textContent = String(value);
  }
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function bundleOf(files) {
    var encoder = new TextEncoder();
    var parts = [encoder.encode("ENRSDCM1")];
    files.forEach(function (file) {
      var name = encoder.encode(file.webkitRelativePath || file.name);
      var header = new ArrayBuffer(4 + name.length + 8);
      var view = new DataView(header);
      view.setUint32(0, name.length);
      new Uint8Array(header, 4, name.length).set(name);
      view.setBigUint64(4 + name.length, BigInt(file.size));
      parts.push(header, file);
    });
    return new Blob(parts, { type: "application/octet-stream" });
  }

  // One XMLHttpRequest (fetch has no upload progress). Resolves with the JSON answer; rejects with
  // {network: true} on a network error, or {status, body} on an HTTP error.
  function request(method, url, body, headers, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      Object.keys(headers || {}).forEach(function (key) { xhr.setRequestHeader(key, headers[key]); });
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (event) { onProgress(event.loaded); };
      }
      xhr.onerror = function () { reject({ network: true }); };
      xhr.ontimeout = function () { reject({ network: true }); };
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data) { resolve(data); }
        else { reject({ status: xhr.status, body: data || {} }); }
      };
      xhr.send(body);
    });
  }

  async function serverOffset(session) {
    var status = await request("GET", session.status_url, null, {});
    return status.received_size;
  }

  async function upload(payload, filename) {
    var total = payload.size;
    setProgress(0, total);
    setState("Préparation du dépôt…");
    var session = await request("POST", form.dataset.startUrl, JSON.stringify({
      filename: filename, total_size: total, act: form.dataset.act || null,
    }), { "Content-Type": "application/json" });
    var offset = session.received_size;
    var retries = 0;
    while (offset < total) {
      var end = Math.min(offset + chunkSize, total);
      var start = offset;
      setState("Envoi en cours…");
      try {
        var answer = await request("POST", session.chunk_url, payload.slice(start, end),
          { "Content-Type": "application/octet-stream", "X-Upload-Offset": String(start) },
          function (loaded) { setProgress(start + loaded, total); });
        offset = answer.received_size;
        retries = 0;
      } catch (failure) {
        if (failure.status === 409 && typeof failure.body.received_size === "number") {
          offset = failure.body.received_size;  // the server holds more (or less): resume from there
        } else if (failure.network || failure.status >= 500 || failure.status === 0) {
          retries += 1;
          if (retries > MAX_RETRIES) { throw { message: "Le réseau ne répond plus : le dépôt est interrompu. Relancez-le pour reprendre." }; }
          setState("Coupure réseau : nouvelle tentative (" + retries + "/" + MAX_RETRIES + ")…");
          await sleep(Math.min(500 * Math.pow(2, retries - 1), 15000));
          try { offset = await serverOffset(session); } catch (e) { /* still down: try again */ }
        } else {
          throw { message: (failure.body && failure.body.error) || "Le serveur a refusé un morceau du dépôt." };
        }
      }
      setProgress(offset, total);
    }
    setProgress(total, total);
    setState("Fichiers reçus : vérification et classement des images…");
    var done;
    try {
      done = await request("POST", session.complete_url, null, {});
    } catch (failure) {
      throw { message: (failure.body && failure.body.error) || "Le dépôt n'a pas pu être terminé." };
    }
    setState("Dépôt terminé : " + done.instances + " image(s) dans " + done.series + " série(s).");
    result.innerHTML = "";
    var link = document.createElement("a");
    link.className = "fr-link";
    link.id = "depot-lien-examen";
    link.href = done.study_url;
    link.textContent = "Voir l'examen déposé";
    result.appendChild(link);
    link.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    showError("");
    choiceError.textContent = "";
    result.innerHTML = "";
    var payload = null;
    var filename = "";
    var folder = Array.prototype.slice.call(folderInput.files || []);
    if (archiveInput.files && archiveInput.files.length) {
      payload = archiveInput.files[0];
      filename = payload.name;
    } else if (folder.length) {
      if (folder.length > maxFiles) {
        choiceError.innerHTML = "";
        var tooMany = document.createElement("p");
        tooMany.className = "fr-message fr-message--error";
        tooMany.textContent = "Le dossier contient " + folder.length + " fichiers (maximum " + maxFiles + ").";
        choiceError.appendChild(tooMany);
        return;
      }
      payload = bundleOf(folder);
      filename = (folder[0].webkitRelativePath || folder[0].name).split("/")[0] || "dossier";
    }
    if (!payload) {
      var none = document.createElement("p");
      none.className = "fr-message fr-message--error";
      none.textContent = "Choisissez un dossier ou une archive zip.";
      choiceError.appendChild(none);
      folderInput.focus();
      return;
    }
    if (payload.size > maxBytes) {
      showError("Dépôt trop volumineux (maximum " + Math.floor(maxBytes / 1048576) + " Mo).");
      return;
    }
    button.disabled = true;
    upload(payload, filename).catch(function (failure) {
      var message = (failure && failure.message) || (failure && failure.body && failure.body.error)
        || "Le dépôt a échoué.";
      setState("Dépôt refusé.");
      showError(message);
    }).finally(function () { button.disabled = false; });
  });
})();
