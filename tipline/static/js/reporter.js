/* tipline reporter pages: optional progressive enhancement. Every page works without it.
   - school picker: narrows the list as you type (the Find button does the same on the server)
   - pictures: says at once when a file is too large, too many, or not a picture
   - a form with no picture chosen is sent URL-encoded, which the server parses far more
     cheaply than multipart (without JavaScript the form is always multipart, and works)
   - language links on a form page: re-post the form so nothing typed is lost (the tip form
     has language buttons instead, which do this without JavaScript)
   - error summary: focused when the page loads
   - receipt: a Copy button for the code
   No network requests, no storage, nothing sent anywhere. */
(function () {
  "use strict";

  function fold(s) {
    return (s || "").normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  // --- school search -------------------------------------------------------------------------
  var select = document.getElementById("school");
  var search = document.getElementById("school_q");
  if (select && search) {
    var groups = [];
    Array.prototype.forEach.call(select.querySelectorAll("optgroup"), function (g) {
      var opts = Array.prototype.map.call(g.querySelectorAll("option"), function (o) {
        return { value: o.value, text: o.textContent, key: fold(o.textContent + " " + g.label) };
      });
      groups.push({ label: g.label, options: opts });
    });
    var fixed = Array.prototype.filter.call(select.options, function (o) {
      return !o.parentElement || o.parentElement.tagName !== "OPTGROUP";
    });
    var live = document.createElement("p");
    live.className = "status";
    live.setAttribute("role", "status");
    live.id = "school-live";
    select.parentNode.insertBefore(live, select.nextSibling);

    var filter = function () {
      var words = fold(search.value).split(/\s+/).filter(Boolean);
      var chosen = select.value;
      while (select.firstChild) { select.removeChild(select.firstChild); }
      fixed.forEach(function (o) { select.appendChild(o); });
      var count = 0, last = null;
      groups.forEach(function (g) {
        var keep = g.options.filter(function (o) {
          return o.value === chosen || words.every(function (w) { return o.key.indexOf(w) !== -1; });
        });
        if (!keep.length) { return; }
        var og = document.createElement("optgroup");
        og.label = g.label;
        keep.forEach(function (o) {
          var el = document.createElement("option");
          el.value = o.value;
          el.textContent = o.text;
          og.appendChild(el);
          count += 1;
          last = o.value;
        });
        select.appendChild(og);
      });
      select.value = chosen;
      if (words.length && count === 1 && !chosen) { select.value = last; }
      live.textContent = words.length ? (search.getAttribute("data-count-label") || "%d").replace("%d", String(count)) : "";
    };
    search.addEventListener("input", filter);
    search.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); filter(); select.focus(); }
    });
  }

  // --- pictures ---------------------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("input[type=file][data-max-bytes]"), function (input) {
    var box = document.getElementById(input.id + "-jserror");
    input.addEventListener("change", function () {
      var maxBytes = parseInt(input.getAttribute("data-max-bytes"), 10);
      var maxFiles = parseInt(input.getAttribute("data-max-files"), 10);
      var problem = "";
      if (input.files.length > maxFiles) { problem = input.getAttribute("data-msg-count"); }
      Array.prototype.forEach.call(input.files, function (f) {
        if (problem) { return; }
        if (f.type && f.type.indexOf("image/") !== 0) { problem = input.getAttribute("data-msg-type"); }
        else if (f.size > maxBytes) { problem = input.getAttribute("data-msg-size"); }
      });
      if (box) {
        box.textContent = problem;
        box.hidden = !problem;
      }
      if (problem) { input.value = ""; }
    });
  });

  // --- multipart only when a picture is chosen --------------------------------------------------
  // Set ahead of every way the form can be sent (buttons, Enter, form.submit() below), so no
  // submit-event timing matters: on load, when a file is chosen or cleared, and on submit.
  var fileForms = Array.prototype.filter.call(document.querySelectorAll("form"), function (form) {
    return form.enctype === "multipart/form-data" && form.querySelector("input[type=file]");
  });
  function fitEnctype(form) {
    var chosen = Array.prototype.some.call(form.querySelectorAll("input[type=file]"),
      function (input) { return input.files && input.files.length > 0; });
    form.enctype = chosen ? "multipart/form-data" : "application/x-www-form-urlencoded";
  }
  fileForms.forEach(function (form) {
    fitEnctype(form);
    form.addEventListener("change", function () { fitEnctype(form); });
    form.addEventListener("submit", function () { fitEnctype(form); });
  });
  window.addEventListener("pageshow", function () { fileForms.forEach(fitEnctype); });

  // --- language switch without losing what was typed ------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("a[data-lang-form]"), function (link) {
    link.addEventListener("click", function (ev) {
      var form = document.getElementById(link.getAttribute("data-lang-form"));
      if (!form) { return; }
      var typed = Array.prototype.some.call(form.querySelectorAll("textarea, input[type=text], input[type=search]"),
        function (el) { return el.value.trim() !== ""; });
      if (!typed) { return; }
      ev.preventDefault();
      [["lang", link.getAttribute("data-lang")], ["lang_switch", "1"]].forEach(function (pair) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = pair[0];
        input.value = pair[1];
        form.appendChild(input);
      });
      form.submit();
    });
  });

  // --- error summary: focus it (autofocus does it too, but not when the page comes from the
  // back/forward cache), so a screen reader announces it and the keyboard starts there ------
  var summary = document.getElementById("error-summary");
  if (summary && (document.activeElement === document.body || !document.activeElement)) {
    summary.focus();
  }

  // --- copy the receipt code --------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.textContent = button.getAttribute("data-copied");
      });
    });
  });
})();
