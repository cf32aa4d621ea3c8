/* Compose page of the messagerie: files uploaded one by one with a progress bar, and autocomplete of
 * recipients (trust-space directory) and patients. Plain JavaScript, no framework; loaded as a file
 * (the CSP forbids inline scripts). Without JavaScript the form still works: files go with the form. */
(function () {
  "use strict";

  var form = document.getElementById("redaction");
  if (!form) {
    return;
  }
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var list = document.getElementById("liste-pieces-jointes");
  var progressArea = document.getElementById("televersements");
  var fileInput = document.getElementById("id_files");
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;

  function sizeText(bytes) {
    if (bytes >= 1048576) {
      return (bytes / 1048576).toFixed(1).replace(".", ",") + " Mo";
    }
    return Math.max(1, Math.round(bytes / 1024)) + " Ko";
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  /* --- Attachments ------------------------------------------------------------------------------- */

  function removable(item, name) {
    var button = element("button", { type: "button", class: "fr-btn fr-btn--tertiary-no-outline fr-btn--sm pj-retirer" }, "Retirer");
    button.appendChild(element("span", { class: "fr-sr-only" }, " " + name));
    item.appendChild(button);
  }

  function addAttachment(data) {
    var item = element("li", { "data-attachment": String(data.id) });
    item.appendChild(element("input", { type: "hidden", name: "attachments", value: String(data.id) }));
    item.appendChild(element("span", { class: "pj-nom" }, data.filename));
    item.appendChild(document.createTextNode(" "));
    item.appendChild(element("span", { class: "fr-text--xs" }, "(" + sizeText(data.size) + ")"));
    if (data.is_pdf) {
      var group = element("span", { class: "fr-checkbox-group fr-checkbox-group--sm pj-cda" });
      var id = "cda-" + data.id;
      group.appendChild(element("input", { type: "radio", name: "cda_attachment", id: id, value: String(data.id) }));
      group.appendChild(element("label", { class: "fr-label", for: id }, "Joindre comme document CDA (IHE_XDM)"));
      item.appendChild(group);
    }
    removable(item, data.filename);
    list.appendChild(item);
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest(".pj-retirer");
    if (button) {
      var item = button.closest("li");
      item.parentNode.removeChild(item);
      fileInput.focus();
    }
  });

  function uploadOne(file) {
    return new Promise(function (resolve) {
      var row = element("div", { class: "televersement", "data-file": file.name });
      var label = element("label", { for: "" }, file.name + " ");
      var progress = element("progress", { max: "100", value: "0" });
      var percent = element("span", { class: "televersement__pourcentage fr-text--sm" }, " 0 %");
      var progressId = "progression-" + Math.random().toString(36).slice(2);
      progress.id = progressId;
      label.setAttribute("for", progressId);
      row.appendChild(label);
      row.appendChild(progress);
      row.appendChild(percent);
      progressArea.appendChild(row);

      function fail(message) {
        row.appendChild(element("p", { class: "fr-error-text televersement__erreur" }, file.name + " : " + message));
        resolve();
      }

      if (maxBytes && file.size > maxBytes) {
        fail("le fichier dépasse la taille maximale (" + sizeText(maxBytes) + ").");
        return;
      }
      var data = new FormData();
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.dataset.uploadUrl);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.onprogress = function (event) {
        if (event.lengthComputable) {
          var value = Math.round((event.loaded / event.total) * 100);
          progress.value = value;
          percent.textContent = " " + value + " %";
        }
      };
      xhr.onload = function () {
        var answer = {};
        try {
          answer = JSON.parse(xhr.responseText);
        } catch (error) {
          answer = {};
        }
        if (xhr.status === 201) {
          progress.value = 100;
          percent.textContent = " 100 % — envoyé";
          row.classList.add("televersement--termine");
          addAttachment(answer);
          resolve();
        } else {
          fail(answer.error || "le fichier n'a pas pu être envoyé (erreur " + xhr.status + ").");
        }
      };
      xhr.onerror = function () {
        fail("la connexion a été interrompue.");
      };
      xhr.send(data);
    });
  }

  fileInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(fileInput.files);
    fileInput.value = ""; /* the files now travel by XHR, not with the form */
    files.reduce(function (previous, file) {
      return previous.then(function () {
        return uploadOne(file);
      });
    }, Promise.resolve());
  });

  /* --- Autocomplete ------------------------------------------------------------------------------ */

  function setupAutocomplete(input) {
    var kind = input.dataset.autocomplete;
    var url = kind === "patients" ? form.dataset.patientsUrl : form.dataset.recipientsUrl;
    var hidden = kind === "patients" ? document.getElementById("id_patient") : null;
    var box = element("ul", { class: "autocomplete__liste", role: "listbox", id: input.id + "-suggestions", hidden: "" });
    input.parentNode.appendChild(box);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", box.id);
    var timer = null;
    var active = -1;
    var results = [];
    var request = 0;

    function term() {
      if (kind === "patients") {
        return input.value.trim();
      }
      var parts = input.value.split(/[,;]/);
      return parts[parts.length - 1].trim();
    }

    function close() {
      box.hidden = true;
      box.textContent = "";
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var options = box.querySelectorAll("[role=option]");
      options.forEach(function (option, i) {
        option.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      active = index;
      if (index >= 0 && options[index]) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      }
    }

    function choose(index) {
      var choice = results[index];
      if (!choice) {
        return;
      }
      if (kind === "patients") {
        input.value = choice.label;
        hidden.value = choice.value;
      } else {
        var parts = input.value.split(/[,;]/);
        parts[parts.length - 1] = " " + choice.value;
        input.value = parts.map(function (p) { return p.trim(); }).filter(Boolean).join(", ") + ", ";
      }
      close();
      input.focus();
    }

    function show(items) {
      results = items;
      box.textContent = "";
      if (!items.length) {
        close();
        return;
      }
      items.forEach(function (item, i) {
        var option = element("li", { class: "autocomplete__option", role: "option", id: box.id + "-" + i, "aria-selected": "false" }, item.label ? item.label : item.value);
        if (kind !== "patients") {
          option.textContent = item.value;
          option.appendChild(element("small", {}, [item.label, item.kind].filter(Boolean).join(" — ")));
        }
        option.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(i);
        });
        box.appendChild(option);
      });
      box.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(-1);
    }

    input.addEventListener("input", function () {
      if (hidden) {
        hidden.value = "";
      }
      window.clearTimeout(timer);
      var query = term();
      if (query.length < 2) {
        close();
        return;
      }
      timer = window.setTimeout(function () {
        var mine = ++request;
        fetch(url + "?q=" + encodeURIComponent(query), { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (response) { return response.ok ? response.json() : { results: [] }; })
          .then(function (data) {
            if (mine === request) {
              show(data.results || []);
            }
          })
          .catch(close);
      }, 200);
    });

    input.addEventListener("keydown", function (event) {
      if (box.hidden) {
        return;
      }
      if (event.key === "ArrowDown") {
        event.preventDefault();
        highlight(Math.min(active + 1, results.length - 1));
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        highlight(Math.max(active - 1, 0));
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        choose(active);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", function () {
      window.setTimeout(close, 150);
    });
  }

  Array.prototype.forEach.call(form.querySelectorAll("[data-autocomplete]"), setupAutocomplete);
})();
