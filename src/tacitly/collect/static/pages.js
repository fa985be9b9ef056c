// tacitly collect: the behaviour of each page, chosen by <body data-page="…">.
// Text from participants and generators only ever reaches the page through textContent.

import { api, ApiError, Recorder } from "./recorder.js";
import { configureWebgazer, runCalibration } from "./calibrate.js";

const SESSION_KEY = "tacitly.session";

function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    return session && typeof session.token === "string" ? session : null;
  } catch {
    return null;
  }
}

function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

const $ = (id) => document.getElementById(id);

function setState(state) {
  document.body.dataset.state = state;
}

function showError(element, error) {
  element.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  element.hidden = false;
}

function showProgress(done, total) {
  const progress = $("progress");
  const bar = $("progress-bar");
  if (total > 0 && done < total) {
    progress.textContent = `Task ${done + 1} of ${total}`;
    bar.style.width = `${(100 * done) / total}%`; // CSSOM, which the CSP allows
  } else if (total > 0) {
    progress.textContent = `${total} of ${total} done`;
    bar.style.width = "100%";
  }
}

/** Start WebGazer with `listener` if the participant turned the webcam on; false otherwise. */
async function startGaze(session, listener) {
  const webgazer = window.webgazer;
  if (!session.gaze || !webgazer) return false;
  try {
    webgazer.setGazeListener(listener);
    await configureWebgazer(webgazer).begin();
    webgazer.showVideoPreview?.(false);
    webgazer.showPredictionPoints?.(false);
    $("gaze-status").hidden = false;
    return true;
  } catch (error) {
    console.warn("tacitly: the webcam could not start; recording the mouse only", error);
    return false;
  }
}

// ------------------------------------------------------------------ consent

async function consentPage() {
  const form = $("consent-form");
  const error = $("consent-error");
  const participant = $("participant");
  const fromLink = new URLSearchParams(location.search).get("participant");
  if (fromLink) participant.value = fromLink.slice(0, 128);
  setState("ready");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = $("agree");
    button.disabled = true;
    try {
      const gaze = Boolean($("use-webcam")?.checked);
      const created = await api("/api/sessions", {
        method: "POST",
        body: {
          consent: true,
          participant: participant.value.trim() || null,
          screen_width: Math.round(screen.width) || null,
          screen_height: Math.round(screen.height) || null,
          user_agent: navigator.userAgent.slice(0, 512),
        },
      });
      saveSession({
        token: created.token,
        session_id: created.session_id,
        participant_id: created.participant_id,
        participant: participant.value.trim() || null,
        gaze: gaze && created.webgazer,
      });
      location.assign(gaze && created.webgazer && created.calibration ? "/calibrate" : "/task");
    } catch (failure) {
      showError(error, failure);
      button.disabled = false;
    }
  });
}

// ------------------------------------------------------------------ calibration

async function calibratePage() {
  const session = loadSession();
  if (!session) return location.replace("/");
  if (!session.gaze || !window.webgazer) return location.replace("/task");
  const config = await api("/api/config");
  const gaze = await runCalibration({
    webgazer: window.webgazer,
    settings: config.calibration,
    report: (precision, points) =>
      api("/api/calibration", { method: "POST", token: session.token, body: { precision, points } }),
    setState,
  });
  saveSession({ ...session, gaze });
  location.assign("/task");
}

// ------------------------------------------------------------------ tasks

async function taskPage() {
  const session = loadSession();
  if (!session) return location.replace("/");
  const config = await api("/api/config");
  const recorder = new Recorder({
    token: session.token,
    sessionId: session.session_id,
    pointerHz: config.recorder.pointer_hz,
    batchMs: config.recorder.batch_ms,
  });
  window.tacitlyRecorder = recorder;
  await startGaze(session, (prediction) => recorder.gaze(prediction));

  const compare = $("compare");
  const ask = $("ask");
  const loading = $("task-loading");
  const boxes = [$("response-1"), $("response-2")];
  let current = null;

  function show(view) {
    current = view;
    showProgress(view.position, view.total);
    loading.hidden = true;
    ask.hidden = true;
    compare.reset();
    $("question").textContent = view.question ?? "";
    boxes[0].textContent = view.response_1 ?? "";
    boxes[1].textContent = view.response_2 ?? "";
    $("submit").textContent = view.position + 1 >= view.total ? "Submit and finish" : "Submit and continue";
    $("submit").disabled = false;
    $("task-error").hidden = true;
    compare.hidden = false;
    window.scrollTo(0, 0);
    for (const box of boxes) box.scrollTop = 0;
    recorder.setTask(view.task_id, boxes);
    document.body.dataset.taskId = String(view.task_id);
    setState("compare");
  }

  function showAsk(view) {
    current = null;
    showProgress(view.position, view.total);
    loading.hidden = true;
    compare.hidden = true;
    $("ask-form").reset();
    $("ask-submit").disabled = false;
    ask.hidden = false;
    $("question-input").focus();
    setState("ask");
  }

  async function finish() {
    setState("finishing");
    compare.hidden = true;
    ask.hidden = true;
    loading.textContent = "Saving…";
    loading.hidden = false;
    await recorder.flush();
    recorder.stop();
    location.assign("/debrief");
  }

  async function next() {
    const view = await api("/api/tasks/next", { token: session.token });
    if (view.done) return finish();
    if (view.ask) return showAsk(view);
    show(view);
  }

  $("ask-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = $("question-input").value.trim();
    const error = $("ask-error");
    error.hidden = true;
    if (!question) return showError(error, "Please type a question first.");
    $("ask-submit").disabled = true;
    try {
      show(await api("/api/tasks", { method: "POST", token: session.token, body: { question } }));
    } catch (failure) {
      // 409: a retry of a question that did arrive; the server shows its open task.
      if (failure instanceof ApiError && failure.status === 409) return next();
      showError(error, failure);
      $("ask-submit").disabled = false;
    }
  });

  compare.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("task-error");
    const form = new FormData(compare);
    const likert1 = Number(form.get("likert_1"));
    const likert2 = Number(form.get("likert_2"));
    const preference = Number(form.get("preference"));
    const missing = [
      likert1 ? null : "rate answer A",
      likert2 ? null : "rate answer B",
      preference ? null : "choose the answer you prefer",
    ].filter(Boolean);
    if (missing.length) return showError(error, `Please ${missing.join(", ")}.`);
    error.hidden = true;
    $("submit").disabled = true;
    setState("submitting");
    try {
      recorder.record({ kind: "rating", value: `likert_1=${likert1};likert_2=${likert2};preference=${preference}` });
      await api(`/api/tasks/${current.task_id}/rating`, {
        method: "POST",
        token: session.token,
        body: { likert_1: likert1, likert_2: likert2, preference },
      });
      await next();
    } catch (failure) {
      showError(error, failure);
      $("submit").disabled = false;
      setState("compare");
    }
  });

  await next();
}

// ------------------------------------------------------------------ debrief

async function debriefPage() {
  const status = $("save-status");
  const session = loadSession();
  if (!session) {
    status.textContent = "Your answers are saved.";
    status.classList.add("notice-ok");
    return setState("saved");
  }
  const code = session.participant ?? session.participant_id;
  $("participant-code").textContent = code;
  $("participant-block").hidden = false;
  const recorder = new Recorder({ token: session.token, sessionId: session.session_id, listen: false });
  try {
    await recorder.flush();
    recorder.stop();
    await api("/api/finish", { method: "POST", token: session.token });
    status.textContent = "All your answers are saved.";
    status.classList.add("notice-ok");
    sessionStorage.removeItem(`tacitly.recorder.${session.session_id}`);
    setState("saved");
  } catch (failure) {
    status.textContent = `Your last answers could not be saved yet (${failure.message}). Please keep this page open for a minute and reload it.`;
    status.classList.add("notice-error");
    setState("error");
  }
}

// ------------------------------------------------------------------ dispatch

const PAGES = { consent: consentPage, calibrate: calibratePage, task: taskPage, debrief: debriefPage };

const run = PAGES[document.body.dataset.page];
if (run) {
  run().catch((error) => {
    console.error("tacitly:", error);
    const notice = document.createElement("p");
    notice.className = "notice notice-error";
    notice.setAttribute("role", "alert");
    notice.textContent = `Something went wrong: ${error.message}. Please reload the page.`;
    $("main").prepend(notice);
    setState("error");
  });
}
