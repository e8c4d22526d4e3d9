// Live updates: the server sends the page's fragment (server-rendered HTML) whenever it
// changes; it replaces <main id="live">. No other script, no framework.
(function () {
  const main = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!main || !window.EventSource) return;
  const events = new EventSource(main.dataset.events);
  events.addEventListener("open", () => { status.textContent = "live"; });
  events.addEventListener("error", () => { status.textContent = "reconnecting…"; });
  events.addEventListener("update", (e) => {
    // Keep open <details> open across updates.
    const open = new Set([...main.querySelectorAll("details[open]")].map((d) => d.closest("[data-dead-letter],[data-worker]")?.getAttribute("data-dead-letter") ?? d.closest("[data-worker]")?.getAttribute("data-worker")));
    main.innerHTML = e.data;
    main.querySelectorAll("details").forEach((d) => {
      const row = d.closest("[data-dead-letter]")?.getAttribute("data-dead-letter") ?? d.closest("[data-worker]")?.getAttribute("data-worker");
      if (row && open.has(row)) d.open = true;
    });
    status.textContent = "live, updated " + new Date().toLocaleTimeString();
  });
})();
