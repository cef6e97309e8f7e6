"""The server process (`python -m synergen_jax.serve`): the checkpoint loaded once, the
ASGI app (`app.create_app`) on a socket bound before uvicorn starts (so the address,
also of --port=0, is known and printed at once), run until SIGTERM or Ctrl-C: requests
in flight finish and the process ends with status 0.
"""

import signal
import socket
import sys

import uvicorn

from synergen_jax.serve.app import Limits, create_app
from synergen_jax.serve.engine import Engine


def serve(workdir: str, stage: str | None, step: int | None, vq_dir: str | None, *,
          host: str, port: int, api_key: str | None, limits: Limits, max_batch: int,
          max_new_tokens: int, max_queue: int, window_s: float, warmup: bool) -> None:
  """Loads the engine (bad input raises ValueError / FileNotFoundError) and serves."""
  engine = Engine.load(workdir, stage, step, vq_dir, max_batch=max_batch,
                       max_new_tokens=max_new_tokens)
  asgi = create_app(engine, limits, api_key=api_key, max_queue=max_queue, window_s=window_s,
                    warmup=warmup)
  sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((host, port))
  sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
  bound_host, bound_port = sock.getsockname()[:2]
  print(f"serving {engine.session.source} on http://{bound_host}:{bound_port}/"
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
