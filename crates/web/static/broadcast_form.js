// The broadcast compose form: "Add another translation" appends an empty language-and-text
// row (numbered on from the last) with its own counter. Without this script the form still
// has one empty row, and more appear after each preview.
(function () {
  var button = document.getElementById("add-translation");
  var rows = document.getElementById("translations");
  if (!button || !rows) return;
  var next = parseInt(button.getAttribute("data-next"), 10) || 0;
  var MAX_ROWS = 40;

  function addRow() {
    var template = rows.querySelector(".translation:last-child");
    if (!template || next >= MAX_ROWS) return;
    var row = template.cloneNode(true);
    row.setAttribute("data-row", String(next));
    var lang = row.querySelector("input");
    var text = row.querySelector("textarea");
    var counter = row.querySelector(".counter");
    lang.name = "lang_" + next;
    lang.value = "";
    text.name = "text_" + next;
    text.value = "";
    counter.id = "counter-" + next;
    counter.textContent = "";
    text.setAttribute("data-counter", counter.id);
    rows.appendChild(row);
    if (window.casecastSmsCounter) window.casecastSmsCounter(text, counter);
    next += 1;
    if (next >= MAX_ROWS) button.hidden = true;
    lang.focus();
  }

  button.hidden = false;
  button.addEventListener("click", addRow);
})();
