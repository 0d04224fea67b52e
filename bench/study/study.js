// The participant's side of the study: consent, then one image at a time. The server keeps the
// clock that counts; the browser's own times are sent beside it.
"use strict";
(function () {
  const KEY = "captcha-bench-participant";
  const $ = (id) => document.getElementById(id);
  let participant = localStorage.getItem(KEY);
  let current = null;  // {token, image}
  let shownAt = null, shownPerf = null, busy = false;

  function show(section) {
    for (const id of ["consent", "study", "done"]) $(id).hidden = id !== section;
  }

  async function call(method, path, body) {
    const response = await fetch(path, {
      method, headers: body ? {"Content-Type": "application/json"} : {},
      body: body ? JSON.stringify(body) : undefined, cache: "no-store",
    });
    const data = await response.json().catch(() => ({}));
    return {status: response.status, data};
  }

  function render(view) {
    $("message").textContent = "";
    if (view.done) { show("done"); return; }
    show("study");
    $("progress").textContent = `Image ${view.position + 1} of ${view.total}`;
    current = {token: view.token, image: view.image};
    shownAt = shownPerf = null;
    $("answer").value = "";
    $("captcha").src = view.image;
  }

  $("captcha").addEventListener("load", () => {
    shownAt = Date.now();
    shownPerf = performance.now();
    busy = false;
    $("answer").focus();
  });

  $("captcha").addEventListener("error", () => {
    $("message").textContent = "The image did not load; asking the server again.";
    setTimeout(resume, 1000);
  });

  async function send(skipped) {
    if (busy || !current || shownPerf === null) return;
    const text = $("answer").value.trim();
    if (!skipped && !text) { $("message").textContent = "Type the characters you see, or press Skip."; return; }
    busy = true;
    const {status, data} = await call("POST", `/api/participants/${participant}/answers`, {
      token: current.token, answer: skipped ? "" : text, skipped,
      client_seconds: (performance.now() - shownPerf) / 1000, shown_at: shownAt, submitted_at: Date.now(),
    });
    if (status === 201) { render(data); return; }
    busy = false;
    $("message").textContent = data.error || `The server answered ${status}; try again.`;
    if (status === 404 || status === 409 || status === 410) resume();
  }

  async function resume() {
    const {status, data} = await call("GET", `/api/participants/${participant}/next`);
    if (status === 200) { render(data); return; }
    localStorage.removeItem(KEY);
    participant = null;
    show("consent");
  }

  $("agree").addEventListener("change", () => { $("start").disabled = !$("agree").checked; });
  $("start").addEventListener("click", async () => {
    const {status, data} = await call("POST", "/api/participants", {consent: $("agree").checked});
    if (status !== 201) { $("message").textContent = data.error || `The server answered ${status}.`; return; }
    participant = data.participant;
    localStorage.setItem(KEY, participant);
    render(data);
  });
  $("form").addEventListener("submit", (event) => { event.preventDefault(); send(false); });
  $("skip").addEventListener("click", () => send(true));

  if (participant) resume(); else show("consent");
})();
