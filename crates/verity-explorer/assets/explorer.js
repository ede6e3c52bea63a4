// Verity explorer: live updates and the verify button. Plain JavaScript, no build step.
"use strict";

// Re-render the page when a job changes (the API's event stream), at most once a second: the
// server renders, this only swaps the page's <main> for the fresh one.
function followEvents() {
  if (!window.EventSource) return;
  const live = document.getElementById("live");
  const source = new EventSource("/v1/events");
  let pending = null;
  source.onopen = () => live && live.classList.add("on");
  source.onerror = () => live && live.classList.remove("on");
  // A job's page changes only with its job; other pages with any.
  const only = document.getElementById("page")?.dataset.job;
  source.addEventListener("job", (event) => {
    if (pending) return;
    if (only) {
      try {
        if (JSON.parse(event.data).job_id !== only) return;
      } catch (_) { return; }
    }
    pending = setTimeout(refresh, 1000);
  });
  async function refresh() {
    pending = null;
    // Leave the page alone while someone is reading an open verification result.
    if (document.getElementById("verify-result")?.textContent) return;
    try {
      const response = await fetch(location.href, { headers: { accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const main = fresh.getElementById("page");
      if (main) {
        document.getElementById("page").replaceWith(main);
        wireVerify();
      }
    } catch (_) { /* the next event retries */ }
  }
}

// The node checks the job's proof with its own verifier (POST /v1/jobs/{id}/verify).
async function verify(button) {
  const out = document.getElementById("verify-result");
  out.className = "";
  out.textContent = "Verifying…";
  try {
    const response = await fetch(`/v1/jobs/${button.dataset.job}/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = await response.json();
    if (!response.ok) {
      out.className = "invalid";
      out.textContent = `Could not verify: ${body.error}`;
    } else {
      out.className = body.valid ? "valid" : "invalid";
      out.textContent = `${body.valid ? "✓ Proof verified" : "✗ Proof rejected"}: ${body.message} (${(body.verify_us / 1000).toFixed(1)} ms)`;
    }
  } catch (e) {
    out.className = "invalid";
    out.textContent = `Could not reach the node: ${e}`;
  }
}

function wireVerify() {
  const button = document.getElementById("verify-button");
  if (!button) return;
  button.addEventListener("click", () => verify(button));
  // A link ending in #verify verifies on open (shareable "check this result" links).
  if (location.hash === "#verify") verify(button);
}

document.addEventListener("DOMContentLoaded", () => {
  wireVerify();
  // A #verify link pins the page on its verification result: no live re-rendering.
  if (location.hash !== "#verify") followEvents();
});
