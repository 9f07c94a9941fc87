// Currency picker: filter the ISO 4217 checkboxes by code or name, and list what is selected.
(function () {
  "use strict";
  function init() {
    var filter = document.getElementById("fiat-filter");
    var list = document.getElementById("fiat-list");
    var summary = document.getElementById("fiat-selected");
    if (!filter || !list) { return; }
    var items = Array.prototype.slice.call(list.querySelectorAll("label"));
    function refreshSummary() {
      var codes = items.filter(function (label) {
        var box = label.querySelector("input");
        return box && box.checked;
      }).map(function (label) { return label.querySelector("input").value; });
      summary.textContent = codes.length ? "Selected: " + codes.join(", ") : "None selected";
    }
    filter.addEventListener("input", function () {
      var needle = filter.value.trim().toLowerCase();
      items.forEach(function (label) {
        var row = label.parentElement.tagName === "DIV" ? label.parentElement : label;
        row.style.display = !needle || label.textContent.toLowerCase().indexOf(needle) !== -1 ? "" : "none";
      });
    });
    list.addEventListener("change", refreshSummary);
    refreshSummary();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
