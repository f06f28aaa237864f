// Copy buttons for once-shown secrets. A button <button data-copy="ID" data-status="ID" hidden> copies the
// text of #data-copy and says so in the live region #data-status. It stays hidden without this script
// (the text itself is always selectable), so no button is ever shown that does nothing.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function copy(text, element) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http off localhost has no Clipboard API: the older command still copies a selection.
    return new Promise(function (resolve, reject) {
      selectText(element);
      (document.execCommand && document.execCommand("copy") ? resolve : reject)();
    });
  }

  function say(status, words) {
    // Emptied first, so that a second copy is announced again.
    status.textContent = "";
    window.setTimeout(function () { status.textContent = words; }, 50);
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-status"));
    if (!source || !status) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(source.textContent.trim(), source).then(
        function () { say(status, button.getAttribute("data-done")); },
        function () {
          // Copying was refused (a browser setting): the text is selected for Ctrl+C / ⌘C instead.
          selectText(source);
          say(status, button.getAttribute("data-failed"));
        }
      );
    });
  });
})();
