// extplane iframe SDK: a classic script (module scripts would need CORS from the opaque origin of a
// sandboxed iframe). Load it with <script src="/sdk/js/extplane-iframe.js"></script>; it defines
// `window.extplane`:
//
//   extplane.ready()                                   -> Promise<context> (the host's bootstrap)
//   extplane.callHandlerJson(route, body, {method})    -> Promise<parsed JSON answer>
//   extplane.callRoute(route, bytes, {method, contentType}) -> Promise<{status, contentType, body}>
//   extplane.context()                                 -> the bootstrap payload, or null
//
// Messages go only to window.parent with the parent's origin as target, and only messages whose
// source is window.parent and whose origin is that origin are accepted. See docs/ui.md.
(function () {
  "use strict";
  var PROTOCOL = 1;
  var TIMEOUT_MS = 30000;
  var METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

  function originOf(value) {
    try {
      var url = new URL(value);
      return url.origin === value ? value : null;
    } catch (e) {
      return null;
    }
  }
  var parentOrigin =
    originOf(new URLSearchParams(window.location.search).get("parentOrigin") || "") ||
    window.location.origin;

  var pending = new Map();
  var context = null;
  var readyWaiters = [];
  var seq = 0;

  function post(type, payload, requestId) {
    var message = { extplane: PROTOCOL, type: type, payload: payload };
    if (requestId !== undefined) message.request_id = requestId;
    window.parent.postMessage(message, parentOrigin);
  }

  function toBase64(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }

  function fromBase64(b64) {
    var text = atob(b64 || "");
    var out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (event.source !== window.parent || event.origin !== parentOrigin) return;
    if (!data || data.extplane !== PROTOCOL || typeof data.type !== "string") return;
    if (data.type === "bootstrap") {
      context = data.payload || {};
      readyWaiters.splice(0).forEach(function (resolve) { resolve(context); });
    } else if (data.type === "apiproxy_response") {
      var entry = pending.get(data.request_id);
      if (!entry) return;
      pending.delete(data.request_id);
      clearTimeout(entry.timer);
      var p = data.payload || {};
      if (p.status === 0 || (p.error && p.body === undefined)) {
        entry.reject(Object.assign(new Error(p.error || "proxy error"), { status: p.status || 0 }));
      } else {
        entry.resolve({ status: p.status, contentType: p.content_type || "", body: fromBase64(p.body) });
      }
    }
  });

  function ready() {
    post("ready", {});
    if (context) return Promise.resolve(context);
    return new Promise(function (resolve) { readyWaiters.push(resolve); });
  }

  function callRoute(route, bytes, options) {
    var method = String((options && options.method) || (bytes ? "POST" : "GET")).toUpperCase();
    if (METHODS.indexOf(method) < 0) return Promise.reject(new Error("unknown method " + method));
    if (method === "GET" && bytes) return Promise.reject(new Error("a GET cannot carry a body"));
    if (typeof route !== "string" || route.charAt(0) !== "/") {
      return Promise.reject(new Error("route must start with /"));
    }
    var requestId = "r" + ++seq + "-" + Math.random().toString(36).slice(2);
    var payload = { route: route, method: method };
    if (bytes) {
      payload.body = toBase64(bytes);
      payload.content_type = (options && options.contentType) || "application/octet-stream";
    }
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        pending.delete(requestId);
        reject(new Error("no answer from the host within " + TIMEOUT_MS + " ms"));
      }, TIMEOUT_MS);
      pending.set(requestId, { resolve: resolve, reject: reject, timer: timer });
      post("apiproxy", payload, requestId);
    });
  }

  function callHandlerJson(route, body, options) {
    var hasBody = body !== undefined && body !== null;
    var method = String((options && options.method) || (hasBody ? "POST" : "GET")).toUpperCase();
    if (method === "GET" && hasBody) return Promise.reject(new Error("a GET cannot carry a body"));
    var bytes = hasBody ? new TextEncoder().encode(JSON.stringify(body)) : null;
    return callRoute(route, bytes, { method: method, contentType: "application/json" }).then(
      function (answer) {
        var text = new TextDecoder().decode(answer.body);
        var doc = text ? JSON.parse(text) : null;
        if (answer.status >= 400) {
          var message = (doc && (doc.message || doc.error)) || "HTTP " + answer.status;
          throw Object.assign(new Error(message), { status: answer.status, body: doc });
        }
        return doc;
      },
    );
  }

  function reportSize() {
    post("resize", { height: document.documentElement.scrollHeight });
  }
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(reportSize).observe(document.documentElement);
  }

  window.extplane = {
    PROTOCOL: PROTOCOL,
    ready: ready,
    callRoute: callRoute,
    callHandlerJson: callHandlerJson,
    context: function () { return context; },
  };
  ready();
})();
