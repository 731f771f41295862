// An invitation or reset link ends in #<code>: the code goes into the form, and out of the address bar and history.
"use strict";
(function () {
  var code = window.location.hash.slice(1);
  var field = document.getElementById("token");
  if (code && field) {
    field.value = decodeURIComponent(code);
    history.replaceState(null, "", window.location.pathname);
  }
})();
