// Playground: dispatch a local-transport job for the chosen agent, wait for its session,
// then talk to it by text ("message" operator action) and watch the replies stream in.
(function () {
  "use strict";
  const root = document.getElementById("playground-root");
  const $ = (id) => document.getElementById(id);
  const view = new SessionView(root);
  const state = { jobId: null, sessionId: null, stream: null };
  window.__playground = state;

  function status(text, warn) { $("pg-status").textContent = text; $("pg-status").className = warn ? "warn" : "muted"; }
  function chat(enabled) { $("pg-text").disabled = !enabled; $("pg-send-btn").disabled = !enabled; $("pg-end-btn").disabled = !enabled; if (enabled) $("pg-text").focus(); }

  async function waitForSession() {
    for (let i = 0; i < 240; i++) {
      const res = await fetch(root.dataset.jobUrl.replace("JOB", state.jobId), { credentials: "same-origin" });
      const job = await res.json();
      if (job.session_id) return job;
      if (["failed", "cancelled", "completed"].includes(job.status)) throw new Error("job " + job.status + (job.failure_reason ? ": " + job.failure_reason : ""));
      status("Job " + state.jobId + " is " + job.status + "… waiting for a worker");
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error("no worker picked the job up in 2 minutes");
  }

  $("pg-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.stream) state.stream.stop();
    view.reset();
    chat(false);
    $("pg-start-btn").disabled = true;
    status("Dispatching…");
    try {
      const res = await Dash.postForm(root.dataset.startUrl, { agent: $("pg-agent").value });
      if (!res.ok) throw new Error(res.json.error || res.status);
      state.jobId = res.json.job_id;
      const job = await waitForSession();
      state.sessionId = job.session_id;
      const open = $("pg-open");
      open.href = root.dataset.sessionUrl.replace("SESSION", state.sessionId);
      open.hidden = false;
      status("Session " + state.sessionId + " · type below");
      state.stream = new Dash.SessionStream(state.sessionId, { onEvents: (events) => view.apply(events) }).start();
      view.onEnded = () => { chat(false); status("Session ended."); };
      chat(true);
    } catch (e) {
      status("✗ " + e.message, true);
    } finally {
      $("pg-start-btn").disabled = false;
    }
  });

  async function act(command, text) {
    const url = root.dataset.actionsUrl.replace("SESSION", state.sessionId).replace("COMMAND", command);
    const res = await Dash.postForm(url, text === undefined ? {} : { text });
    if (!res.ok) status("✗ " + (res.json.error || res.status), true);
    return res.ok;
  }
  $("pg-send").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("pg-text");
    if (!input.value.trim() || !state.sessionId) return;
    if (await act("message", input.value)) input.value = "";
  });
  $("pg-end-btn").addEventListener("click", () => act("end"));
})();
