// tacitly collect: the recorder. Records pointer, scroll, click, focus, visibility, resize and
// gaze samples (the Sample schema of tacitly/collect/protocol.py) and uploads them in numbered
// batches that the server stores exactly once.
//
// Upload protocol
// - Samples are cut into batches every `batch_ms` (and whenever the task changes, so that a
//   batch carries one task_id). A batch's content and number never change once cut; the queue
//   of unacknowledged batches and the next number are kept in sessionStorage, so a reload
//   resends them under the same numbers and the server answers "duplicate" for stored ones.
// - Only the oldest batch is in flight. Network errors, 5xx and 429 retry that same batch with
//   exponential backoff. A 409 carries the server's next_seq: everything below it is stored
//   and the queued batches are not, so they are renumbered from it (this only happens when the
//   client lost its state). Other 4xx answers mean the server will never take the batch; it is
//   dropped with a console warning and the next one closes the gap through a 409.
// - On pagehide / visibilitychange→hidden every queued batch is also sent with
//   navigator.sendBeacon (text/plain, token in the query). They stay queued: a later page
//   resends them and a beacon that did arrive makes that a harmless duplicate.
//
// Word boxes
// When a task's answers are shown, and again after every change of their layout (a resize,
// fonts arriving), each answer's word boxes are measured with Range.getClientRects() on each
// word's text range and queued as a layout (the Layout schema) for
// POST /api/tasks/{task_id}/layout, only when they differ from the last layout queued for that
// task and answer. Boxes are relative to the origin of x_rel/y_rel (the answer box's top-left
// corner with its text scrolled to the top); a word wrapped over two lines gives two boxes, each
// with the characters on its line. The layout queue is kept, retried and beaconed like the
// batches (one in flight; 429, 5xx and network errors retry; other 4xx drop it with a warning);
// the server stores a repeat of its latest layout once.
//
// Characters under a point
// `char_index` is a character (code point, as Python counts) offset into the response's full
// text: the caret position at the point
// (document.caretPositionFromPoint, or caretRangeFromPoint in older browsers), checked against
// the rectangles of the two characters around the caret. When neither API gives a position
// inside the response (a covering element, an unsupported browser, a point in the padding),
// the word boxes captured after render with Range.getClientRects() locate the word, and that
// word's character boxes the character.

const MAX_SAMPLES_PER_BATCH = 200; // keeps every beacon well under the browsers' 64 kB quota
const WINDOW = 10; // characters each side of the one under the point, as in IFllm
const MAX_BACKOFF_MS = 30000;
const MAX_WORD_TEXT = 100; // characters of a word box's text (protocol.MAX_WORD_TEXT)
const BEACON_BYTES = 60000; // a beacon body larger than this would not fit the browsers' quota

/** Round to 0.1 px: finer than any screen, and shorter JSON. */
function px(value) {
  return Number.isFinite(value) ? Math.round(value * 10) / 10 : null;
}

function short(text, limit = 200) {
  return text.length > limit ? text.slice(0, limit) : text;
}

/** A short, stable name for a clicked element (its id, or name=value, or tag). */
function describe(target) {
  if (!(target instanceof Element)) return null;
  const element = target.closest("[id], input, button, a, label") ?? target;
  if (element instanceof HTMLLabelElement && element.htmlFor) return short(`label:${element.htmlFor}`);
  if (element.id) return short(element.id);
  if (element instanceof HTMLInputElement) return short(`${element.name}=${element.value}`);
  return element.tagName.toLowerCase();
}

/** The retry delay after `attempt` failures: exponential, jittered, at least the server's hint. */
function backoffDelay(attempt, hintMs) {
  const base = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(attempt, 8));
  return Math.max(hintMs || 0, base * (0.75 + Math.random() * 0.5));
}

/** A short fingerprint of a string (FNV-1a, 32 bits, and its length). */
function fingerprint(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return `${(hash >>> 0).toString(16)}:${text.length}`;
}

function contains(rect, x, y, slack = 0) {
  return (
    x >= rect.left - slack && x <= rect.right + slack && y >= rect.top - slack && y <= rect.bottom + slack
  );
}

/** Where in `element`'s text a DOM boundary point lies, or null when outside it. */
function textOffset(element, node, offset) {
  if (!node || !element.contains(node)) return null;
  const range = document.createRange();
  range.setStart(element, 0);
  try {
    range.setEnd(node, offset);
  } catch {
    return null;
  }
  return range.toString().length;
}

/** The caret (a boundary between characters) at a viewport point, as [node, offset]. */
function caretAt(x, y) {
  if (typeof document.caretPositionFromPoint === "function") {
    const position = document.caretPositionFromPoint(x, y);
    if (position) return [position.offsetNode, position.offset];
  }
  if (typeof document.caretRangeFromPoint === "function") {
    const range = document.caretRangeFromPoint(x, y);
    if (range) return [range.startContainer, range.startOffset];
  }
  return null;
}

/** One text node's [node, offset] for the index-th character of `element`'s text. */
function locate(element, index) {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  let seen = 0;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const length = node.data.length;
    if (index < seen + length) return [node, index - seen];
    seen += length;
  }
  return null;
}

/** The viewport rectangles of characters [start, end) of `element`'s text. */
function charRects(element, start, end) {
  const from = locate(element, start);
  const to = locate(element, end - 1);
  if (!from || !to) return [];
  const range = document.createRange();
  range.setStart(from[0], from[1]);
  range.setEnd(to[0], to[1] + 1);
  return Array.from(range.getClientRects());
}

/**
 * Upload boxes of one word: one per client rect (a wrapped word has one per line), each with the
 * characters whose centre lies in it. `rects` are viewport rects; `origin` the content origin.
 */
function wordBoxes(element, text, word, rects, origin) {
  const relative = (rect) => ({
    left: px(rect.left - origin.x),
    top: px(rect.top - origin.y),
    width: px(rect.width),
    height: px(rect.height),
  });
  if (rects.length === 1) return [{ start: word.start, end: word.end, ...relative(rects[0]) }];
  const parts = [];
  for (let index = word.start; index < word.end; index += 1) {
    const char = charRects(element, index, index + 1)[0];
    const line = char
      ? rects.findIndex((rect) => contains(rect, char.left + char.width / 2, char.top + char.height / 2, 0.5))
      : -1;
    const last = parts[parts.length - 1];
    // The second half of a surrogate pair (an emoji) stays with its first half.
    const trailing = /[\uDC00-\uDFFF]/.test(text[index]);
    if (last && (line < 0 || line === last.line || trailing)) last.end = index + 1;
    else parts.push({ line: Math.max(line, 0), start: index, end: index + 1 });
  }
  return parts.map((part) => ({ start: part.start, end: part.end, ...relative(rects[part.line]) }));
}

/** For each UTF-16 offset into `text` (0 to its length), the code points before it. */
function codePointOffsets(text) {
  const points = new Uint32Array(text.length + 1);
  let count = 0;
  for (let i = 0; i < text.length; i += 1) {
    points[i] = count;
    // A low surrogate right after a high one continues the character that one began.
    const low = text.charCodeAt(i) >= 0xdc00 && text.charCodeAt(i) <= 0xdfff;
    const afterHigh = i > 0 && text.charCodeAt(i - 1) >= 0xd800 && text.charCodeAt(i - 1) <= 0xdbff;
    if (!(low && afterHigh)) count += 1;
  }
  points[text.length] = count;
  return points;
}

/** A response box: its element, full text, and word boxes in content coordinates. */
class ResponseText {
  constructor(element) {
    this.element = element;
    this.text = element.textContent ?? "";
    // JavaScript counts UTF-16 units, Python (the server, the export) counts code points: the
    // two differ only after a character outside the BMP (an emoji), so only then is this kept.
    this.chars = /[\uD800-\uDFFF]/.test(this.text) ? Array.from(this.text) : null;
    this.points = this.chars ? codePointOffsets(this.text) : null;
    this.words = [];
    this.measure();
  }

  /** The code-point index of a UTF-16 offset into the text. */
  codePoint(offset) {
    return this.points ? this.points[offset] : offset;
  }

  /**
   * Word boxes relative to the box's content origin: unchanged by scrolling either way. Also
   * the boxes to upload (`this.boxes`, the WordBox schema: code-point offsets, 0.1 px).
   */
  measure() {
    const origin = this.origin();
    this.words = [];
    this.boxes = [];
    let index = 0;
    for (const match of this.text.matchAll(/\S+/g)) {
      const start = match.index;
      const end = start + match[0].length;
      const client = charRects(this.element, start, end).filter((rect) => rect.width > 0 && rect.height > 0);
      const rects = client.map((rect) => ({
        left: rect.left - origin.x,
        right: rect.right - origin.x,
        top: rect.top - origin.y,
        bottom: rect.bottom - origin.y,
      }));
      this.words.push({ start, end, rects });
      for (const part of client.length ? wordBoxes(this.element, this.text, { start, end }, client, origin) : []) {
        const text = this.text.slice(part.start, part.end);
        this.boxes.push({
          index,
          text: this.chars ? Array.from(text).slice(0, MAX_WORD_TEXT).join("") : text.slice(0, MAX_WORD_TEXT),
          char_start: this.codePoint(part.start),
          char_end: this.codePoint(part.end),
          left: part.left,
          top: part.top,
          width: part.width,
          height: part.height,
        });
      }
      index += 1;
    }
    const frame = this.element.getBoundingClientRect();
    this.size = { width: px(frame.width), height: px(frame.height) };
  }

  /** The viewport position of the content's (0, 0). */
  origin() {
    const rect = this.element.getBoundingClientRect();
    return { x: rect.left - this.element.scrollLeft, y: rect.top - this.element.scrollTop };
  }

  /** The character under a viewport point, or null. */
  charAt(x, y) {
    const caret = caretAt(x, y);
    const offset = caret ? textOffset(this.element, caret[0], caret[1]) : null;
    if (offset !== null) {
      // The caret is the boundary nearest the point: the character is the one after or before it.
      for (const index of [offset, offset - 1]) {
        if (index < 0 || index >= this.text.length) continue;
        if (charRects(this.element, index, index + 1).some((rect) => contains(rect, x, y, 0.5))) {
          return index;
        }
      }
    }
    return this.charFromWordBoxes(x, y);
  }

  charFromWordBoxes(x, y) {
    const origin = this.origin();
    const cx = x - origin.x;
    const cy = y - origin.y;
    const word = this.words.find((candidate) => candidate.rects.some((rect) => contains(rect, cx, cy, 1)));
    if (!word) return null;
    for (let index = word.start; index < word.end; index += 1) {
      if (charRects(this.element, index, index + 1).some((rect) => contains(rect, x, y, 1))) return index;
    }
    return null;
  }

  /** The ±WINDOW characters around code point `index`. */
  window(index) {
    const start = Math.max(0, index - WINDOW);
    const end = index + WINDOW + 1;
    return this.chars ? this.chars.slice(start, end).join("") : this.text.slice(start, end);
  }
}

export class Recorder {
  /**
   * @param {object} options
   * @param {string} options.token session token
   * @param {string} options.sessionId names the sessionStorage entry of this session's queue
   * @param {number} [options.pointerHz] pointer and scroll samples per second, at most
   * @param {number} [options.batchMs] upload interval
   * @param {boolean} [options.listen] record page events (false: only upload what is queued)
   */
  constructor({ token, sessionId, pointerHz = 60, batchMs = 1000, listen = true }) {
    this.token = token;
    this.key = `tacitly.recorder.${sessionId}`;
    this.minInterval = 1000 / pointerHz;
    this.batchMs = batchMs;
    this.taskId = null;
    this.responses = [];
    this.buffer = [];
    this.sending = false;
    this.retryTimer = null;
    this.attempt = 0;
    this.waiters = [];
    this.failure = null;
    this.lastPointer = -Infinity;
    this.lastLabel = null;
    this.lastScroll = new Map();
    this.stats = { acked: 0, duplicates: 0, dropped: 0, beacons: 0, layouts: 0, layoutsDropped: 0 };
    const saved = this.load();
    this.nextSeq = saved.nextSeq;
    this.queue = saved.queue;
    this.layouts = saved.layouts; // [{task_id, layout}], oldest first
    this.shown = saved.shown; // "task:response" -> signature of the last layout queued
    this.layoutSending = false;
    this.layoutTimer = null;
    this.layoutAttempt = 0;
    this.handlers = [];
    if (listen) this.listen();
    this.on(window, "pagehide", () => this.beacon());
    this.on(document, "visibilitychange", () => {
      if (listen) this.record({ kind: "visibility", value: document.visibilityState });
      if (document.visibilityState === "hidden") this.beacon();
    });
    this.timer = setInterval(() => {
      this.cut();
      this.pump();
      this.pumpLayouts();
    }, batchMs);
    this.pump();
    this.pumpLayouts();
  }

  // ---------------------------------------------------------------- public API

  /** Samples recorded from now on belong to `taskId`; `elements` are the two response boxes. */
  setTask(taskId, elements) {
    this.cut();
    this.taskId = taskId;
    this.responses = elements.map((element) => new ResponseText(element));
    this.record({ kind: "resize", value: `${window.innerWidth}x${window.innerHeight}` });
    this.queueLayouts();
    // Text drawn before a font arrived moves when it does: measure again then.
    document.fonts?.ready?.then(() => {
      if (this.taskId === taskId) this.remeasure();
    });
  }

  /** Re-measure the word boxes (after a layout change) and upload them if they moved. */
  remeasure() {
    for (const response of this.responses) response.measure();
    this.queueLayouts();
  }

  /**
   * A gaze estimate at a viewport point (WebGazer's coordinates), or a frame without one
   * (`valid` false: no face found). Also how tests inject synthetic gaze.
   * @returns {object} the recorded sample
   */
  injectGaze(x, y, valid = true) {
    const ok = Boolean(valid) && Number.isFinite(x) && Number.isFinite(y);
    const sample = ok ? this.at({ kind: "gaze" }, x, y) : this.stamp({ kind: "gaze" });
    sample.camera_valid = ok;
    this.push(sample);
    return { ...sample };
  }

  /** A WebGazer prediction (null when it found no face). */
  gaze(prediction) {
    if (prediction && Number.isFinite(prediction.x)) return this.injectGaze(prediction.x, prediction.y, true);
    return this.injectGaze(null, null, false);
  }

  /** Record a sample; `kind` and any other Sample fields; t and epoch_ms are filled in. */
  record(fields) {
    const sample = this.stamp(fields);
    this.push(sample);
    return sample;
  }

  /** Resolves when every recorded sample and every layout is acknowledged by the server. */
  flush() {
    this.cut();
    if (this.failure) return Promise.reject(this.failure);
    const done = new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.settle();
    this.pump();
    this.pumpLayouts();
    return done;
  }

  /** Queued batches and layouts, and samples not yet in a batch. */
  pending() {
    return {
      batches: this.queue.length,
      samples: this.buffer.length,
      layouts: this.layouts.length,
      nextSeq: this.nextSeq,
    };
  }

  stop() {
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.layoutTimer);
    for (const [target, type, handler, options] of this.handlers) {
      target.removeEventListener(type, handler, options);
    }
    this.handlers = [];
  }

  // ---------------------------------------------------------------- samples

  listen() {
    const passive = { passive: true, capture: true };
    this.on(document, "pointermove", (event) => this.pointer(event), passive);
    this.on(document, "click", (event) => this.click(event), passive);
    this.on(document, "scroll", (event) => this.scroll(event), passive);
    this.on(window, "focus", () => this.record({ kind: "focus", value: "window" }));
    this.on(window, "blur", () => this.record({ kind: "blur", value: "window" }));
    let resizing = null;
    this.on(window, "resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => {
        this.remeasure();
        this.record({ kind: "resize", value: `${window.innerWidth}x${window.innerHeight}` });
      }, 150);
    });
    this.record({ kind: "resize", value: `${window.innerWidth}x${window.innerHeight}` });
  }

  on(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    this.handlers.push([target, type, handler, options]);
  }

  /** Sample times: `t` on the page timer; `epoch_ms` the wall clock at that moment. */
  stamp(fields, time = performance.now()) {
    return {
      t: Math.max(0, Math.round(time * 100) / 100),
      epoch_ms: Math.round(Date.now() - (performance.now() - time)),
      response: 0,
      ...fields,
    };
  }

  /** A sample at a viewport point: page coordinates, the response and character under it. */
  at(fields, x, y, time = performance.now()) {
    const sample = this.stamp(fields, time);
    sample.x = px(x + window.scrollX);
    sample.y = px(y + window.scrollY);
    this.responses.forEach((response, i) => {
      if (sample.response !== 0) return;
      const box = response.element.getBoundingClientRect();
      if (!contains(box, x, y)) return;
      const origin = response.origin();
      sample.response = i + 1;
      sample.x_rel = px(x - origin.x);
      sample.y_rel = px(y - origin.y);
      const offset = response.charAt(x, y);
      if (offset !== null) {
        sample.char_index = response.codePoint(offset);
        sample.text_window = response.window(sample.char_index);
      }
    });
    return sample;
  }

  pointer(event) {
    const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
    for (const each of events.length ? events : [event]) {
      if (each.timeStamp - this.lastPointer < this.minInterval - 0.5) continue;
      this.lastPointer = each.timeStamp;
      const sample = this.at({ kind: "mouse" }, each.clientX, each.clientY, each.timeStamp);
      if (event.pointerType && event.pointerType !== "mouse") sample.value = event.pointerType;
      this.push(sample);
    }
  }

  click(event) {
    // A click on a label is followed by the browser's own click on its input: one action.
    const label = this.lastLabel;
    this.lastLabel = event.target instanceof HTMLLabelElement
      ? { id: event.target.htmlFor, t: event.timeStamp }
      : null;
    if (label && event.target.id === label.id && event.timeStamp - label.t < 100) return;
    const sample = Number.isFinite(event.clientX) && event.detail > 0
      ? this.at({ kind: "click" }, event.clientX, event.clientY, event.timeStamp)
      : this.stamp({ kind: "click" }, event.timeStamp); // keyboard activation: no point
    const name = describe(event.target);
    if (name) sample.value = name;
    this.push(sample);
  }

  /** Scroll of the window (response 0) or of a response box (1, 2): value "left,top". */
  scroll(event) {
    const target = event.target;
    const element = target === document || target === window ? document.scrollingElement : target;
    if (!(element instanceof Element)) return;
    const index = this.responses.findIndex((response) => response.element === element);
    const isWindow = element === document.scrollingElement;
    if (index < 0 && !isWindow) return;
    const key = isWindow ? 0 : index + 1;
    const last = this.lastScroll.get(key) ?? -Infinity;
    if (event.timeStamp - last < this.minInterval - 0.5) return;
    this.lastScroll.set(key, event.timeStamp);
    const left = isWindow ? window.scrollX : element.scrollLeft;
    const top = isWindow ? window.scrollY : element.scrollTop;
    this.push(
      this.stamp({ kind: "scroll", response: key, value: `${Math.round(left)},${Math.round(top)}` }, event.timeStamp),
    );
  }

  push(sample) {
    this.buffer.push(sample);
    if (this.buffer.length >= MAX_SAMPLES_PER_BATCH) this.cut();
  }

  // ---------------------------------------------------------------- batches

  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(this.key) ?? "null");
      if (saved && Number.isInteger(saved.nextSeq) && Array.isArray(saved.queue)) {
        return {
          nextSeq: saved.nextSeq,
          queue: saved.queue,
          layouts: Array.isArray(saved.layouts) ? saved.layouts : [],
          shown: saved.shown && typeof saved.shown === "object" ? saved.shown : {},
        };
      }
    } catch {
      // A corrupt entry is as good as none: the server's 409 will tell the next number.
    }
    return { nextSeq: 0, queue: [], layouts: [], shown: {} };
  }

  save() {
    const state = { nextSeq: this.nextSeq, queue: this.queue, layouts: this.layouts, shown: this.shown };
    try {
      sessionStorage.setItem(this.key, JSON.stringify(state));
    } catch (error) {
      console.warn("tacitly: cannot keep the upload queue in sessionStorage", error);
    }
  }

  /** Turn the buffered samples into numbered batches. */
  cut() {
    if (!this.buffer.length) return;
    while (this.buffer.length) {
      const samples = this.buffer.splice(0, MAX_SAMPLES_PER_BATCH);
      this.queue.push({ seq: this.nextSeq, task_id: this.taskId, samples });
      this.nextSeq += 1;
    }
    this.save();
  }

  async pump() {
    if (this.sending || this.retryTimer || this.failure) return;
    const batch = this.queue[0];
    if (!batch) {
      this.settle();
      return;
    }
    this.sending = true;
    let retryAfter = 0;
    try {
      const response = await fetch("/api/batches", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.token}` },
        body: JSON.stringify(batch),
      });
      const reply = await response.json().catch(() => ({}));
      if (response.ok) {
        this.acknowledged(batch, reply);
      } else if (response.status === 409 && Number.isInteger(reply.next_seq) && reply.next_seq !== batch.seq) {
        this.renumber(reply.next_seq);
      } else if (response.status === 429 || response.status >= 500 || response.status === 409) {
        retryAfter = this.backoff(Number(response.headers.get("Retry-After")) * 1000);
      } else if (response.status === 401) {
        this.fail(new Error(`the server does not know this session (${reply.detail ?? 401})`));
      } else {
        console.warn(`tacitly: batch ${batch.seq} refused (${response.status}): ${reply.detail}`);
        this.stats.dropped += batch.samples.length;
        this.queue.shift();
        this.save();
      }
    } catch {
      retryAfter = this.backoff(0);
    } finally {
      this.sending = false;
    }
    if (this.failure) return;
    if (retryAfter) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.pump();
      }, retryAfter);
    } else {
      this.pump();
    }
  }

  acknowledged(batch, reply) {
    this.attempt = 0;
    if (this.queue[0] === batch) this.queue.shift();
    this.stats.acked += reply.stored ?? 0;
    if (reply.duplicate) this.stats.duplicates += 1;
    this.save();
  }

  /** The server expects `next` and holds none of the queued batches: number them from it. */
  renumber(next) {
    this.queue.forEach((batch, i) => {
      batch.seq = next + i;
    });
    this.nextSeq = next + this.queue.length;
    this.save();
  }

  backoff(hintMs) {
    this.attempt += 1;
    return backoffDelay(this.attempt, hintMs);
  }

  // ---------------------------------------------------------------- layouts

  /** Queue each answer's word boxes, unless they equal the last ones queued for it. */
  queueLayouts() {
    if (this.taskId === null || this.taskId === undefined) return;
    let queued = false;
    for (const key of Object.keys(this.shown)) {
      if (!key.startsWith(`${this.taskId}:`)) delete this.shown[key];
    }
    this.responses.forEach((response, i) => {
      const shown = { width: response.size.width, height: response.size.height, words: response.boxes };
      const signature = fingerprint(JSON.stringify(shown));
      const key = `${this.taskId}:${i + 1}`;
      if (this.shown[key] === signature) return;
      this.shown[key] = signature;
      this.layouts.push({ task_id: this.taskId, layout: { response: i + 1, epoch_ms: Date.now(), ...shown } });
      queued = true;
    });
    if (!queued) return;
    this.save();
    this.pumpLayouts();
  }

  async pumpLayouts() {
    if (this.layoutSending || this.layoutTimer || this.failure) return;
    const item = this.layouts[0];
    if (!item) {
      this.settle();
      return;
    }
    this.layoutSending = true;
    let retryAfter = 0;
    try {
      const response = await fetch(`/api/tasks/${encodeURIComponent(item.task_id)}/layout`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.token}` },
        body: JSON.stringify(item.layout),
      });
      const reply = await response.json().catch(() => ({}));
      if (response.ok) {
        this.layoutAttempt = 0;
        this.stats.layouts += 1;
        this.dropLayout(item);
      } else if (response.status === 429 || response.status >= 500) {
        this.layoutAttempt += 1;
        retryAfter = backoffDelay(this.layoutAttempt, Number(response.headers.get("Retry-After")) * 1000);
      } else if (response.status === 401) {
        this.fail(new Error(`the server does not know this session (${reply.detail ?? 401})`));
      } else {
        console.warn(`tacitly: layout of task ${item.task_id} refused (${response.status}): ${reply.detail}`);
        this.stats.layoutsDropped += 1;
        this.dropLayout(item);
      }
    } catch {
      this.layoutAttempt += 1;
      retryAfter = backoffDelay(this.layoutAttempt, 0);
    } finally {
      this.layoutSending = false;
    }
    if (this.failure) return;
    if (retryAfter) {
      this.layoutTimer = setTimeout(() => {
        this.layoutTimer = null;
        this.pumpLayouts();
      }, retryAfter);
    } else {
      this.pumpLayouts();
    }
  }

  dropLayout(item) {
    if (this.layouts[0] === item) this.layouts.shift();
    this.save();
  }

  fail(error) {
    this.failure = error;
    console.error("tacitly:", error.message);
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  settle() {
    if (this.queue.length || this.buffer.length || this.sending) return;
    if (this.layouts.length || this.layoutSending) return;
    for (const waiter of this.waiters.splice(0)) waiter.resolve(this.stats);
  }

  /** The page may be going away: send everything queued without waiting for answers. */
  beacon() {
    this.cut();
    if (typeof navigator.sendBeacon !== "function") return;
    const token = `token=${encodeURIComponent(this.token)}`;
    const bodies = [
      ...this.queue.map((batch) => [`/api/batches?${token}`, JSON.stringify(batch)]),
      ...this.layouts.map((item) => [
        `/api/tasks/${encodeURIComponent(item.task_id)}/layout?${token}`,
        JSON.stringify(item.layout),
      ]),
    ];
    for (const [url, body] of bodies) {
      if (body.length > BEACON_BYTES) continue; // a long answer's layout waits for the next page
      const blob = new Blob([body], { type: "text/plain" });
      if (!navigator.sendBeacon(url, blob)) break; // over the quota: the next page resends
      this.stats.beacons += 1;
    }
  }
}

/** JSON API call with the session token; retries network errors, 429 and 5xx a few times. */
export async function api(path, { method = "GET", body, token, attempts = 4 } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let lastError = null;
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if (attempt) await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** attempt));
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      lastError = new ApiError(0, "the server cannot be reached; check your connection", null);
      continue;
    }
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    lastError = new ApiError(response.status, data?.detail ?? response.statusText, data);
    if (response.status !== 429 && response.status < 500) break;
  }
  throw lastError;
}

export class ApiError extends Error {
  constructor(status, detail, data) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.data = data;
  }
}
