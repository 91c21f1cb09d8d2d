// Boots the gateway's host page (/ext/{name}): reads what the gateway rendered into #extplane-host
// and mounts the extension's iframe through the bridge. `window.extplaneHost` exposes the bridge
// handle (stats) for diagnostics and tests.
import { mountExtension } from "./extplane-bridge.js";

const root = document.getElementById("extplane-host");
const { extension, contentHash, version, tenant } = root.dataset;
window.extplaneHost = mountExtension(root, {
  extension,
  contentHash,
  context: { version, tenant },
});
