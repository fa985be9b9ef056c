"""The collection app in a real browser: Debian's chromium driven by Playwright through whole
sessions (consent → calibration → tasks → debrief) against a real uvicorn server and a real
database (SQLite and PostgreSQL); what the recorder uploaded is read back from the store,
exported in the IFllm layout and loaded by ``tacitly.signals.behavior``.

Gaze comes from ``window.tacitlyRecorder.injectGaze`` (or from a stub WebGazer served in place
of the real one), aimed at characters whose position the test measures with DOM ranges, so the
recorded ``char_index`` can be checked to the character. Each page is saved as a screenshot in
``docs/screenshots/`` (1280×800).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tacitly.collect import server as server_module
from tacitly.collect.server import create_app
from tacitly.collect.store import Store
from tacitly.collect.study import load_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APT_TIMEOUT_S = 1200
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 15_000

PAYLOAD = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
VACCINE_PARAGRAPHS = [
    "Vaccines train the immune system by showing it a harmless look-alike of a pathogen.",
    "The look-alike can be a weakened virus, an inactivated one, a single protein, or the "
    "messenger RNA that tells your own cells to make that protein for a short while.",
    "Immune cells called B cells meet the antigen and start to make antibodies that fit it; "
    "T cells learn to recognise infected cells that display pieces of it.",
    "After the response fades, long-lived memory cells remain in the lymph nodes and the bone "
    "marrow, sometimes for decades.",
    "When the real pathogen arrives, these memory cells react within days instead of weeks, "
    "which is usually fast enough to stop a serious illness.",
    "Boosters remind the memory cells and raise the antibody level again, which matters for "
    "pathogens that change quickly or for immunity that wanes.",
    "Because vaccinated people pass the pathogen on less often, vaccination also protects "
    "those who cannot be vaccinated themselves.",
]
PAIRS = [
    {
        "question": "How do vaccines train the immune system?",
        "response_1": "\n\n".join(VACCINE_PARAGRAPHS),
        "response_2": "They teach your body to recognise a germ before you meet it, so your "
        "defences are ready. Most vaccines need one or two doses and sometimes a booster.",
        "source_1": "file-long",
        "source_2": "file-short",
    },
    {
        "question": "Can a web page run the <b>markup</b> that an answer contains?",
        "response_1": "No. A page that inserts answers as text shows tags literally, so nothing "
        "in an answer can run as code.",
        "response_2": f"Try this: {PAYLOAD} and see what happens.",
    },
    {
        "question": "What is a good way to learn a new language?",
        "response_1": "Practise a little every day: short daily sessions beat long weekly ones, "
        "and speaking with people early builds confidence.",
        # Emoji: JavaScript counts each as 2 units, Python as 1 character; three shift by 3.
        "response_2": "\U0001f4da \U0001f4d6 \U0001f4dd Buy a thick grammar book and read it "
        "cover to cover before you try to say anything.",
    },
]
# (likert_1, likert_2, preference) given on each task; the third one with the keyboard.
RATINGS = [(4, 2, 1), (3, 5, 2), (5, 1, 1)]
# Where gaze is aimed on each task: a word of each answer (its third letter).
GAZE_TARGETS = [("immune", "recognise"), ("literally", "happens"), ("daily", "grammar")]


# ---------------------------------------------------------------------------------------------
# browser and server


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Debian's chromium, installed with apt when missing and we are root (never a download)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing; install it as root: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"{' '.join(command)} failed: {done.stderr[-1000:]}")
    if not CHROMIUM.is_file():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is missing")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_executable: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium_executable), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def serving(study_file: Path, store: Store) -> Iterator[str]:
    """The study's app under uvicorn in a thread, on a loopback socket bound before it starts."""
    import uvicorn

    app = create_app(load_study(study_file), store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """A factory of pages in a fresh 1280×800 context; console errors fail the test, but for
    those containing one of the ``expected`` strings."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(expected: tuple[str, ...] = ()) -> Any:
        def console(message: Any) -> None:
            if message.type == "error" and not any(text in message.text for text in expected):
                errors.append(f"console: {message.text}")

        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
        page.on("console", console)
        return page

    yield open_
    for context in contexts:
        context.close()
    # CSP violations and uncaught exceptions show up here.
    assert errors == []


def write_study(folder: Path, **overrides: Any) -> Path:
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(pair) + "\n" for pair in PAIRS), encoding="utf-8")
    study = {
        "title": "Which answer helps more?",
        "tasks": 3,
        "generator": {"kind": "file", "path": "pairs.jsonl"},
        "recorder": {"pointer_hz": 100, "batch_ms": 250, "webgazer": False},
        "limits": {"requests_per_s": 50, "burst": 100},
        **overrides,
    }
    file = folder / "study.yaml"
    file.write_text(yaml.safe_dump(study), encoding="utf-8")
    return file


def database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_database"))
    return f"sqlite:///{tmp_path / 'study.db'}"


def screenshot(page: Any, name: str) -> None:
    """The viewport from the top, transitions finished (1280×800)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")


# ---------------------------------------------------------------------------------------------
# driving the pages

AIM_JS = """([id, start]) => {
  // The first letter at or after `start` whose box lies inside the answer's visible area.
  const box = document.getElementById(id);
  const node = box.firstChild;
  const frame = box.getBoundingClientRect();
  for (let i = start; i < node.data.length; i += 1) {
    if (!/\\p{L}/u.test(node.data[i])) continue;
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const r = range.getBoundingClientRect();
    if (r.top >= frame.top + 4 && r.bottom <= frame.bottom - 4) {
      // Python's index (code points), not JavaScript's (UTF-16 units).
      const index = Array.from(node.data.slice(0, i)).length;
      return {index, x: r.left + r.width / 2, y: r.top + r.height / 2};
    }
  }
  return null;
}"""


def aim(page: Any, response: int, start: int) -> dict[str, float]:
    """The viewport centre and index of a visible letter of the response, at or after the
    character ``start``."""
    text = page.text_content(f"#response-{response}")
    utf16 = len(text[:start].encode("utf-16-le")) // 2
    target = page.evaluate(AIM_JS, [f"response-{response}", utf16])
    assert target is not None, f"no visible letter in response {response} after {start}"
    return dict(target)


def inject_gaze(page: Any, target: dict[str, float], *, times: int = 4) -> list[dict[str, Any]]:
    return [
        page.evaluate(
            "([x, y]) => window.tacitlyRecorder.injectGaze(x, y, true)", [target["x"], target["y"]]
        )
        for _ in range(times)
    ]


def sweep(page: Any, selector: str) -> None:
    """Move the mouse across an element in small steps, a few ms apart (real pointer events)."""
    box = page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] * 0.3
    for step in range(12):
        page.mouse.move(box["x"] + 10 + step * (box["width"] - 20) / 11, y + step * 2)
        page.wait_for_timeout(12)


def wait_for_task(page: Any, previous: str | None) -> str:
    # document.body is null for a moment while the consent page navigates to the task page.
    page.wait_for_function(
        "(previous) => document.body !== null && document.body.dataset.state === 'compare'"
        " && document.body.dataset.taskId !== previous",
        arg=previous,
    )
    return str(page.evaluate("document.body.dataset.taskId"))


def rate_with_clicks(
    page: Any, likert_1: int, likert_2: int, preference: int, *, shot: str | None = None
) -> None:
    page.click(f"label[for=likert-1-{likert_1}]")
    page.click(f"label[for=likert-2-{likert_2}]")
    page.click(f"label[for=preference-{preference}]")
    if shot is not None:
        screenshot(page, shot)
    page.click("#submit")


def rate_with_keyboard(page: Any, likert_1: int, likert_2: int, preference: int) -> None:
    page.focus("#likert-1-1")
    page.keyboard.press("Space")
    for _ in range(likert_1 - 1):
        page.keyboard.press("ArrowRight")
    page.focus("#likert-2-1")
    page.keyboard.press("Space")
    for _ in range(likert_2 - 1):
        page.keyboard.press("ArrowRight")
    page.focus(f"#preference-{preference}")
    page.keyboard.press("Space")
    page.focus("#submit")
    page.keyboard.press("Enter")


def give_consent(page: Any, base_url: str, *, participant: str, shot: bool) -> None:
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-state=ready]")
    page.fill("#participant", participant)
    if shot:
        screenshot(page, "consent")
    page.click("#agree")


def run_session(page: Any, base_url: str, *, shots: bool) -> dict[str, Any]:
    """Consent, three tasks with mouse, scroll, clicks and gaze, debrief; what was aimed at."""
    give_consent(page, base_url, participant="prolific-42", shot=shots)
    page.wait_for_url("**/task")
    aimed: dict[str, list[tuple[int, int]]] = {}
    task_id = None
    for position, ratings in enumerate(RATINGS):
        task_id = wait_for_task(page, task_id)
        assert page.text_content("#progress") == f"Task {position + 1} of 3"
        pair = PAIRS[position]
        if position == 2:
            # A reload mid-task: queued batches go out by sendBeacon and again from the new
            # page's stored queue; the server keeps one copy and shows the same open task.
            sweep(page, "#response-2")
            page.reload()
            page.wait_for_selector("body[data-state=compare]")
            assert page.evaluate("document.body.dataset.taskId") == task_id
        assert page.text_content("#response-1") == pair["response_1"]
        assert page.text_content("#response-2") == pair["response_2"]
        if position == 1:
            # The word-box fallback: no caret API at all for this task.
            page.evaluate(
                "() => { document.caretPositionFromPoint = undefined;"
                " document.caretRangeFromPoint = undefined; }"
            )
        targets = []
        for response, word in enumerate(GAZE_TARGETS[position], start=1):
            start = pair[f"response_{response}"].index(word) + 2
            target = aim(page, response, start)
            injected = inject_gaze(page, target)
            assert {sample["response"] for sample in injected} == {response}
            targets.append((response, int(target["index"])))
        page.evaluate("window.tacitlyRecorder.injectGaze(null, null, false)")
        if position == 1:
            page.evaluate(
                "() => { delete document.caretPositionFromPoint;"
                " delete document.caretRangeFromPoint; }"
            )
            assert page.evaluate("typeof window.pwned") == "undefined"
            assert page.get_by_text(PAYLOAD, exact=False).is_visible()
            assert page.get_by_text("<b>markup</b>", exact=False).is_visible()
        sweep(page, "#response-1")
        sweep(page, "#response-2")
        if position == 0:
            box = page.locator("#response-1").bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.wheel(0, 240)  # scrolls the long answer's box
            page.wait_for_function("() => document.getElementById('response-1').scrollTop > 0")
            # Aimed after the box scrolled: the first visible letter from the fourth paragraph.
            target = aim(page, 1, pair["response_1"].index("memory cells"))
            inject_gaze(page, target)
            targets.append((1, int(target["index"])))
            page.mouse.click(target["x"], target["y"])
        page.mouse.move(640, 120)
        page.mouse.wheel(0, 200)  # the window
        page.wait_for_timeout(60)
        aimed[task_id] = targets
        if position == 2:
            rate_with_keyboard(page, *ratings)
        else:
            rate_with_clicks(page, *ratings, shot="task" if shots and position == 0 else None)
    page.wait_for_url("**/debrief")
    page.wait_for_selector("body[data-state=saved]")
    assert page.text_content("#save-status") == "All your answers are saved."
    assert page.text_content("#participant-code") == "prolific-42"
    if shots:
        screenshot(page, "debrief")
    session = page.evaluate("JSON.parse(sessionStorage.getItem('tacitly.session'))")
    page.close()
    return {"session_id": session["session_id"], "aimed": aimed}


def boxes_at(store: Store, task_id: int, response: int, epoch_ms: int) -> list[dict[str, Any]]:
    """The word boxes of an answer in the layout version in place at ``epoch_ms``: the latest
    measured at or before it (the first, for a sample recorded before any measurement)."""
    versions = [v for v in store.layouts(task_id) if v["response"] == response]
    assert versions, (task_id, response)
    before = [v for v in versions if v["epoch_ms"] <= epoch_ms] or versions[:1]
    version = before[-1]["version"]
    return [
        box
        for box in store.word_boxes(task_id, latest=False)
        if box["response"] == response and box["version"] == version
    ]


def check_word_boxes(store: Store, tasks: list[Any], samples: list[dict[str, Any]]) -> int:
    """Every layout version of both answers spells out the answer's words, and each gaze sample
    over a character lies in the box of that character; returns the samples checked."""
    checked = 0
    for task in tasks:
        every = store.word_boxes(task.id, latest=False)
        for response, text in enumerate((task.response_1, task.response_2), start=1):
            versions = {b["version"] for b in every if b["response"] == response}
            assert versions, (task.id, response)
            for version in versions:
                boxes = [b for b in every if (b["response"], b["version"]) == (response, version)]
                words: dict[int, str] = {}
                for box in boxes:  # in reading order; a wrapped word's boxes in a row
                    words[box["index"]] = words.get(box["index"], "") + box["text"]
                    assert text[box["char_start"] : box["char_end"]] == box["text"]
                    assert box["width"] > 0 and box["height"] > 0
                assert list(words) == list(range(len(words)))
                assert list(words.values()) == text.split()
        for sample in samples:
            if sample["task_id"] != task.id or sample["kind"] != "gaze":
                continue
            if sample["char_index"] is None:
                continue
            boxes = boxes_at(store, task.id, sample["response"], sample["epoch_ms"])
            [box] = [b for b in boxes if b["char_start"] <= sample["char_index"] < b["char_end"]]
            x, y = sample["x_rel"], sample["y_rel"]
            # Both are rounded to 0.1 px by the browser.
            assert box["left"] - 0.1 <= x <= box["left"] + box["width"] + 0.1, (sample, box)
            assert box["top"] - 0.1 <= y <= box["top"] + box["height"] + 0.1, (sample, box)
            checked += 1
    return checked


# ---------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_whole_session_is_stored_exported_and_loaded(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, open_page: Any
) -> None:
    from tacitly.collect.export import export_ifllm
    from tacitly.signals.behavior import build_feature_table

    store = Store(database_url(request, backend, tmp_path))
    try:
        with serving(write_study(tmp_path), store) as base_url:
            outcome = run_session(open_page(), base_url, shots=backend == "sqlite")
        session_id = outcome["session_id"]

        tasks = store.tasks(session_id)
        assert [(t.likert_1, t.likert_2, t.preference) for t in tasks] == RATINGS
        assert [t.question for t in tasks] == [pair["question"] for pair in PAIRS]

        samples = store.samples(session_id)
        assert {"mouse", "gaze", "scroll", "click", "rating", "resize"} <= {
            s["kind"] for s in samples
        }
        seqs = sorted({s["seq"] for s in samples})
        assert seqs == list(range(len(seqs)))
        assert len(seqs) >= 3
        keys = [(s["session_id"], s["seq"], s["idx"]) for s in samples]
        assert len(keys) == len(set(keys))
        contents = [
            (s["kind"], s["t"], s["epoch_ms"], s["x"], s["y"], s["response"], s["value"])
            for s in samples
        ]
        assert len(contents) == len(set(contents))  # no sample stored twice under two numbers
        for seq in seqs:
            idx = [s["idx"] for s in samples if s["seq"] == seq]
            assert idx == list(range(len(idx)))

        texts = {str(t.id): (t.response_1, t.response_2) for t in tasks}
        for task_id, targets in outcome["aimed"].items():
            of_task = [s for s in samples if str(s["task_id"]) == task_id]
            for response, index in targets:
                hits = [
                    s["char_index"]
                    for s in of_task
                    if s["kind"] == "gaze" and s["response"] == response
                    and s["char_index"] is not None and abs(s["char_index"] - index) <= 2
                ]  # fmt: skip
                assert len(hits) >= 4, (task_id, response, index)
            gaze = [s for s in of_task if s["kind"] == "gaze"]
            assert [s["camera_valid"] for s in gaze].count(False) == 1
            # Every gaze sample over an answer points at a character aimed at.
            aimed_at = {(r, i) for r, i in targets}
            for sample in gaze:
                if sample["response"]:
                    assert any(
                        r == sample["response"] and abs(sample["char_index"] - i) <= 2
                        for r, i in aimed_at
                    ), sample
            mice = {s["response"] for s in of_task if s["kind"] == "mouse"}
            assert {1, 2} <= mice
        for sample in samples:
            if sample["char_index"] is not None:
                text = texts[str(sample["task_id"])][sample["response"] - 1]
                index = sample["char_index"]
                assert sample["text_window"] == text[max(0, index - 10) : index + 11]
        scrolls = {(s["response"], s["task_id"]) for s in samples if s["kind"] == "scroll"}
        assert (1, tasks[0].id) in scrolls
        # One sample per action: a label's click, not also the input's echo of it; the
        # keyboard's Space and arrows click the inputs themselves.
        clicks = [s["value"] for s in samples if s["kind"] == "click"]
        assert clicks == [
            "response-1",
            *("label:likert-1-4", "label:likert-2-2", "label:preference-1", "submit"),
            *("label:likert-1-3", "label:likert-2-5", "label:preference-2", "submit"),
            *(f"likert-1-{value}" for value in range(1, 6)),
            *("likert-2-1", "preference-1", "submit"),
        ]
        ratings = [s["value"] for s in samples if s["kind"] == "rating"]
        assert ratings == [f"likert_1={a};likert_2={b};preference={p}" for a, b, p in RATINGS]

        # Word boxes: both answers of every task, the aimed-at gaze inside its word's box.
        aimed_gaze = sum(len(targets) for targets in outcome["aimed"].values()) * 4
        assert check_word_boxes(store, tasks, samples) >= aimed_gaze

        folder = export_ifllm(store, tmp_path / "export")
        sitting = folder / "user_behavior" / "worker_prolific-42" / str(tasks[0].id)
        for task in tasks:
            aois = (sitting / f"aois_{task.id}.csv").read_text(encoding="utf-8").splitlines()
            assert len(aois) == 1 + len(store.word_boxes(task.id))
        table = build_feature_table(folder)
        assert table.height == len(RATINGS)
        assert table["label"].to_list() == [1.0 if p == 1 else 0.0 for _, _, p in RATINGS]
    finally:
        store.close()


# 79 letters, wider than an answer box at any of the test's window sizes: it wraps.
LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis" + "Supercalifragilisticexpialidocious"


def test_word_boxes_follow_a_resize_and_split_a_wrapped_word(
    tmp_path: Path, open_page: Any
) -> None:
    pair = {
        "question": "Which word is the longest?",
        "response_1": f"Some say it is {LONG_WORD} but that is two words glued together.",
        "response_2": "A dictionary would know.",
    }
    (tmp_path / "long.jsonl").write_text(json.dumps(pair) + "\n", encoding="utf-8")
    study = write_study(tmp_path, tasks=1, generator={"kind": "file", "path": "long.jsonl"})
    store = Store(tmp_path / "layout.db")
    try:
        with serving(study, store) as base_url:
            page = open_page()
            give_consent(page, base_url, participant="", shot=False)
            task_id = int(wait_for_task(page, None))
            page.evaluate("() => window.tacitlyRecorder.flush()")
            first = [(v["response"], v["version"]) for v in store.layouts(task_id)]
            assert first == [(1, 1), (2, 1)]
            page.set_viewport_size({"width": 420, "height": 800})  # one column, narrower boxes
            page.wait_for_function("() => window.tacitlyRecorder.stats.layouts >= 4")
            page.locator("#response-1").scroll_into_view_if_needed()
            start = pair["response_1"].index(LONG_WORD)
            target = aim(page, 1, start + len(LONG_WORD) - 3)  # in the word's last line
            inject_gaze(page, target)
            page.evaluate("() => window.tacitlyRecorder.flush()")
            session_id = page.evaluate("JSON.parse(sessionStorage.getItem('tacitly.session'))")[
                "session_id"
            ]
            page.close()
        versions = [(v["response"], v["version"]) for v in store.layouts(task_id)]
        assert versions == [(1, 1), (1, 2), (2, 1), (2, 2)]
        widths = [v["width"] for v in store.layouts(task_id) if v["response"] == 1]
        assert widths[1] < widths[0]
        samples = store.samples(session_id)
        assert check_word_boxes(store, store.tasks(session_id), samples) == 4
        index = len(pair["response_1"][:start].split())
        for version in (1, 2):
            parts = [
                box
                for box in store.word_boxes(task_id, latest=False)
                if (box["response"], box["version"], box["index"]) == (1, version, index)
            ]
            assert len(parts) >= 2  # one box per line, each with its own characters
            assert "".join(box["text"] for box in parts) == LONG_WORD
            assert [box["top"] for box in parts] == sorted({box["top"] for box in parts})
        gaze = [s for s in samples if s["kind"] == "gaze"]
        boxes = boxes_at(store, task_id, 1, gaze[0]["epoch_ms"])
        assert boxes[0]["version"] == 2
        [hit] = [b for b in boxes if b["char_start"] <= gaze[0]["char_index"] < b["char_end"]]
        assert (hit["index"], hit["char_end"]) == (index, start + len(LONG_WORD))
        assert hit["char_start"] > start  # not the word's first line
    finally:
        store.close()


def test_ask_mode_sends_the_typed_question(tmp_path: Path, open_page: Any) -> None:
    store = Store(tmp_path / "ask.db")
    try:
        with serving(write_study(tmp_path, ask=True, tasks=1), store) as base_url:
            page = open_page()
            give_consent(page, base_url, participant="", shot=False)
            page.wait_for_selector("body[data-state=ask]")
            assert page.text_content("#progress") == "Task 1 of 1"
            page.fill("#question-input", PAIRS[2]["question"])
            screenshot(page, "task-ask")
            page.click("#ask-submit")
            wait_for_task(page, None)
            assert page.text_content("#question") == PAIRS[2]["question"]
            assert page.text_content("#submit") == "Submit and finish"
            page.click("#submit")  # nothing chosen yet: refused in the page
            assert page.text_content("#task-error") == (
                "Please rate answer A, rate answer B, choose the answer you prefer."
            )
            rate_with_clicks(page, 2, 4, 2)
            page.wait_for_selector("body[data-state=saved]")
            session_id = page.evaluate("JSON.parse(sessionStorage.getItem('tacitly.session'))")[
                "session_id"
            ]
            page.close()
        [task] = store.tasks(session_id)
        assert (task.question, task.likert_1, task.likert_2, task.preference) == (
            PAIRS[2]["question"],
            2,
            4,
            2,
        )
    finally:
        store.close()


def test_recorder_retries_and_renumbers_without_loss_or_duplicates(
    tmp_path: Path, open_page: Any
) -> None:
    store = Store(tmp_path / "retry.db")
    failures = {"left": 2, "seen": 0}
    bodies: list[str] = []

    def flaky(route: Any) -> None:
        failures["seen"] += 1
        bodies.append(route.request.post_data)
        if failures["left"] > 0:
            failures["left"] -= 1
            route.fulfill(status=503, body='{"detail": "down for a moment"}')
        else:
            route.continue_()

    try:
        with serving(write_study(tmp_path, tasks=1), store) as base_url:
            page = open_page(expected=("status of 503", "status of 409"))
            give_consent(page, base_url, participant="", shot=False)
            task_id = wait_for_task(page, None)
            page.route("**/api/batches", flaky)
            target = aim(page, 1, PAIRS[0]["response_1"].index("antigen"))
            inject_gaze(page, target, times=10)
            page.evaluate("() => window.tacitlyRecorder.flush()")  # through two 503s
            assert failures["left"] == 0
            assert failures["seen"] >= 3
            assert bodies[0] == bodies[1] == bodies[2]  # the same batch, number and content
            session_id = page.evaluate("JSON.parse(sessionStorage.getItem('tacitly.session'))")[
                "session_id"
            ]
            stored_before = store.next_seq(session_id)
            # The page forgets its numbering (lost storage): its next batch reuses number 0,
            # the server answers 409 with the number it expects, and the page renumbers.
            page.evaluate(
                "(key) => { window.tacitlyRecorder.stop(); sessionStorage.removeItem(key); }",
                f"tacitly.recorder.{session_id}",
            )
            page.reload()
            page.wait_for_selector("body[data-state=compare]")
            inject_gaze(page, aim(page, 2, 0), times=3)
            stats = page.evaluate("() => window.tacitlyRecorder.flush()")
            page.close()
        assert stats["dropped"] == 0
        samples = store.samples(session_id)
        seqs = sorted({s["seq"] for s in samples})
        assert seqs == list(range(len(seqs)))
        assert store.next_seq(session_id) > stored_before
        gaze = [(s["response"], s["task_id"]) for s in samples if s["kind"] == "gaze"]
        assert sorted(gaze) == [(1, int(task_id))] * 10 + [(2, int(task_id))] * 3
    finally:
        store.close()


# A stand-in for WebGazer (which needs a webcam): it "predicts" the gaze at the mouse pointer,
# 30 times a second, and implements the calls the pages make.
WEBGAZER_STUB = """
window.webgazer = (() => {
  let listener = null, timer = null, last = null;
  document.addEventListener('mousemove', (e) => { last = {x: e.clientX, y: e.clientY}; });
  const api = {
    setGazeListener(fn) { listener = fn; return api; },
    clearGazeListener() { listener = null; return api; },
    saveDataAcrossSessions() { return api; },
    showVideoPreview() { return api; },
    showPredictionPoints() { return api; },
    recordScreenPosition() { return api; },
    clearData() { return api; },
    begin() {
      timer = setInterval(() => listener && listener(last, performance.now()), 33);
      return Promise.resolve(api);
    },
    end() { clearInterval(timer); return api; },
  };
  return api;
})();
"""


def test_calibration_fails_then_passes_and_gaze_is_recorded(
    tmp_path: Path, open_page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    stub = tmp_path / "webgazer.js"
    stub.write_text(WEBGAZER_STUB, encoding="utf-8")
    monkeypatch.setattr(server_module, "webgazer_path", lambda: stub)
    calibration = {"enabled": True, "points": 9, "clicks": 5, "threshold": 0.7, "attempts": 2}
    study = write_study(
        tmp_path,
        calibration=calibration,
        recorder={"pointer_hz": 100, "batch_ms": 250, "webgazer": True},
    )
    store = Store(tmp_path / "calibration.db")
    try:
        with serving(study, store) as base_url:
            page = open_page()
            page.route(
                "**/static/vendor/webgazer.js",
                lambda route: route.fulfill(
                    body=WEBGAZER_STUB, content_type="application/javascript"
                ),
            )
            page.goto(base_url + "/")
            # The calibration's arithmetic, by hand: distances 0, 50, 100 from the target.
            checks = page.evaluate(
                """async () => {
                  const m = await import('/static/calibrate.js');
                  const round = (ps) => ps.map((p) => p.map((v) => Math.round(v * 1e3) / 1e3));
                  const samples = [{x: 0, y: 0}, {x: 30, y: 40}, {x: 100, y: 0}];
                  return [m.precision(samples, {x: 0, y: 0}, 50), m.precision([], {x: 0, y: 0}, 50),
                          m.precisionRadius(1280, 800), m.precisionRadius(400, 300),
                          round(m.gridPositions(1)), round(m.gridPositions(5))];
                }"""
            )
            assert checks == [
                2 / 3,
                0,
                96,
                60,
                [[0.5, 0.5]],
                [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9]],
            ]
            page.check("#use-webcam")
            page.click("#agree")
            page.wait_for_url("**/calibrate")
            page.wait_for_selector("body[data-state=intro]")
            screenshot(page, "calibrate-intro")
            page.click("#calibration-start")
            for attempt in (1, 2):
                page.wait_for_selector("body[data-state=points]")
                for point in range(9):
                    for _ in range(5):
                        page.click(f"[data-point='{point}']")
                    if attempt == 2 and point == 3:
                        screenshot(page, "calibrate")
                if attempt == 2:
                    page.mouse.move(640, 400)  # looks at the centre target this time
                page.wait_for_selector("body[data-state=checking]")
                expected = "failed" if attempt == 1 else "passed"
                page.wait_for_selector(f"body[data-state={expected}]", timeout=10_000)
                if attempt == 1:
                    assert page.text_content("#precision-value") == "0%"
                    page.click("#calibration-again")
            assert page.text_content("#precision-value") == "100%"
            screenshot(page, "calibrate-result")
            page.click("#calibration-continue")
            wait_for_task(page, None)
            assert page.is_visible("#gaze-status")
            target = aim(page, 2, PAIRS[0]["response_2"].index("defences") + 2)
            page.mouse.move(target["x"], target["y"])  # the stub's gaze follows the pointer
            page.wait_for_timeout(300)
            page.evaluate("() => window.tacitlyRecorder.flush()")
            session_id = page.evaluate("JSON.parse(sessionStorage.getItem('tacitly.session'))")[
                "session_id"
            ]
            page.close()  # before the server stops: its stub gaze would keep uploading
        with store.engine.connect() as db:
            rows = db.execute(text("SELECT precision, passed FROM calibrations ORDER BY id")).all()
        assert [(round(p, 2), bool(ok)) for p, ok in rows] == [(0.0, False), (1.0, True)]
        gaze = [s for s in store.samples(session_id) if s["kind"] == "gaze"]
        at_target = [
            s for s in gaze
            if s["response"] == 2 and s["camera_valid"] and s["char_index"] is not None
            and abs(s["char_index"] - target["index"]) <= 2
        ]  # fmt: skip
        assert len(at_target) >= 3
    finally:
        store.close()
