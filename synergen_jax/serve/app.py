"""The HTTP side: an ASGI app (Starlette) with the page and OpenAI-compatible endpoints.

  GET  /                        the page (static/index.html, app.js, style.css; no
                                asset from the internet: a CSP of 'self' enforces it)
  GET  /healthz                 {"status": "ok", ...queue and batch counters}
  GET  /v1/models               the one model served
  POST /v1/chat/completions     image + conversation -> answer (`stream: true`: SSE)
  POST /v1/images/generations   prompt -> n images as b64_json PNGs

Every error is a JSON body {"error": {"message", "type", "param", "code"}} (OpenAI's
shape) with a 4xx/5xx status; see docs/SERVING.md for the table of limits.
"""

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
import math
import os
import secrets
import time
import uuid
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from synergen_jax.serve import batcher as batcher_lib
from synergen_jax.serve import images as images_lib
from synergen_jax.serve.engine import Engine, InputError

STATIC = os.path.join(os.path.dirname(__file__), "static")
_STATIC_FILES = {  # URL path -> (file in STATIC, content type); nothing else is served
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
_CSP = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'")
MAX_SEED = 2**31 - 1


@dataclasses.dataclass
class Limits:
  max_body_bytes: int = 8 << 20          # request body
  max_image_pixels: int = 4096 * 4096    # decoded image (decompression bombs)
  max_prompt_chars: int = 4000           # text, before tokenizing
  max_images: int = 4                    # n of /v1/images/generations
  max_output_size: int = 1024            # largest `size` (nearest upscale of the model's)
  request_timeout_s: float = 120.0       # queue + model time of one request


class ApiError(Exception):
  def __init__(self, status: int, message: str, param: str | None = None,
               code: str | None = None, headers: dict | None = None):
    super().__init__(message)
    self.status, self.message, self.param, self.code = status, message, param, code
    self.headers = headers or {}


class BodyTooLarge(Exception):
  pass


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 503: "server_overloaded", 504: "timeout"}


def error_body(status: int, message: str, param=None, code=None) -> dict:
  return {"error": {"message": message, "type": _TYPES.get(status, "server_error"),
                    "param": param, "code": code}}


def error_response(status: int, message: str, param=None, code=None,
                   headers: dict | None = None) -> JSONResponse:
  return JSONResponse(error_body(status, message, param, code), status, headers=headers)


async def _send_error(send, status: int, message: str, headers=()):
  body = json.dumps(error_body(status, message)).encode()
  await send({"type": "http.response.start", "status": status,
              "headers": [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())] + list(headers)})
  await send({"type": "http.response.body", "body": body})


class Guard:
  """ASGI middleware: the API key on every path, and the body byte limit (a declared
  Content-Length over it is refused before a byte of the body is read; a chunked body is
  counted while it is read and refused when it crosses the limit)."""

  def __init__(self, app, api_key: str | None, max_body_bytes: int):
    self.app, self.api_key, self.max_body_bytes = app, api_key or None, int(max_body_bytes)

  def _authorized(self, headers: dict) -> bool:
    auth = headers.get(b"authorization", b"").decode("latin-1").strip()
    given = ""
    if auth[:7].lower() == "bearer ":
      given = auth[7:].strip()
    elif auth[:6].lower() == "basic ":  # the browser's login prompt: any user, key as password
      try:
        given = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")[2]
      except (binascii.Error, UnicodeDecodeError, ValueError):
        given = ""
    given = given or headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return hmac.compare_digest(given.encode(), self.api_key.encode())

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    headers = dict(scope["headers"])
    if self.api_key and not self._authorized(headers):
      return await _send_error(
          send, 401, "missing or wrong API key (Authorization: Bearer KEY)",
          [(b"www-authenticate", b'Basic realm="synergen-serve", charset="UTF-8"')])
    declared = headers.get(b"content-length")
    if declared is not None:
      try:
        n = int(declared)
      except ValueError:
        return await _send_error(send, 400, "Content-Length is not a number",
                                 [(b"connection", b"close")])
      if n > self.max_body_bytes:
        return await _send_error(
            send, 413, f"the request body is {n:,} bytes; the limit is "
            f"{self.max_body_bytes:,}", [(b"connection", b"close")])
    seen = 0
    limit = self.max_body_bytes

    async def counted():
      nonlocal seen
      message = await receive()
      if message["type"] == "http.request":
        seen += len(message.get("body", b""))
        if seen > limit:
          raise BodyTooLarge()
      return message

    return await self.app(scope, counted, send)


# ---- request parsing --------------------------------------------------------------------
def _fields(obj: Any, allowed: set, where: str) -> dict:
  if not isinstance(obj, dict):
    raise ApiError(400, f"{where or 'the body'} must be a JSON object", where or None)
  for k in obj:
    if k not in allowed:
      raise ApiError(400, f"unknown field {where + '.' if where else ''}{k!r}; supported: "
                     f"{', '.join(sorted(allowed))}", k, "unknown_field")
  return obj


def _int(obj: dict, name: str, lo: int, hi: int, default):
  v = obj.get(name, None)
  if v is None:
    return default
  if isinstance(v, float) and v.is_integer():
    v = int(v)
  if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
    raise ApiError(400, f"{name} must be an integer from {lo} to {hi}, got {v!r}", name)
  return v


def _float(obj: dict, name: str, lo: float, hi: float, default, lo_open=False):
  v = obj.get(name, None)
  if v is None:
    return default
  ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (
      lo < v if lo_open else lo <= v) and v <= hi
  if not ok:
    raise ApiError(400, f"{name} must be a number {'>' if lo_open else '>='} {lo} and <= "
                   f"{hi}, got {v!r}", name)
  return float(v)


def _str(obj: dict, name: str, default=None, max_chars: int | None = None):
  v = obj.get(name, None)
  if v is None:
    return default
  if not isinstance(v, str):
    raise ApiError(400, f"{name} must be a string", name)
  if max_chars is not None and len(v) > max_chars:
    raise ApiError(400, f"{name} is {len(v):,} characters; the limit is {max_chars:,}", name,
                   "prompt_too_long")
  return v


def _bool(obj: dict, name: str, default: bool) -> bool:
  v = obj.get(name, None)
  if v is None:
    return default
  if not isinstance(v, bool):
    raise ApiError(400, f"{name} must be true or false", name)
  return v


async def read_json(request: Request) -> dict:
  ctype = request.headers.get("content-type", "")
  if ctype.split(";")[0].strip().lower() != "application/json":
    raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'none'!r}",
                   code="unsupported_media_type")
  try:
    raw = await request.body()
  except BodyTooLarge:
    raise ApiError(413, f"the request body is over the limit of "
                   f"{request.app.state.limits.max_body_bytes:,} bytes",
                   headers={"connection": "close"}) from None
  try:
    body = json.loads(raw)
  except (ValueError, RecursionError) as e:
    raise ApiError(400, f"the body is not valid JSON: {str(e)[:200]}", code="invalid_json") \
        from None
  if not isinstance(body, dict):
    raise ApiError(400, "the body must be a JSON object")
  return body


_CHAT_FIELDS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                "top_p", "seed", "stream", "stream_options", "n", "user"}


def _text_of(content, where: str, role: str, limit: int, images: list) -> str:
  if isinstance(content, str):
    parts = [{"type": "text", "text": content}]
  elif isinstance(content, list):
    parts = content
  else:
    raise ApiError(400, f"{where}.content must be a string or a list of parts", "messages")
  texts = []
  for i, part in enumerate(parts):
    w = f"{where}.content[{i}]"
    if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
      raise ApiError(400, f"{w} must be {{'type': 'text'|'image_url', ...}}", "messages")
    if part["type"] == "text":
      _fields(part, {"type", "text"}, w)
      if not isinstance(part.get("text"), str):
        raise ApiError(400, f"{w}.text must be a string", "messages")
      texts.append(part["text"])
    else:
      if role != "user":
        raise ApiError(400, f"{w}: images go in user messages", "messages")
      _fields(part, {"type", "image_url"}, w)
      iu = part.get("image_url")
      if isinstance(iu, str):
        iu = {"url": iu}
      _fields(iu, {"url", "detail"}, w + ".image_url")
      images.append(iu.get("url"))
  text = "\n".join(t for t in texts if t)
  if len(text) > limit:
    raise ApiError(400, f"{where} is {len(text):,} characters; the limit is {limit:,}",
                   "messages", "prompt_too_long")
  return text


def parse_chat(body: dict, engine: Engine, limits: Limits) -> dict:
  _fields(body, _CHAT_FIELDS, "")
  messages = body.get("messages")
  if not isinstance(messages, list) or not messages:
    raise ApiError(400, "messages must be a non-empty list", "messages")
  images, turns = [], []
  question, image_turn = None, None
  for i, m in enumerate(messages):
    w = f"messages[{i}]"
    _fields(m, {"role", "content", "name"}, w)
    role = m.get("role")
    if role not in ("system", "developer", "user", "assistant"):
      raise ApiError(400, f"{w}.role must be user, assistant or system, got {role!r}",
                     "messages")
    had = len(images)
    text = _text_of(m.get("content"), w, role, limits.max_prompt_chars, images)
    if role in ("system", "developer"):
      continue  # the model has its own system prompt (from its training config)
    if role == "user":
      if len(images) > had:
        image_turn = len(turns)
      question = text if question is None else question + "\n" + text
    else:
      if question is None:
        raise ApiError(400, f"{w}: an assistant message must follow a user message",
                       "messages")
      turns.append((question, text))
      question = None
  if question is None:
    raise ApiError(400, "the last message must be a user message", "messages")
  total = sum(len(q) + len(a or "") for q, a in turns) + len(question)
  if total > limits.max_prompt_chars:
    raise ApiError(400, f"the conversation is {total:,} characters; the limit is "
                   f"{limits.max_prompt_chars:,}", "messages", "prompt_too_long")
  turns.append((question, None))
  if len(images) > 1:
    raise ApiError(400, f"the conversation holds {len(images)} images; the model takes one",
                   "messages")
  if not turns[-1][0].strip():
    raise ApiError(400, "the last user message has no text (ask a question)", "messages")
  if image_turn:  # the image stands where it was given (turn 0: opening the conversation)
    q, a = turns[image_turn]
    turns[image_turn] = ("<image>\n" + q, a)
  cap = engine.max_new_tokens
  max_tokens = _int(body, "max_completion_tokens", 1, cap, None)
  max_tokens = _int(body, "max_tokens", 1, cap, max_tokens or min(32, cap))
  if _int(body, "n", 1, 1, 1) != 1:
    raise ApiError(400, "n must be 1", "n")
  temperature = _float(body, "temperature", 0.0, 2.0, 0.0)
  top_p = _float(body, "top_p", 0.0, 1.0, 1.0, lo_open=True)
  seed = _int(body, "seed", 0, MAX_SEED, None)
  if seed is None:
    seed = 0 if temperature == 0 else secrets.randbelow(MAX_SEED)
  _str(body, "model")
  _str(body, "user")
  stream_options = body.get("stream_options")
  if stream_options is not None:
    _fields(stream_options, {"include_usage"}, "stream_options")
  return dict(turns=turns, image_url=images[0] if images else None, max_tokens=max_tokens,
              temperature=temperature, top_p=top_p, seed=seed,
              stream=_bool(body, "stream", False),
              include_usage=bool((stream_options or {}).get("include_usage", False)))


_IMAGE_FIELDS = {"prompt", "n", "size", "response_format", "model", "user", "seed",
                 "cfg_scale", "temperature"}


def parse_images(body: dict, engine: Engine, limits: Limits) -> dict:
  _fields(body, _IMAGE_FIELDS, "")
  prompt = _str(body, "prompt", None, limits.max_prompt_chars)
  if prompt is None or not prompt.strip():
    raise ApiError(400, "prompt must be a non-empty string", "prompt")
  n = _int(body, "n", 1, limits.max_images, 1)
  s = engine.image_size
  size = _str(body, "size", f"{s}x{s}")
  w, _, h = size.partition("x")
  ok = w.isdigit() and w == h and s <= int(w) <= max(s, limits.max_output_size) and \
      int(w) % s == 0
  if not ok:
    raise ApiError(400, f"size must be square, a multiple of the model's {s}x{s} up to "
                   f"{limits.max_output_size} (upscaled), got {size!r}", "size")
  fmt = _str(body, "response_format", "b64_json")
  if fmt != "b64_json":
    raise ApiError(400, f"response_format must be 'b64_json' (this server writes no files "
                   f"and serves no image URLs), got {fmt!r}", "response_format")
  _str(body, "model")
  _str(body, "user")
  seed = _int(body, "seed", 0, MAX_SEED - limits.max_images, None)
  return dict(prompt=prompt, n=n, size=int(w),
              seed=secrets.randbelow(MAX_SEED - limits.max_images) if seed is None else seed,
              cfg_scale=_float(body, "cfg_scale", 0.0, 50.0, engine.default_cfg),
              temperature=_float(body, "temperature", 0.0, 2.0,
                                 engine.default_gen_temperature))


# ---- the app ----------------------------------------------------------------------------
def make_runner(engine: Engine):
  def run(group, payloads):
    if group[0] == "answer":
      _, temperature, top_p, _ = group
      return engine.answer_batch([p["example"] for p in payloads],
                                 [p["seed"] for p in payloads],
                                 [p["max_tokens"] for p in payloads], temperature, top_p)
    _, temperature = group
    return list(engine.generate_batch([p["example"] for p in payloads],
                                      [p["seed"] for p in payloads],
                                      [p["cfg_scale"] for p in payloads], temperature))
  return run


class ClientGone(Exception):
  pass


async def wait_for_jobs(request: Request | None, jobs, timeout_s: float):
  """Results of `jobs`; cancels them (freeing their queue slots) when the client
  disconnects, the timeout passes, or this task is cancelled."""
  futures = [asyncio.wrap_future(j.future) for j in jobs]
  deadline = time.monotonic() + timeout_s
  ok = False
  try:
    while True:
      left = deadline - time.monotonic()
      if left <= 0:
        raise ApiError(504, f"the request took longer than {timeout_s:g} s (queue + model)",
                       code="timeout")
      done, pending = await asyncio.wait(futures, timeout=min(0.25, left))
      if not pending:
        ok = True
        return [f.result() for f in futures]
      if request is not None and await request.is_disconnected():
        raise ClientGone()
  finally:
    if not ok:
      for j in jobs:
        j.cancel()


def _submit(request: Request, group, payloads):
  try:
    return request.app.state.batcher.submit(group, payloads)
  except batcher_lib.QueueFull as e:
    raise ApiError(503, f"the server is busy: {e}; retry shortly", code="queue_full",
                   headers={"retry-after": str(request.app.state.retry_after_s)}) from None


def _model_id(engine: Engine) -> str:
  return "synergen-jax"


async def chat_completions(request: Request):
  state = request.app.state
  engine, limits = state.engine, state.limits
  req = parse_chat(await read_json(request), engine, limits)

  def prepare():
    image = None
    if req["image_url"] is not None:
      try:
        image = images_lib.decode(images_lib.data_url_bytes(req["image_url"]),
                                  limits.max_image_pixels)
      except images_lib.BadImage as e:
        raise ApiError(400, str(e), "messages",
                       "image_too_large" if e.too_large else "invalid_image") from None
    try:
      return engine.answer_prompt(image, req["turns"], req["max_tokens"])
    except InputError as e:
      raise ApiError(400, str(e), "messages", "context_length_exceeded") from None

  with state.batcher.expecting():
    example = await anyio.to_thread.run_sync(prepare)
    group = ("answer", req["temperature"], req["top_p"], engine.steps_bucket(req["max_tokens"]))
    jobs = _submit(request, group, [dict(example=example, seed=req["seed"],
                                         max_tokens=req["max_tokens"])])
  cid, created, model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), _model_id(engine)
  tok = engine.session.tokenizer
  prompt_tokens = int(len(example["tokens"]))

  def usage(n):
    return {"prompt_tokens": prompt_tokens, "completion_tokens": n,
            "total_tokens": prompt_tokens + n}

  if not req["stream"]:
    try:
      (answer,) = await wait_for_jobs(request, jobs, limits.request_timeout_s)
    except ClientGone:
      return Response(status_code=499)
    return JSONResponse({
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": tok.decode(answer.tokens).strip()},
                     "finish_reason": answer.finish_reason}],
        "usage": usage(len(answer.tokens))})

  def chunk(delta, finish=None, **extra):
    return "data: " + json.dumps({
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}) + "\n\n"

  async def events():
    yield chunk({"role": "assistant", "content": ""})
    try:
      (answer,) = await wait_for_jobs(None, jobs, limits.request_timeout_s)
    except ApiError as e:
      yield "data: " + json.dumps(error_body(e.status, e.message, e.param, e.code)) + "\n\n"
      yield "data: [DONE]\n\n"
      return
    except Exception:  # noqa: BLE001
      yield "data: " + json.dumps(error_body(500, "the model call failed")) + "\n\n"
      yield "data: [DONE]\n\n"
      return
    final = tok.decode(answer.tokens).strip()
    sent = ""
    for k in range(1, len(answer.tokens) + 1):  # one event per token
      text = tok.decode(answer.tokens[:k]).strip() if k < len(answer.tokens) else final
      if text.endswith("\ufffd") and k < len(answer.tokens):
        continue  # an incomplete UTF-8 character: wait for its next byte
      if text.startswith(sent) and len(text) > len(sent):
        yield chunk({"content": text[len(sent):]})
        sent = text
    if final.startswith(sent) and len(final) > len(sent):
      yield chunk({"content": final[len(sent):]})
    yield chunk({}, answer.finish_reason)
    if req["include_usage"]:
      yield "data: " + json.dumps({"id": cid, "object": "chat.completion.chunk",
                                   "created": created, "model": model, "choices": [],
                                   "usage": usage(len(answer.tokens))}) + "\n\n"
    yield "data: [DONE]\n\n"

  # A client that goes away cancels `events` (Starlette watches for the disconnect);
  # wait_for_jobs then cancels the job.
  return StreamingResponse(events(), media_type="text/event-stream",
                           headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def image_generations(request: Request):
  state = request.app.state
  engine, limits = state.engine, state.limits
  req = parse_images(await read_json(request), engine, limits)

  def prepare():
    try:
      return engine.generation_prompt(req["prompt"])
    except InputError as e:
      raise ApiError(400, str(e), "prompt", "context_length_exceeded") from None

  with state.batcher.expecting():
    example = await anyio.to_thread.run_sync(prepare)
    jobs = _submit(request, ("generate", req["temperature"]),
                   [dict(example=example, seed=req["seed"] + i, cfg_scale=req["cfg_scale"])
                    for i in range(req["n"])])
  try:
    images = await wait_for_jobs(request, jobs, limits.request_timeout_s)
  except ClientGone:
    return Response(status_code=499)
  data = await anyio.to_thread.run_sync(
      lambda: [{"b64_json": images_lib.png_base64(im, req["size"])} for im in images])
  return JSONResponse({"created": int(time.time()), "data": data,
                       "seed": req["seed"]})


async def models(request: Request):
  return JSONResponse({"object": "list", "data": [
      {"id": _model_id(request.app.state.engine), "object": "model",
       "created": request.app.state.started, "owned_by": "synergen-jax"}]})


async def healthz(request: Request):
  s = request.app.state
  b = s.batcher
  return JSONResponse({
      "status": "ok", "model": _model_id(s.engine), **s.engine.describe(),
      "queue": {"pending": b.pending(), "max": b.max_queue},
      "batches": dict(b.stats), "batch_sizes": {str(k): v for k, v in
                                                sorted(b.batch_sizes.items())},
      "limits": dataclasses.asdict(s.limits), "warming_up": s.warming_up})


def _static_route(path: str):
  name, ctype = _STATIC_FILES[path]
  with open(os.path.join(STATIC, name), "rb") as f:
    data = f.read()  # read once at start-up; requests never name a file

  async def serve(request: Request):
    return Response(data, media_type=ctype.split(";")[0],
                    headers={"content-type": ctype, "content-security-policy": _CSP,
                             "x-content-type-options": "nosniff",
                             "cache-control": "no-cache"})
  return serve


async def _api_error(request, exc: ApiError):
  return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)


async def _http_error(request, exc: HTTPException):
  message = {404: f"no such endpoint: {request.url.path}",
             405: f"{request.method} is not allowed on {request.url.path}"}.get(
                 exc.status_code, str(exc.detail))
  return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _too_large(request, exc):
  return error_response(413, f"the request body is over the limit of "
                        f"{request.app.state.limits.max_body_bytes:,} bytes",
                        headers={"connection": "close"})


async def _internal(request, exc):
  return error_response(500, f"internal error: {type(exc).__name__}")


def create_app(engine: Engine, limits: Limits | None = None, api_key: str | None = None,
               max_queue: int = 64, window_s: float = 0.01, warmup: bool = False):
  """The ASGI app (wrapped in the key / body-size guard). app.state.batcher is the
  batcher; call `app.state.close()` to stop it."""
  limits = limits or Limits()
  routes = [Route(p, _static_route(p), methods=["GET", "HEAD"]) for p in _STATIC_FILES]
  routes += [
      Route("/healthz", healthz, methods=["GET"]),
      Route("/v1/models", models, methods=["GET"]),
      Route("/v1/chat/completions", chat_completions, methods=["POST"]),
      Route("/v1/images/generations", image_generations, methods=["POST"]),
  ]
  app = Starlette(routes=routes, exception_handlers={
      ApiError: _api_error, HTTPException: _http_error, BodyTooLarge: _too_large,
      ClientDisconnect: lambda r, e: Response(status_code=499), Exception: _internal})
  app.state.engine, app.state.limits = engine, limits
  app.state.started = int(time.time())
  app.state.retry_after_s = 1
  app.state.warming_up = False
  app.state.batcher = batcher_lib.Batcher(make_runner(engine), engine.max_batch, window_s,
                                          max_queue)
  if warmup:
    app.state.warming_up = True

    def _warm():
      try:
        engine.warmup()
      finally:
        app.state.warming_up = False
    # On the worker: queued requests wait for it instead of compiling beside it.
    app.state.batcher.run_first(_warm)
  app.state.close = app.state.batcher.close
  guarded = Guard(app, api_key, limits.max_body_bytes)
  guarded.state = app.state
  return guarded
