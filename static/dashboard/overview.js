// Overview: re-fetch the panels when the fleet changes (debounced), and every 5 s for
// heartbeat ages.
(function () {
  "use strict";
  const panels = document.getElementById("panels");
  let pending = null, inflight = false;
  window.__overview = { refreshes: 0, fleetEvents: 0 };

  async function refresh() {
    pending = null;
    if (inflight) { schedule(300); return; }
    inflight = true;
    try {
      const res = await fetch(panels.dataset.src, { credentials: "same-origin" });
      if (res.ok) { panels.innerHTML = await res.text(); window.__overview.refreshes++; }
    } finally { inflight = false; }
  }
  function schedule(delay) { if (!pending) pending = setTimeout(refresh, delay); }

  const stream = new Dash.Stream(() => "/ws/fleet/", {
    onFrame: (f) => { if (f.type === "fleet") { window.__overview.fleetEvents++; schedule(250); } },
    onOpen: () => schedule(0),  // catch up on anything missed while disconnected
  });
  stream.connect();
  setInterval(() => schedule(0), 5000);
})();
