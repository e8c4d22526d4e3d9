// Live updates: the server sends the page's fragment (server-rendered HTML) whenever it
// changes; it replaces <main id="live">. No other script, no framework.
(function () {
  const main = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!main || !window.EventSource) return;
  // A <details> the reader opened stays open across updates (found again by its row's id).
  const rowOf = (d) => d.closest("[data-dead-letter],[data-worker]")?.dataset;
  const key = (row) => row && (row.deadLetter ?? row.worker);
  const events = new EventSource(main.dataset.events);
  events.addEventListener("open", () => { status.textContent = "live"; });
  events.addEventListener("error", () => { status.textContent = "reconnecting…"; });
  events.addEventListener("update", (e) => {
    const open = new Set([...main.querySelectorAll("details[open]")].map((d) => key(rowOf(d))));
    main.innerHTML = e.data;
    main.querySelectorAll("details").forEach((d) => {
      if (open.has(key(rowOf(d)))) d.open = true;
    });
    status.textContent = "live, updated " + new Date().toLocaleTimeString();
  });
})();
