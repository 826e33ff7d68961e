// Keeps "My balance" live: polls a JSON view of it with If-None-Match (304 while unchanged)
// and updates the figures in place. No framework, no build step; the page works without it.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  let tag = null;
  const show = (id, text) => { const el = document.getElementById(id); if (el && el.textContent !== text) el.textContent = text; };
  async function poll() {
    try {
      const headers = tag ? { "If-None-Match": tag } : {};
      const answer = await fetch(live.dataset.live, { headers, credentials: "same-origin" });
      if (answer.status === 200) {
        tag = answer.headers.get("ETag");
        const b = await answer.json();
        show("balance", String(Number(b.balance.toPrecision(6))));
        show("rank", String(b.rank));
        show("contributions", String(b.contributions));
        show("shapley", b.shapley ? b.shapley.value.toFixed(4) + " ± " + b.shapley.std_error.toFixed(4) : "not yet");
      }
    } catch (e) { /* the next poll tries again */ }
    setTimeout(poll, 1500);
  }
  setTimeout(poll, 1500);
})();
