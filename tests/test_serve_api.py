"""The server (synergen_jax.serve) on loopback with the tiny model: every endpoint,
streaming, every bad input (status + message, then a good request still answered),
batching (concurrent requests each get what they get alone), 503 when the queue is full,
disconnects and timeouts freeing their slot, the API key.

The server runs in this process (uvicorn on a thread, a socket bound to 127.0.0.1:0);
`serve_tiny` and `running_server` are shared with tests/test_serve_browser.py.
"""

import base64
import contextlib
import io
import json
import socket
import threading
import time

import jax
import numpy as np
import PIL.Image
import pytest
import requests

from data_pipelines.scenes import render

T = 120  # generous per-request timeout (s): the box may be loaded

_ENGINES = {}


def serve_tiny(tiny_run, tmp_path_factory):
  """One Engine per tiny workdir (its compiled functions shared by the test modules):
  batches of up to 4 rows, answers up to 8 tokens (one decode-steps bucket)."""
  key = tiny_run["straight"]
  if key not in _ENGINES:
    from synergen_jax.model.vq import config as vq_config
    from synergen_jax.model.vq.tokenizer import VQTokenizer
    from synergen_jax.serve.engine import Engine
    from synergen_jax.vq_training import vq_checkpoint
    vq_dir = str(tmp_path_factory.mktemp("serve_vq"))
    cfg = vq_config.tiny_config()
    vq_checkpoint.write_imported(vq_dir, cfg, VQTokenizer(cfg).init(jax.random.key(0), 32))
    # One rows bucket (a request alone runs in 4 rows too): one compile per function.
    _ENGINES[key] = (Engine.load(key, vq_dir=vq_dir, max_batch=4, max_new_tokens=8,
                                 buckets=(4,)), vq_dir)
  return _ENGINES[key]


@contextlib.contextmanager
def running_server(engine, **kwargs):
  """Yields (base_url, asgi app) of a server on 127.0.0.1 (a free port)."""
  import uvicorn
  from synergen_jax.serve.app import create_app
  asgi = create_app(engine, **kwargs)
  sock = socket.socket()
  sock.bind(("127.0.0.1", 0))
  port = sock.getsockname()[1]
  server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off"))
  thread = threading.Thread(target=server.run, kwargs=dict(sockets=[sock]), daemon=True)
  thread.start()
  url = f"http://127.0.0.1:{port}"
  deadline = time.monotonic() + 60
  while not server.started:
    assert time.monotonic() < deadline, "the server did not start"
    time.sleep(0.05)
  try:
    yield url, asgi
  finally:
    server.should_exit = True
    thread.join(30)
    asgi.state.close()
    sock.close()


def png_bytes(image, fmt="PNG", **kw) -> bytes:
  buf = io.BytesIO()
  (image if isinstance(image, PIL.Image.Image) else PIL.Image.fromarray(image)).save(
      buf, format=fmt, **kw)
  return buf.getvalue()


def data_url(data: bytes, mime="image/png") -> str:
  return f"data:{mime};base64," + base64.b64encode(data).decode()


def scene(seed=0) -> np.ndarray:
  return render.render_scene(seed, 64, "validation")[0]


def chat_body(question="What color is the circle?", image=None, **kw):
  content = [{"type": "text", "text": question}]
  if image is not None:
    content.insert(0, {"type": "image_url", "image_url": {"url": data_url(png_bytes(image))}})
  return {"model": "synergen-jax", "messages": [{"role": "user", "content": content}],
          "max_tokens": 8, **kw}


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory):
  return serve_tiny(tiny_run, tmp_path_factory)[0]


@pytest.fixture(scope="module")
def server(engine):
  from synergen_jax.serve.app import Limits
  limits = Limits(max_body_bytes=256 << 10, max_image_pixels=1 << 20, max_prompt_chars=4000,
                  request_timeout_s=T)
  with running_server(engine, limits=limits, max_queue=8, window_s=0.02,
                      warmup=True) as (url, asgi):
    yield url, asgi


def post(url, path, body, **kw):
  return requests.post(url + path, json=body, timeout=T, **kw)


def wait_until(predicate, what, timeout=60):
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.02)


def assert_good_request(url):
  """A real model request still answered (after a bad one)."""
  r = post(url, "/v1/chat/completions", chat_body(image=scene(1), max_tokens=4))
  assert r.status_code == 200, r.text
  assert isinstance(r.json()["choices"][0]["message"]["content"], str)


# ---- endpoints -------------------------------------------------------------------------
def test_page_models_healthz_and_unknown_paths(server):
  url, _ = server
  page = requests.get(url + "/", timeout=T)
  assert page.status_code == 200 and "text/html" in page.headers["content-type"]
  assert '<script src="/static/app.js"' in page.text and "http" not in page.text.replace(
      'content="width', "")  # nothing from the internet
  assert "default-src 'self'" in page.headers["content-security-policy"]
  for path, ctype in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
    r = requests.get(url + path, timeout=T)
    assert r.status_code == 200 and ctype in r.headers["content-type"]
  models = requests.get(url + "/v1/models", timeout=T).json()
  assert models["object"] == "list" and models["data"][0]["id"] == "synergen-jax"
  wait_until(lambda: not requests.get(url + "/healthz", timeout=T).json()["warming_up"],
             "the start-up compiles", timeout=T)
  health = requests.get(url + "/healthz", timeout=T).json()
  assert health["status"] == "ok" and health["image_size"] == 32
  assert health["queue"] == {"pending": 0, "max": 8}
  for path in ("/static/../../etc/passwd", "/static/x.js", "/nope", "/v1/completions"):
    r = requests.get(url + path, timeout=T)
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]["message"]
  r = requests.get(url + "/v1/chat/completions", timeout=T)
  assert r.status_code == 405 and "not allowed" in r.json()["error"]["message"]


def test_chat_answers_about_an_image_and_several_turns(server):
  url, _ = server
  r = post(url, "/v1/chat/completions", chat_body(image=scene(0)))
  assert r.status_code == 200, r.text
  body = r.json()
  assert body["object"] == "chat.completion" and body["model"] == "synergen-jax"
  choice = body["choices"][0]
  assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in (
      "stop", "length")
  assert body["usage"]["prompt_tokens"] > 0
  assert body["usage"]["completion_tokens"] <= 8
  first = choice["message"]["content"]
  again = post(url, "/v1/chat/completions", chat_body(image=scene(0))).json()
  assert again["choices"][0]["message"]["content"] == first  # greedy: deterministic
  turns = chat_body(image=scene(0))
  turns["messages"] += [{"role": "assistant", "content": first or "red"},
                        {"role": "user", "content": "And how many objects are there?"}]
  r = post(url, "/v1/chat/completions", turns)
  assert r.status_code == 200, r.text
  # An image in a later turn, and a text-only conversation.
  later = {"messages": [{"role": "system", "content": "ignored"},
                        {"role": "user", "content": "Hi."},
                        {"role": "assistant", "content": "Hello."},
                        chat_body(image=scene(2))["messages"][0]], "max_tokens": 4}
  assert post(url, "/v1/chat/completions", later).status_code == 200
  text_only = {"messages": [{"role": "user", "content": "Say something."}], "max_tokens": 4}
  assert post(url, "/v1/chat/completions", text_only).status_code == 200


def parse_sse(text):
  events = [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]
  assert events[-1] == "[DONE]"
  return [json.loads(e) for e in events[:-1]]


def test_streaming_sends_tokens_as_server_sent_events(server):
  url, _ = server
  body = chat_body(image=scene(3), max_tokens=8)
  whole = post(url, "/v1/chat/completions", body).json()
  r = post(url, "/v1/chat/completions", dict(body, stream=True,
                                             stream_options={"include_usage": True}))
  assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
  events = parse_sse(r.text)
  assert events[0]["choices"][0]["delta"]["role"] == "assistant"
  assert all(e["object"] == "chat.completion.chunk" for e in events)
  deltas = [e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]]
  assert "".join(deltas) == whole["choices"][0]["message"]["content"]
  assert len([d for d in deltas if d]) >= min(2, len(whole["choices"][0]["message"]["content"]))
  finals = [e["choices"][0]["finish_reason"] for e in events if e["choices"]]
  assert finals[-1] == whole["choices"][0]["finish_reason"]
  assert events[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


def test_images_generation_b64_png_seeded_and_sized(server):
  url, _ = server
  body = {"prompt": "A red circle on a dark background.", "n": 2, "seed": 5,
          "response_format": "b64_json"}
  r = post(url, "/v1/images/generations", body)
  assert r.status_code == 200, r.text
  data = r.json()["data"]
  assert len(data) == 2 and isinstance(r.json()["created"], int)
  images = [np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(d["b64_json"]))))
            for d in data]
  assert images[0].shape == (32, 32, 3)
  again = post(url, "/v1/images/generations", body).json()["data"]
  assert [d["b64_json"] for d in again] == [d["b64_json"] for d in data]
  big = post(url, "/v1/images/generations", dict(body, n=1, size="64x64")).json()["data"][0]
  big = np.asarray(PIL.Image.open(io.BytesIO(base64.b64decode(big["b64_json"]))))
  assert big.shape == (64, 64, 3)
  np.testing.assert_array_equal(big[::2, ::2], images[0])  # nearest upscale of the same


def test_openai_client_works_unchanged(server):
  openai = pytest.importorskip("openai")
  url, _ = server
  client = openai.OpenAI(base_url=url + "/v1", api_key="unused", timeout=T, max_retries=0)
  assert [m.id for m in client.models.list()] == ["synergen-jax"]
  body = chat_body(image=scene(4))
  out = client.chat.completions.create(model="synergen-jax", messages=body["messages"],
                                       max_tokens=8)
  text = out.choices[0].message.content
  stream = client.chat.completions.create(model="synergen-jax", messages=body["messages"],
                                          max_tokens=8, stream=True)
  assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text
  img = client.images.generate(model="synergen-jax", prompt="A blue square.", n=1,
                               size="32x32", response_format="b64_json")
  assert PIL.Image.open(io.BytesIO(base64.b64decode(img.data[0].b64_json))).size == (32, 32)


# ---- bad input -------------------------------------------------------------------------
def _bomb() -> bytes:
  return png_bytes(PIL.Image.new("L", (6000, 6000)), optimize=True)  # 36 MP, ~35 kB


def _truncated() -> bytes:
  return png_bytes(scene(0))[:-20]  # the last data chunk's end and IEND missing


def _with_image(data: bytes, mime="image/png"):
  return chat_body(image=None) | {"messages": [{"role": "user", "content": [
      {"type": "image_url", "image_url": {"url": data_url(data, mime)}},
      {"type": "text", "text": "What color is the circle?"}]}]}


_BAD = {  # name: (path, body (dict = JSON), status, message fragment)
    "not an image": ("/v1/chat/completions", lambda: _with_image(b"hello, world"), 400,
                     "not an image"),
    "truncated image": ("/v1/chat/completions", lambda: _with_image(_truncated()), 400,
                        "truncated"),
    "decompression bomb": ("/v1/chat/completions", lambda: _with_image(_bomb()), 400,
                           "6000 x 6000 = 36,000,000 pixels; the limit is 1,048,576"),
    "not base64": ("/v1/chat/completions",
                   lambda: _with_image(b"") | {"messages": [{"role": "user", "content": [
                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}},
                       {"type": "text", "text": "q"}]}]}, 400, "not valid base64"),
    "empty image": ("/v1/chat/completions", lambda: _with_image(b""), 400, "empty"),
    "remote URL": ("/v1/chat/completions",
                   lambda: chat_body() | {"messages": [{"role": "user", "content": [
                       {"type": "image_url", "image_url": {"url": "http://example.com/x.png"}},
                       {"type": "text", "text": "q"}]}]}, 400, "'http' URLs are not fetched"),
    "file path": ("/v1/chat/completions",
                  lambda: chat_body() | {"messages": [{"role": "user", "content": [
                      {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}},
                      {"type": "text", "text": "q"}]}]}, 400, "'file' URLs are not fetched"),
    "two images": ("/v1/chat/completions",
                   lambda: chat_body() | {"messages": [
                       chat_body(image=scene(0))["messages"][0],
                       {"role": "assistant", "content": "red"},
                       chat_body(image=scene(1))["messages"][0]]}, 400, "the model takes one"),
    "prompt over the context": ("/v1/chat/completions",
                                lambda: chat_body("why " * 700, image=scene(0)), 400,
                                "the model's context is 128 tokens"),
    "prompt over the character limit": ("/v1/chat/completions",
                                        lambda: chat_body("x" * 4001), 400,
                                        "4,001 characters; the limit is 4,000"),
    "conversation over the character limit": (
        "/v1/chat/completions",
        lambda: {"messages": [{"role": "user", "content": "x" * 2500},
                              {"role": "assistant", "content": "y"},
                              {"role": "user", "content": "z" * 2500}]}, 400,
        "the conversation is 5,001 characters; the limit is 4,000"),
    "generation prompt over the context": ("/v1/images/generations",
                                           lambda: {"prompt": "red " * 300}, 400,
                                           "the model's context is 128 tokens"),
    "empty generation prompt": ("/v1/images/generations", lambda: {"prompt": "  "}, 400,
                                "prompt must be a non-empty string"),
    "n = 0": ("/v1/images/generations", lambda: {"prompt": "a", "n": 0}, 400,
              "n must be an integer from 1 to 4, got 0"),
    "n = 5": ("/v1/images/generations", lambda: {"prompt": "a", "n": 5}, 400,
              "n must be an integer from 1 to 4, got 5"),
    "chat n = 2": ("/v1/chat/completions", lambda: chat_body() | {"n": 2}, 400,
                   "n must be an integer from 1 to 1"),
    "max_tokens = 0": ("/v1/chat/completions", lambda: chat_body(max_tokens=0), 400,
                       "max_tokens must be an integer from 1 to 8, got 0"),
    "max_tokens too large": ("/v1/chat/completions", lambda: chat_body(max_tokens=10**9), 400,
                             "max_tokens must be an integer from 1 to 8"),
    "max_tokens not a number": ("/v1/chat/completions", lambda: chat_body(max_tokens="8"),
                                400, "max_tokens must be an integer"),
    "temperature < 0": ("/v1/chat/completions", lambda: chat_body(temperature=-1), 400,
                        "temperature must be a number >= 0.0"),
    "top_p = 0": ("/v1/chat/completions", lambda: chat_body(top_p=0), 400,
                  "top_p must be a number > 0.0 and <= 1.0, got 0"),
    "negative seed": ("/v1/chat/completions", lambda: chat_body(seed=-3), 400,
                      "seed must be an integer from 0 to"),
    "cfg_scale too large": ("/v1/images/generations",
                            lambda: {"prompt": "a", "cfg_scale": 1e9}, 400,
                            "cfg_scale must be a number >= 0.0 and <= 50.0"),
    "bad size": ("/v1/images/generations", lambda: {"prompt": "a", "size": "1024x768"}, 400,
                 "size must be square"),
    "url response format": ("/v1/images/generations",
                            lambda: {"prompt": "a", "response_format": "url"}, 400,
                            "response_format must be 'b64_json'"),
    "unknown field": ("/v1/chat/completions", lambda: chat_body() | {"frequency_penaltyy": 1},
                      400, "unknown field 'frequency_penaltyy'"),
    "unknown image field": ("/v1/images/generations", lambda: {"prompt": "a", "style": "x"},
                            400, "unknown field 'style'"),
    "unknown message field": ("/v1/chat/completions",
                              lambda: {"messages": [{"role": "user", "content": "q",
                                                     "extra": 1}]}, 400,
                              "unknown field messages[0].'extra'"),
    "bad role": ("/v1/chat/completions",
                 lambda: {"messages": [{"role": "robot", "content": "q"}]}, 400,
                 "role must be user, assistant or system"),
    "no messages": ("/v1/chat/completions", lambda: {"messages": []}, 400,
                    "messages must be a non-empty list"),
    "last message not from the user": ("/v1/chat/completions",
                                       lambda: {"messages": [{"role": "user", "content": "q"},
                                                             {"role": "assistant",
                                                              "content": "a"}]}, 400,
                                       "the last message must be a user message"),
    "malformed JSON": ("/v1/chat/completions", b'{"messages": [', 400, "not valid JSON"),
    "deeply nested JSON": ("/v1/chat/completions", b"[" * 100000 + b"]" * 100000, 400,
                           "not valid JSON"),
    "JSON not an object": ("/v1/images/generations", b'["a"]', 400,
                           "the body must be a JSON object"),
}


@pytest.mark.parametrize("name", sorted(_BAD))
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(server, name):
  url, _ = server
  path, body, status, fragment = _BAD[name]
  body = body() if callable(body) else body
  if isinstance(body, bytes):
    r = requests.post(url + path, data=body, headers={"content-type": "application/json"},
                      timeout=T)
  else:
    r = post(url, path, body)
  assert r.status_code == status, r.text
  error = r.json()["error"]
  assert fragment in error["message"], error
  assert error["type"] == "invalid_request_error"
  assert_good_request(url)


@pytest.mark.parametrize("what", ["1x1 RGB", "7x300 gray", "RGBA", "palette", "16-bit",
                                  "CMYK JPEG", "1000x700 JPEG", "animated GIF"])
def test_images_of_any_size_and_mode_are_answered(server, what):
  url, _ = server
  rgb = scene(0)
  image, fmt, mime = {
      "1x1 RGB": (PIL.Image.new("RGB", (1, 1), (200, 10, 10)), "PNG", "image/png"),
      "7x300 gray": (PIL.Image.new("L", (7, 300), 90), "PNG", "image/png"),
      "RGBA": (PIL.Image.fromarray(rgb).convert("RGBA"), "PNG", "image/png"),
      "palette": (PIL.Image.fromarray(rgb).convert("P"), "PNG", "image/png"),
      "16-bit": (PIL.Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG",
                 "image/png"),
      "CMYK JPEG": (PIL.Image.fromarray(rgb).convert("CMYK"), "JPEG", "image/jpeg"),
      "1000x700 JPEG": (PIL.Image.fromarray(rgb).resize((1000, 700)), "JPEG", "image/jpeg"),
      "animated GIF": (PIL.Image.fromarray(rgb).convert("P"), "GIF", "image/gif"),
  }[what]
  kw = {"save_all": True, "append_images": [image.copy()]} if what == "animated GIF" else {}
  r = post(url, "/v1/chat/completions", _with_image(png_bytes(image, fmt, **kw), mime))
  assert r.status_code == 200, r.text


def test_wrong_content_type_is_415(server):
  url, _ = server
  for ctype in ("text/plain", "multipart/form-data; boundary=x", None):
    headers = {"content-type": ctype} if ctype else {}
    r = requests.post(url + "/v1/chat/completions", data=json.dumps(chat_body()).encode(),
                      headers=headers, timeout=T)
    assert r.status_code == 415, r.text
    assert "Content-Type must be application/json" in r.json()["error"]["message"]
  assert_good_request(url)


def _raw_exchange(url, head: bytes, chunks, timeout=T) -> bytes:
  """Sends `head` then `chunks` on a raw socket, tolerating the server closing while we
  write (it may answer before reading the body), and returns everything it sent back."""
  host, port = url.rsplit("/", 1)[-1].split(":")
  with socket.create_connection((host, int(port)), timeout=timeout) as s:
    s.settimeout(timeout)
    try:
      s.sendall(head)
      for c in chunks:
        s.sendall(c)
    except (BrokenPipeError, ConnectionResetError):
      pass
    out = b""
    try:
      while True:
        data = s.recv(65536)
        if not data:
          break
        out += data
    except ConnectionResetError:
      pass
  return out


def test_body_over_the_byte_limit_is_413_before_it_is_read(server):
  url, _ = server
  host = url.split("//")[1]
  # Declared size over the limit (256 KiB): refused from the headers, body never read.
  head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
          f"Content-Type: application/json\r\nContent-Length: {50 << 20}\r\n\r\n").encode()
  out = _raw_exchange(url, head, [b'{"messages": "' + b"x" * 1000])
  assert out.startswith(b"HTTP/1.1 413"), out[:200]
  assert b"the request body is 52,428,800 bytes; the limit is 262,144" in out
  # Chunked, no Content-Length: counted while read, refused when it crosses the limit.
  head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
          f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
  chunk = b"x" * 65536
  body = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 8 + [b"0\r\n\r\n"]
  out = _raw_exchange(url, head, body)
  assert out.startswith(b"HTTP/1.1 413"), out[:200]
  assert b"over the limit of 262,144 bytes" in out
  # Through an ordinary client as well.
  r = requests.post(url + "/v1/images/generations", data=b"x" * (300 << 10),
                    headers={"content-type": "application/json"}, timeout=T)
  assert r.status_code == 413
  assert_good_request(url)


# ---- batching, queue, disconnects, timeouts -------------------------------------------
def _in_threads(fns):
  out = [None] * len(fns)

  def run(i):
    out[i] = fns[i]()

  threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
  for t in threads:
    t.start()
  return threads, out


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server):
  url, asgi = server
  batcher = asgi.state.batcher
  chats = [chat_body(q, image=scene(i), max_tokens=8) for i, q in enumerate(
      ["What color is the circle?", "How many objects are there?", "What shape is red?",
       "Where is the square?"])]
  gens = [{"prompt": p, "seed": 10 + i, "cfg_scale": 3.0 + i} for i, p in enumerate(
      ["A red circle.", "A blue square.", "Two green triangles.", "A yellow star."])]
  alone_chat = [post(url, "/v1/chat/completions", b).json()["choices"][0]["message"]["content"]
                for b in chats]
  alone_gen = [post(url, "/v1/images/generations", b).json()["data"][0]["b64_json"]
               for b in gens]
  before = batcher.batch_sizes[4]
  with batcher.hold():  # all 8 queue up, then run as one batch per kind
    threads, out = _in_threads(
        [lambda b=b: post(url, "/v1/chat/completions", b) for b in chats]
        + [lambda b=b: post(url, "/v1/images/generations", b) for b in gens])
    wait_until(lambda: batcher.pending() == 8, "8 queued requests")
  for t in threads:
    t.join(T)
  assert all(r is not None and r.status_code == 200 for r in out), [r and r.text for r in out]
  assert [r.json()["choices"][0]["message"]["content"] for r in out[:4]] == alone_chat
  assert [r.json()["data"][0]["b64_json"] for r in out[4:]] == alone_gen
  assert len(set(alone_gen)) == 4  # each its own seed / prompt
  assert batcher.batch_sizes[4] == before + 2


def test_full_queue_is_503_with_retry_after(server):
  url, asgi = server
  batcher = asgi.state.batcher
  old = batcher.max_queue
  batcher.max_queue = 2
  try:
    with batcher.hold():
      threads, out = _in_threads([lambda: post(url, "/v1/chat/completions",
                                               chat_body(image=scene(0)))] * 2)
      wait_until(lambda: batcher.pending() == 2, "2 queued requests")
      r = post(url, "/v1/chat/completions", chat_body(image=scene(0)))
      assert r.status_code == 503 and r.headers["retry-after"] == "1"
      assert "the server is busy" in r.json()["error"]["message"]
      r = post(url, "/v1/images/generations", {"prompt": "A red circle.", "n": 1})
      assert r.status_code == 503
    for t in threads:
      t.join(T)
    assert [r.status_code for r in out] == [200, 200]
  finally:
    batcher.max_queue = old
  assert_good_request(url)


def test_a_client_that_disconnects_frees_its_slot(server):
  url, asgi = server
  batcher = asgi.state.batcher
  host = url.split("//")[1]
  for stream in (False, True):
    body = json.dumps(chat_body(image=scene(0), stream=stream)).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with batcher.hold():
      s = socket.create_connection(tuple(host.split(":")), timeout=T)
      s.sendall(head + body)
      wait_until(lambda: batcher.pending() == 1, "the queued request")
      s.close()
      wait_until(lambda: batcher.pending() == 0, "the slot to be freed", timeout=30)
  assert_good_request(url)


def test_a_request_past_its_timeout_is_504_and_frees_its_slot(server):
  url, asgi = server
  limits, batcher = asgi.state.limits, asgi.state.batcher
  with batcher.hold():
    limits.request_timeout_s = 0.5
    try:
      r = post(url, "/v1/images/generations", {"prompt": "A red circle.", "n": 2})
    finally:
      limits.request_timeout_s = T
    assert r.status_code == 504 and "longer than 0.5 s" in r.json()["error"]["message"]
    assert batcher.pending() == 0
  assert_good_request(url)


# ---- API key ---------------------------------------------------------------------------
def test_api_key_is_checked_on_every_endpoint(engine):
  with running_server(engine, api_key="sekret") as (url, _):
    for method, path in (("GET", "/"), ("GET", "/static/app.js"), ("GET", "/healthz"),
                         ("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                         ("POST", "/v1/images/generations"), ("GET", "/nope")):
      for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "nope"}):
        r = requests.request(method, url + path, json={}, headers=headers, timeout=T)
        assert r.status_code == 401, (path, headers, r.text)
        assert "API key" in r.json()["error"]["message"]
    assert "Basic" in r.headers["www-authenticate"]  # the browser asks for it
    ok = {"authorization": "Bearer sekret"}
    assert requests.get(url + "/v1/models", headers=ok, timeout=T).status_code == 200
    assert requests.get(url + "/", auth=("anyone", "sekret"), timeout=T).status_code == 200
    assert requests.get(url + "/healthz", headers={"x-api-key": "sekret"},
                        timeout=T).status_code == 200
    r = requests.post(url + "/v1/chat/completions", json=chat_body(image=scene(0)),
                      headers=ok, timeout=T)
    assert r.status_code == 200, r.text
