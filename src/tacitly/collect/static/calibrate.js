// tacitly collect: webcam calibration with WebGazer.
// `points` targets, each clicked `clicks` times while the participant looks at it (WebGazer
// learns from every click), then a precision check: the participant looks at a centre target
// for CHECK_MS; precision is the share of gaze estimates within PRECISION_RADIUS of it. Below
// the study's threshold the participant may recalibrate, `attempts` times in all; after the
// last failed attempt the study continues with the mouse only.

const CHECK_MS = 3000;
const SETTLE_MS = 500; // the eyes need a moment to land on the target before estimates count
const MARGIN = 0.1; // targets keep this share of the window free at each edge

/** Radius around the target counted as "on it": 12% of the shorter window side, 60 px at least. */
export function precisionRadius(width, height) {
  return Math.max(60, 0.12 * Math.min(width, height));
}

/** Share of `samples` ({x, y}) within `radius` of `target` (0 when there are none). */
export function precision(samples, target, radius) {
  if (!samples.length) return 0;
  const near = samples.filter((s) => Math.hypot(s.x - target.x, s.y - target.y) <= radius);
  return near.length / samples.length;
}

/** Target positions as fractions of the window: a grid filled row by row. */
export function gridPositions(count) {
  if (count === 1) return [[0.5, 0.5]];
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const at = (i, n) => (n === 1 ? 0.5 : MARGIN + ((1 - 2 * MARGIN) * i) / (n - 1));
  const positions = [];
  for (let row = 0; row < rows; row += 1) {
    const inRow = Math.min(columns, count - row * columns);
    for (let column = 0; column < inRow; column += 1) positions.push([at(column, inRow), at(row, rows)]);
  }
  return positions;
}

/** WebGazer looks for its face-mesh files next to the page; they live beside it in vendor/. */
export function configureWebgazer(webgazer) {
  if (webgazer.params) webgazer.params.faceMeshSolutionPath = "/static/vendor/mediapipe/face_mesh";
  return webgazer;
}

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function show(section) {
  for (const id of ["calibration-intro", "calibration-stage", "calibration-result"]) $(id).hidden = id !== section;
}

/** Wait for one of the buttons to be clicked; resolves to its id. */
function choice(...ids) {
  return new Promise((resolve) => {
    const buttons = ids.map($).filter((button) => button && !button.hidden);
    const pick = (event) => {
      for (const button of buttons) button.removeEventListener("click", pick);
      resolve(event.currentTarget.id);
    };
    for (const button of buttons) button.addEventListener("click", pick);
    buttons[0]?.focus();
  });
}

/** Show the targets one grid at a time; resolves when every target got its clicks. */
function collectClicks(webgazer, settings) {
  const stage = $("calibration-stage");
  const hint = $("calibration-hint");
  const positions = gridPositions(settings.points);
  let remaining = positions.length;
  const times = settings.clicks === 1 ? "once" : `${settings.clicks} times`;
  const instruction = `Look at each red dot and click it ${times}.`;
  hint.textContent = instruction;
  return new Promise((resolve) => {
    positions.forEach(([fx, fy], index) => {
      const point = document.createElement("button");
      point.type = "button";
      point.className = "calibration-point";
      point.dataset.point = String(index);
      point.style.left = `${fx * 100}%`;
      point.style.top = `${fy * 100}%`;
      let left = settings.clicks;
      const label = () => {
        point.textContent = left > 0 ? String(left) : "✓";
        point.setAttribute("aria-label", `Target ${index + 1} of ${positions.length}: ${left} clicks left`);
      };
      label();
      point.addEventListener("click", (event) => {
        if (left <= 0) return;
        if (event.detail === 0 && typeof webgazer.recordScreenPosition === "function") {
          // Keyboard activation carries no pointer position: tell WebGazer where the target is.
          const box = point.getBoundingClientRect();
          webgazer.recordScreenPosition(box.left + box.width / 2, box.top + box.height / 2, "click");
        }
        left -= 1;
        label();
        if (left === 0) {
          point.classList.add("done");
          point.disabled = true;
          remaining -= 1;
          hint.textContent = `${instruction} ${positions.length - remaining} of ${positions.length} done.`;
          if (remaining === 0) {
            for (const done of stage.querySelectorAll("[data-point]")) done.remove();
            resolve();
          }
        }
      });
      stage.append(point);
    });
    stage.querySelector("[data-point]")?.focus();
  });
}

/** Collect gaze estimates while the participant looks at the centre target. */
async function measurePrecision(estimates) {
  const target = $("precision-target");
  const hint = $("calibration-hint");
  target.hidden = false;
  hint.textContent = "Keep looking at the blue dot…";
  await sleep(SETTLE_MS);
  estimates.length = 0;
  await sleep(CHECK_MS);
  const box = target.getBoundingClientRect(); // while shown: a hidden element has no box
  target.hidden = true;
  const centre = { x: box.left + box.width / 2, y: box.top + box.height / 2 };
  return precision(estimates.slice(), centre, precisionRadius(window.innerWidth, window.innerHeight));
}

/**
 * Run the calibration page. Resolves to true when gaze recording stays on.
 * @param {object} options
 * @param {object} options.webgazer the WebGazer global
 * @param {{points: number, clicks: number, threshold: number, attempts: number}} options.settings
 * @param {(precision: number, points: number) => Promise<{passed: boolean}>} options.report
 * @param {(state: string) => void} options.setState
 */
export async function runCalibration({ webgazer, settings, report, setState }) {
  const estimates = [];
  show("calibration-intro");
  setState("intro");
  if ((await choice("calibration-start", "calibration-skip")) === "calibration-skip") {
    webgazer.end?.();
    return false;
  }
  try {
    webgazer.setGazeListener((prediction) => {
      if (prediction && Number.isFinite(prediction.x)) estimates.push({ x: prediction.x, y: prediction.y });
    });
    webgazer.saveDataAcrossSessions?.(true);
    await configureWebgazer(webgazer).begin();
  } catch (error) {
    const message = $("calibration-message");
    message.textContent = `The webcam could not start (${error?.message ?? error}). The study continues with the mouse only.`;
    message.classList.add("notice-warn");
    message.hidden = false;
    $("calibration-start").hidden = true;
    $("calibration-skip").textContent = "Continue";
    await choice("calibration-skip");
    return false;
  }
  for (let attempt = 1; attempt <= settings.attempts; attempt += 1) {
    webgazer.showVideoPreview?.(false);
    webgazer.showPredictionPoints?.(false);
    if (attempt > 1) webgazer.clearData?.();
    show("calibration-stage");
    setState("points");
    await collectClicks(webgazer, settings);
    setState("checking");
    const measured = await measurePrecision(estimates);
    const { passed } = await report(measured, settings.points);
    const message = $("result-message");
    $("precision-value").textContent = `${Math.round(measured * 100)}%`;
    message.classList.remove("notice-ok", "notice-warn");
    const again = $("calibration-again");
    const go = $("calibration-continue");
    if (passed) {
      message.textContent = "Good: the webcam follows your gaze well enough.";
      message.classList.add("notice-ok");
      again.hidden = true;
      go.textContent = "Continue to the study";
    } else if (attempt < settings.attempts) {
      message.textContent = `Below the needed precision. Try again: keep your head still and your face well lit (attempt ${attempt} of ${settings.attempts}).`;
      message.classList.add("notice-warn");
      again.hidden = false;
      go.hidden = true;
    } else {
      message.textContent = "Still below the needed precision, so the webcam stays off: the study continues with the mouse only.";
      message.classList.add("notice-warn");
      again.hidden = true;
      go.textContent = "Continue without webcam";
    }
    go.hidden = !passed && attempt < settings.attempts;
    show("calibration-result");
    setState(passed ? "passed" : attempt < settings.attempts ? "failed" : "given-up");
    if (passed) {
      await choice("calibration-continue");
      webgazer.clearGazeListener?.();
      return true;
    }
    if (attempt === settings.attempts) {
      await choice("calibration-continue");
      webgazer.end?.();
      return false;
    }
    await choice("calibration-again");
  }
  return false;
}
