"""python -m synergen_jax.serve --workdir=W [--stage=S] [--host=127.0.0.1] [--port=8000]

Loads the checkpoint once and serves the page at / and the OpenAI-compatible API under
/v1 (docs/SERVING.md). SIGTERM / Ctrl-C stop it cleanly (requests in flight finish).
"""

import os
import signal
import sys

from absl import app
from absl import flags
from absl import logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_STAGE = flags.DEFINE_string("stage", None, "Stage (default: the newest).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of --stage.")
_VQ_DIR = flags.DEFINE_string("vq_dir", None, "VQ tokenizer workdir (default: "
                              "config.vq_tokenizer).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to bind (default: loopback only).")
_PORT = flags.DEFINE_integer("port", 8000, "Port (0: any free one, printed).")
_API_KEY = flags.DEFINE_string("api_key", None, "Require this key on every endpoint "
                               "(Authorization: Bearer KEY). Default: $SYNERGEN_API_KEY.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 8, "Requests per model call.")
_WINDOW_MS = flags.DEFINE_float("batch_window_ms", 10.0, "How long the oldest request "
                                "waits for others to join its batch.")
_MAX_QUEUE = flags.DEFINE_integer("max_queue", 64, "Queued requests (images count one "
                                  "each) before new ones get 503.")
_TIMEOUT = flags.DEFINE_float("request_timeout", 120.0, "Seconds a request may wait + run.")
_MAX_TOKENS = flags.DEFINE_integer("max_new_tokens", 64, "Longest answer (max_tokens cap).")
_MAX_BODY = flags.DEFINE_integer("max_body_bytes", 8 << 20, "Request body limit.")
_MAX_PIXELS = flags.DEFINE_integer("max_image_pixels", 4096 * 4096, "Decoded image limit.")
_WARMUP = flags.DEFINE_bool("warmup", True, "Compile every batch bucket at start-up.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  import socket

  import uvicorn

  from synergen_jax.inference.session import InputError
  from synergen_jax.serve.app import Limits, create_app
  from synergen_jax.serve.engine import Engine

  try:
    engine = Engine.load(_WORKDIR.value, _STAGE.value, _STEP.value, _VQ_DIR.value,
                         max_batch=_MAX_BATCH.value, max_new_tokens=_MAX_TOKENS.value)
  except (InputError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  limits = Limits(max_body_bytes=_MAX_BODY.value, max_image_pixels=_MAX_PIXELS.value,
                  request_timeout_s=_TIMEOUT.value)
  api_key = _API_KEY.value or os.environ.get("SYNERGEN_API_KEY") or None
  asgi = create_app(engine, limits, api_key=api_key, max_queue=_MAX_QUEUE.value,
                    window_s=_WINDOW_MS.value / 1000, warmup=_WARMUP.value)
  sock = socket.socket(socket.AF_INET6 if ":" in _HOST.value else socket.AF_INET)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((_HOST.value, _PORT.value))
  sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
  host, port = sock.getsockname()[:2]
  print(f"serving {engine.session.source} on http://{host}:{port}/"
        + (" (API key required)" if api_key else ""), file=sys.stderr, flush=True)
  # uvicorn stops on SIGTERM / SIGINT, then re-raises the signal to the handler that was
  # there before it: make that one a no-op, so the process ends normally (status 0).
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: None)
  server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", timeout_graceful_shutdown=10))
  try:
    server.run(sockets=[sock])
  finally:
    asgi.state.close()
  print("stopped", file=sys.stderr, flush=True)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
