// extplane host bridge (ES module, no build step). Served by the gateway at /sdk/js/extplane-bridge.js.
//
// The host page embeds an extension's UI in an iframe sandboxed with `allow-scripts` only (never
// `allow-same-origin`): the UI runs in an opaque origin, so its messages arrive with origin "null"
// and it can reach its handler only by asking this bridge. Messages in both directions are the
// versioned envelope {extplane: 1, type, request_id?, payload}. See docs/ui.md.

export const PROTOCOL = 1;
export const MIN_HEIGHT = 100;
export const MAX_HEIGHT = 4000;
const HASH_RE = /^sha256:[0-9a-f]{64}$/i;
const NAME_RE = /^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$/;
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);
const MAX_ROUTE = 2048;

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function fromBase64(b64) {
  const text = atob(b64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** The iframe URL of an extension UI: `{base}/ext-ui/{ext}/{hash}/index.html?parentOrigin=..&path=..`. */
export function buildExtUiSrc(extension, contentHash, path = "/", options = {}) {
  if (!NAME_RE.test(extension)) throw new Error(`invalid extension name: ${extension}`);
  if (!HASH_RE.test(contentHash)) throw new Error(`invalid content hash: ${contentHash}`);
  const base = (options.base || "").replace(/\/+$/, "");
  const url = new URL(
    `${base}/ext-ui/${extension}/${contentHash.toLowerCase()}/index.html`,
    window.location.href,
  );
  url.searchParams.set("parentOrigin", options.parentOrigin || window.location.origin);
  if (path && path !== "/") url.searchParams.set("path", path);
  return url.toString();
}

/** A route the UI may call: "/..." without "..", "#" or control characters. */
export function validRoute(route) {
  return (
    typeof route === "string" &&
    route.startsWith("/") &&
    !route.startsWith("//") &&
    route.length <= MAX_ROUTE &&
    !/[#\\\u0000-\u001f\u007f]/.test(route) &&
    !route.split("?")[0].split("/").some((s) => s === "." || s === ".." || /^%2e/i.test(s))
  );
}

/**
 * Wire the bridge to an iframe. Returns {stats, destroy}. `stats.ignored` counts messages refused
 * (wrong source, wrong origin, wrong envelope), `stats.relayed` apiproxy calls made.
 */
export function bootstrapIframe(options) {
  const { iframe, extension, contentHash } = options;
  if (!HASH_RE.test(contentHash)) throw new Error(`invalid content hash: ${contentHash}`);
  if (!iframe.hasAttribute("sandbox")) iframe.setAttribute("sandbox", "allow-scripts");
  if (iframe.sandbox.contains("allow-same-origin")) {
    throw new Error("refusing an extension iframe with allow-same-origin");
  }
  // A sandboxed document without allow-same-origin has an opaque origin: its messages say "null".
  const expectedOrigin = "null";
  const proxyBase = (options.proxyBase || "/api/ext-proxy").replace(/\/+$/, "");
  const doFetch = options.fetch || window.fetch.bind(window);
  const context = options.context || {};
  const stats = { ignored: 0, relayed: 0, bootstraps: 0, height: null };

  function post(type, payload, requestId) {
    const target = iframe.contentWindow;
    if (!target) return;
    const message = { extplane: PROTOCOL, type, payload };
    if (requestId !== undefined) message.request_id = requestId;
    // An opaque origin cannot be named as a target; the source check on every request is the guard.
    target.postMessage(message, "*");
  }

  function bootstrap() {
    stats.bootstraps += 1;
    post("bootstrap", { extension, content_hash: contentHash.toLowerCase(), ...context });
  }

  async function relay(requestId, payload) {
    const route = payload && payload.route;
    const method = String((payload && payload.method) || "POST").toUpperCase();
    if (!validRoute(route) || !METHODS.has(method)) {
      post("apiproxy_response", { status: 400, error: "invalid route or method" }, requestId);
      return;
    }
    const init = {
      method,
      credentials: "same-origin",
      headers: { "x-extplane-ui": "1" },
      redirect: "error",
    };
    if (method !== "GET" && typeof payload.body === "string") {
      init.body = fromBase64(payload.body);
      init.headers["content-type"] = payload.content_type || "application/octet-stream";
    }
    stats.relayed += 1;
    try {
      const response = await doFetch(`${proxyBase}/${extension}${route}`, init);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const answer = {
        status: response.status,
        content_type: response.headers.get("content-type") || "",
        body: toBase64(bytes),
      };
      if (!response.ok) {
        answer.error = `Proxy error ${response.status}: ${new TextDecoder().decode(bytes).slice(0, 500)}`;
      }
      post("apiproxy_response", answer, requestId);
    } catch (err) {
      post("apiproxy_response", { status: 0, error: `Proxy error: ${err && err.message}` }, requestId);
    }
  }

  function onMessage(event) {
    const data = event.data;
    if (
      event.source !== iframe.contentWindow ||
      event.origin !== expectedOrigin ||
      !data ||
      typeof data !== "object" ||
      data.extplane !== PROTOCOL ||
      typeof data.type !== "string"
    ) {
      stats.ignored += 1;
      return;
    }
    if (data.type === "ready") {
      bootstrap();
    } else if (data.type === "resize") {
      const height = Number(data.payload && data.payload.height);
      if (Number.isFinite(height)) {
        stats.height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.round(height)));
        iframe.style.height = `${stats.height}px`;
      }
    } else if (data.type === "apiproxy") {
      relay(data.request_id, data.payload);
    } else {
      stats.ignored += 1;
    }
  }

  window.addEventListener("message", onMessage);
  iframe.addEventListener("load", bootstrap);
  return {
    stats,
    destroy() {
      window.removeEventListener("message", onMessage);
      iframe.removeEventListener("load", bootstrap);
    },
  };
}

/** Create the sandboxed iframe for an extension inside `container` and wire the bridge. */
export function mountExtension(container, { extension, contentHash, path = "/", context = {} }) {
  const iframe = document.createElement("iframe");
  iframe.setAttribute("sandbox", "allow-scripts");
  iframe.setAttribute("referrerpolicy", "no-referrer");
  iframe.title = `${extension} UI`;
  const bridge = bootstrapIframe({ iframe, extension, contentHash, context });
  iframe.src = buildExtUiSrc(extension, contentHash, path);
  container.appendChild(iframe);
  return { iframe, ...bridge };
}
