"""The study's web server: pages, the recorder's upload API, ratings and calibration.

Run it with ``tacitly collect serve`` (uvicorn). Every API call but the first carries the
session token (``Authorization: Bearer …``, or ``?token=`` for ``navigator.sendBeacon``, which
cannot set headers). A batch is acknowledged only after its transaction commits; its reply
says whether it was stored now or had been stored before (a retry), so clients can resend
freely. Errors are JSON ``{"detail": …}`` with a 4xx status that says what was wrong.

Each answer's word boxes (``Range.getClientRects()`` per word) arrive as a layout per task and
answer at ``POST /api/tasks/{task_id}/layout``, again after every change of the layout; a
retry of the latest layout is answered ``duplicate`` and stores nothing.

Page texts the server fills in are escaped by Jinja2's autoescape; everything a participant or
a generator wrote reaches the page through ``textContent`` in the browser, and the pages allow
no inline script (Content-Security-Policy), so text can never run as code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from tacitly.collect.generators import GeneratedPair, GeneratorError, PairSource, make_source
from tacitly.collect.protocol import (
    MAX_BATCH_BYTES,
    MAX_LAYOUT_BYTES,
    MAX_WORD_TEXT,
    Batch,
    BatchAck,
    Calibration,
    Layout,
    LayoutAck,
    NewQuestion,
    NewSession,
    Rating,
    SessionCreated,
    TaskView,
)
from tacitly.collect.store import Store, Task
from tacitly.collect.study import StudyConfig
from tacitly.errors import InputError

__all__ = ["STATIC", "TEMPLATES", "create_app", "webgazer_path"]

M = TypeVar("M", bound=BaseModel)

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
PAGES = ("consent", "calibrate", "task", "debrief")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class ApiError(Exception):
    """An error answered as JSON with its status."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def webgazer_path() -> Path:
    """Where ``make vendor`` puts WebGazer (GPL-3.0, from npm; never committed)."""
    return STATIC / "vendor" / "webgazer.js"


class RateLimiter:
    """A token bucket per session: ``burst`` requests, refilled at ``rate`` per second."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self.buckets[key] = (tokens, now)
                return False
            self.buckets[key] = (tokens - 1.0, now)
            return True


def create_app(study: StudyConfig, store: Store, *, source: PairSource | None = None) -> FastAPI:
    """The study's FastAPI application.

    Parameters
    ----------
    study:
        The study's configuration.
    store:
        Its database.
    source:
        Pair source (default: None, the one ``study.generator`` describes).
    """
    app = FastAPI(title=f"tacitly collect: {study.title}", docs_url=None, redoc_url=None)
    pairs = source if source is not None else make_source(study)
    limiter = RateLimiter(rate=study.limits.requests_per_s, burst=study.limits.burst)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    task_lock = threading.Lock()
    # Whether the pages load WebGazer: asked for by the study and installed (`make vendor`).
    webgazer = study.recorder.webgazer and webgazer_path().is_file()
    policy = CONTENT_SECURITY_POLICY
    if webgazer:
        # WebGazer's TensorFlow.js and face mesh compile code at run time; no inline script
        # is allowed either way, so participants' and generators' text still cannot run.
        policy = policy.replace(
            "script-src 'self'", "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'"
        )
    app.state.study = study
    app.state.store = store

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if error.status == 429 else None
        return JSONResponse(
            {"detail": error.detail, **error.extra}, status_code=error.status, headers=headers
        )

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Permissions-Policy"] = "camera=(self), microphone=()"
        return response

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def page(name: str) -> Callable[[Request], Any]:
        def render(request: Request) -> Any:
            return templates.TemplateResponse(
                request,
                f"{name}.html",
                {
                    "study": study,
                    "webgazer": webgazer,
                },
            )

        return render

    for name in PAGES:
        path = "/" if name == "consent" else f"/{name}"
        app.add_api_route(path, page(name), methods=["GET"], response_class=HTMLResponse)

    def session_of(request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.query_params.get("token")
        if not token:
            raise ApiError(401, "missing session token (Authorization: Bearer <token>)")
        session_id = store.session_for_token(token)
        if session_id is None:
            raise ApiError(401, "unknown session token")
        if not limiter.allow(session_id):
            raise ApiError(429, "too many requests for this session; retry after a second")
        return session_id

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "title": study.title,
            "tasks": study.tasks,
            "ask": study.ask,
            "calibration": study.calibration.model_dump(),
            "recorder": study.recorder.model_dump(),
            "webgazer": webgazer,
            "max_batch_bytes": MAX_BATCH_BYTES,
        }

    @app.post("/api/sessions")
    async def new_session(request: Request) -> SessionCreated:
        body = await _json_body(request, NewSession)
        if not body.consent:
            raise ApiError(400, "consent is required to take part", field="consent")
        session_id, participant_id, token = await run_in_threadpool(
            lambda: store.create_session(
                participant=body.participant,
                user_agent=body.user_agent,
                screen=(body.screen_width, body.screen_height),
            )
        )
        return SessionCreated(
            session_id=session_id,
            participant_id=participant_id,
            token=token,
            calibration=study.calibration.enabled,
            webgazer=webgazer,
        )

    @app.post("/api/calibration")
    async def calibration(request: Request) -> dict[str, Any]:
        session_id = await run_in_threadpool(session_of, request)
        body = await _json_body(request, Calibration)
        passed = await run_in_threadpool(
            lambda: store.add_calibration(
                session_id,
                precision=body.precision,
                points=body.points,
                threshold=study.calibration.threshold,
            )
        )
        return {"passed": passed, "threshold": study.calibration.threshold}

    def generate(question: str | None, index: int) -> GeneratedPair:
        try:
            return pairs.pair(question, index=index)
        except (GeneratorError, InputError) as error:
            # The participant can do nothing about it; the operator reads the reason here.
            raise ApiError(502, f"the answer generator failed: {error}") from None

    def view(task: Task, total: int) -> TaskView:
        return TaskView(
            task_id=task.id,
            position=task.position,
            total=total,
            question=task.question,
            response_1=task.response_1,
            response_2=task.response_2,
        )

    @app.get("/api/tasks/next")
    def next_task(request: Request) -> TaskView:
        session_id = session_of(request)
        with task_lock:
            tasks = store.tasks(session_id)
            if tasks and tasks[-1].preference is None:
                return view(tasks[-1], study.tasks)  # a reload shows the open task again
            if len(tasks) >= study.tasks:
                return TaskView(done=True, total=study.tasks, position=len(tasks))
            if study.ask:
                return TaskView(ask=True, total=study.tasks, position=len(tasks))
            index = len(tasks)
            question = study.questions[index] if study.questions else None
            pair = generate(question, index)
            task = store.add_task(
                session_id, question=pair.question, responses=pair.responses, sources=pair.sources
            )
        return view(task, study.tasks)

    @app.post("/api/tasks")
    async def ask_question(request: Request) -> TaskView:
        session_id = await run_in_threadpool(session_of, request)
        body = await _json_body(request, NewQuestion)
        if not study.ask:
            raise ApiError(409, "this study asks its own questions")
        tasks = await run_in_threadpool(store.tasks, session_id)
        if tasks and tasks[-1].preference is None:
            raise ApiError(409, "rate the open task first", task_id=tasks[-1].id)
        if len(tasks) >= study.tasks:
            raise ApiError(409, "all tasks are done")
        pair = await run_in_threadpool(generate, body.question, len(tasks))
        task = await run_in_threadpool(
            lambda: store.add_task(
                session_id, question=body.question, responses=pair.responses, sources=pair.sources
            )
        )
        return view(task, study.tasks)

    @app.post("/api/tasks/{task_id}/rating")
    async def rate(task_id: int, request: Request) -> dict[str, Any]:
        session_id = await run_in_threadpool(session_of, request)
        body = await _json_body(request, Rating)
        if not await run_in_threadpool(store.rate_task, session_id, task_id, body):
            raise ApiError(404, f"task {task_id} is not a task of this session")
        return {"task_id": task_id, "stored": True}

    @app.post("/api/tasks/{task_id}/layout")
    async def layout(task_id: int, request: Request) -> JSONResponse:
        session_id = await run_in_threadpool(session_of, request)
        body = await _json_body(request, Layout, limit=MAX_LAYOUT_BYTES)
        task = await run_in_threadpool(store.task, session_id, task_id)
        if task is None:
            raise ApiError(404, f"task {task_id} is not a task of this session")
        _check_box_texts(body, task.response_1 if body.response == 1 else task.response_2)
        outcome = await run_in_threadpool(store.add_layout, session_id, task_id, body)
        if outcome is None:
            raise ApiError(404, f"task {task_id} is not a task of this session")
        ack = LayoutAck(
            task_id=task_id,
            response=body.response,
            version=outcome.version,
            boxes=outcome.boxes,
            duplicate=outcome.duplicate,
        )
        return JSONResponse(ack.model_dump())

    @app.post("/api/batches")
    async def batches(request: Request) -> JSONResponse:
        session_id = await run_in_threadpool(session_of, request)
        batch = await _json_body(request, Batch)
        outcome = await run_in_threadpool(store.add_batch, session_id, batch)
        if outcome.status == "gap":
            raise ApiError(
                409,
                f"batch {batch.seq} skips ahead: batch {outcome.next_seq} comes first",
                next_seq=outcome.next_seq,
            )
        if outcome.status == "conflict":
            raise ApiError(
                409,
                f"batch {batch.seq} was already stored with other content",
                next_seq=outcome.next_seq,
            )
        ack = BatchAck(
            seq=batch.seq,
            stored=outcome.stored,
            duplicate=outcome.status == "duplicate",
            next_seq=outcome.next_seq,
        )
        return JSONResponse(ack.model_dump())

    @app.post("/api/finish")
    def finish(request: Request) -> dict[str, Any]:
        session_id = session_of(request)
        store.finish_session(session_id)
        return {"finished": True, "next_seq": store.next_seq(session_id)}

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    return app


def _check_box_texts(layout: Layout, answer: str) -> None:
    """Every box must hold the answer's own characters at its offsets (code points, cut at
    ``MAX_WORD_TEXT``), so that stored boxes always map back onto the text that was shown."""
    for i, box in enumerate(layout.words):
        expected = answer[box.char_start : box.char_end][:MAX_WORD_TEXT]
        if box.text != expected:
            raise ApiError(
                422,
                f"field 'words.{i}.text': {box.text[:40]!r} is not the answer's characters "
                f"{box.char_start}–{box.char_end} ({expected[:40]!r})",
                field=f"words.{i}.text",
            )


async def _json_body(request: Request, model: type[M], *, limit: int = MAX_BATCH_BYTES) -> M:
    """The request's JSON body as ``model``: 413 when over ``limit`` bytes (default:
    :data:`MAX_BATCH_BYTES`), 415 when not JSON text, 400 when malformed, 422 naming the first
    wrong field."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes; at most {limit}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # sendBeacon with a string body sends text/plain; anything else is not ours.
    if kind not in ("application/json", "text/plain"):
        raise ApiError(415, f"content type {kind or 'none'!r}; expected application/json")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, f"body over {limit} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"malformed JSON: {error}") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(
            422, f"field {where!r}: {first['msg']}", field=where, errors=len(error.errors())
        ) from None
