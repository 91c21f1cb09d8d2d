// The hello UI: shows the counter (GET /counter) and increments it (POST /counter) through the bridge.
(function () {
  "use strict";
  var counter = document.getElementById("counter");
  var status = document.getElementById("status");
  var increment = document.getElementById("increment");

  function show(doc) {
    counter.textContent = String(doc.counter);
    status.textContent = "";
  }
  function fail(err) {
    status.textContent = "Error: " + err.message;
  }
  function refresh() {
    return extplane.callHandlerJson("/counter", null, { method: "GET" }).then(show, fail);
  }

  extplane.ready().then(function (ctx) {
    document.getElementById("tenant").textContent = ctx.tenant || "tenant";
  });
  increment.addEventListener("click", function () {
    increment.disabled = true;
    extplane
      .callHandlerJson("/counter", {}, { method: "POST" })
      .then(show, fail)
      .finally(function () { increment.disabled = false; });
  });
  document.getElementById("refresh").addEventListener("click", refresh);
  refresh();
})();
