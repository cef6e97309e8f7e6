"""Serve a checkpoint: a local web page and OpenAI-compatible endpoints, batched.

  python -m synergen_jax.serve --workdir=W [--stage=S] [--host=127.0.0.1] [--port=8000]

server.py   the process: the model loaded once, the app on uvicorn until SIGTERM
engine.py   the loaded model and its batched, bucketed answer / generate calls
batcher.py  the bounded queue and the worker that gathers requests into batches
app.py      the ASGI app: page, /v1/chat/completions, /v1/images/generations, limits
images.py   data URLs -> RGB arrays (pixel limit), PNG out
static/     the page (HTML + JS + CSS, nothing from the internet)
See docs/SERVING.md.
"""
