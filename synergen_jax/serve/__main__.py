"""python -m synergen_jax.serve --workdir=W [--stage=S] [--host=127.0.0.1] [--port=8000]

Loads the checkpoint once and serves the page at / and the OpenAI-compatible API under
/v1 (docs/SERVING.md). SIGTERM / Ctrl-C stop it cleanly (requests in flight finish).
"""

import os

from absl import app
from absl import flags

from synergen_jax import cli

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


@cli.command
def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  # Keeps --help fast (no JAX) and the serve extra (starlette, uvicorn) optional.
  from synergen_jax.serve import app as serve_app, server
  limits = serve_app.Limits(max_body_bytes=_MAX_BODY.value, max_image_pixels=_MAX_PIXELS.value,
                            request_timeout_s=_TIMEOUT.value)
  server.serve(_WORKDIR.value, _STAGE.value, _STEP.value, _VQ_DIR.value, host=_HOST.value,
               port=_PORT.value, api_key=_API_KEY.value or os.environ.get("SYNERGEN_API_KEY")
               or None, limits=limits, max_batch=_MAX_BATCH.value,
               max_new_tokens=_MAX_TOKENS.value, max_queue=_MAX_QUEUE.value,
               window_s=_WINDOW_MS.value / 1000, warmup=_WARMUP.value)


def run():
  cli.run(main)


if __name__ == "__main__":
  run()
