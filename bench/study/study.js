// The participant's side of the study: consent, then one image at a time. The server keeps the
// clock that counts; the browser's own times are sent beside it. Nothing typed is lost when the
// server cannot be reached: the answer stays in the box and is sent again.
"use strict";
(function () {
  const KEY = "captcha-bench-participant";
  const RETRY_MS = 5000;
  const $ = (id) => document.getElementById(id);
  let participant = localStorage.getItem(KEY);
  let current = null;  // {token, image}
  let shownAt = null, shownPerf = null, busy = false, imageFailed = 0, retry = null;

  function show(section) {
    for (const id of ["consent", "study", "done"]) $(id).hidden = id !== section;
  }

  function say(text) { $("message").textContent = text; }

  function later(action) {  // one pending retry at a time
    clearTimeout(retry);
    retry = setTimeout(action, RETRY_MS);
  }

  async function call(method, path, body) {
    try {
      const response = await fetch(path, {
        method, headers: body ? {"Content-Type": "application/json"} : {},
        body: body ? JSON.stringify(body) : undefined, cache: "no-store",
      });
      const data = await response.json().catch(() => ({}));
      return {status: response.status, data};
    } catch (error) {
      return {status: 0, data: {}};  // the server could not be reached
    }
  }

  function render(view) {
    clearTimeout(retry);
    say("");
    if (view.done) {
      show("done");
      const skipped = view.skipped || 0, answered = view.total - skipped;
      $("summary").textContent = skipped
        ? `You answered ${answered} of ${view.total} images and skipped ${skipped}. You can close this page.`
        : `You answered all ${view.total} images. You can close this page.`;
      $("code").hidden = !view.code;
      $("code-text").textContent = view.code || "";
      return;
    }
    show("study");
    $("progress").textContent = `Image ${view.position + 1} of ${view.total}`;
    current = {token: view.token, image: view.image};
    shownAt = shownPerf = null;
    imageFailed = 0;
    busy = false;
    $("answer").value = "";
    $("captcha").src = view.image;
  }

  $("captcha").addEventListener("load", () => {
    shownAt = Date.now();
    shownPerf = performance.now();
    say("");
    $("answer").focus();
  });

  $("captcha").addEventListener("error", () => {
    imageFailed += 1;
    if (imageFailed === 1 && current) {  // one more try before asking the participant
      say("The image did not load; trying again.");
      setTimeout(() => { if (current) $("captcha").src = `${current.image}?again=1`; }, 1000);
      return;
    }
    say("The image did not load. Press Skip to go on; it is recorded as an image that did not load.");
  });

  async function send(skipped) {
    if (busy || !current) return;
    const failed = imageFailed > 1 && shownPerf === null;
    if (shownPerf === null && !(skipped && failed)) return;  // nothing shown yet
    const text = $("answer").value.trim();
    if (!skipped && !text) { say("Type the characters you see, or press Skip."); return; }
    busy = true;
    const body = {token: current.token, answer: skipped ? "" : text, skipped, submitted_at: Date.now()};
    if (shownPerf !== null) Object.assign(body, {client_seconds: (performance.now() - shownPerf) / 1000, shown_at: shownAt});
    if (skipped && failed) body.reason = "the image did not load";
    const {status, data} = await call("POST", `/api/participants/${participant}/answers`, body);
    if (status === 201) { render(data); return; }
    busy = false;
    if (status === 0) {
      say("Cannot reach the study server. Your answer is kept; sending it again in a few seconds (or press Submit).");
      later(() => send(skipped));
      return;
    }
    say(data.error || `The server answered ${status}; try again.`);
    if (status === 404 || status === 409 || status === 410) resume();
  }

  async function resume() {
    const {status, data} = await call("GET", `/api/participants/${participant}/next`);
    if (status === 200) { render(data); return; }
    if (status === 404) {  // the server does not know this participant: start again
      localStorage.removeItem(KEY);
      participant = null;
      show("consent");
      return;
    }
    say(status === 0 ? "Cannot reach the study server; trying again in a few seconds."
                     : (data.error || `The server answered ${status}; trying again in a few seconds.`));
    later(resume);
  }

  $("agree").addEventListener("change", () => { $("start").disabled = !$("agree").checked; });
  $("start").addEventListener("click", async () => {
    $("start").disabled = true;
    const {status, data} = await call("POST", "/api/participants", {consent: $("agree").checked});
    $("start").disabled = !$("agree").checked;
    if (status !== 201) {
      say(status === 0 ? "Cannot reach the study server; press Start again in a moment."
                       : (data.error || `The server answered ${status}.`));
      return;
    }
    participant = data.participant;
    localStorage.setItem(KEY, participant);
    render(data);
  });
  $("form").addEventListener("submit", (event) => { event.preventDefault(); send(false); });
  $("skip").addEventListener("click", () => send(true));

  if (participant) resume(); else show("consent");
})();
