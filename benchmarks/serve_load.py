"""Load test of the server (synergen_jax.serve) on loopback: batching pays, memory stays flat.

  python benchmarks/serve_load.py --workdir=runs/demo [--requests=500] [--gen_requests=500]

Starts `python -m synergen_jax.serve` on 127.0.0.1 (a free port, all batch buckets
compiled at start-up), then runs four phases, each a fixed count of requests (and the
whole run bounded by --time_limit):
  answering  1 client, then --clients (8) concurrent clients
  generation 1 client, then --gen_clients (4) concurrent clients
Each client sends its next request when the last one is answered (keep-alive). Prints
throughput and p50 / p95 latency per phase, the errors (must be 0), the ratios against
one client, the server's peak RSS (VmHWM) after 50 requests and at the end, and the load
average; --out writes the same as JSON. `--model_calls` instead times the batched model
calls alone in-process (ms per call by rows: the ceiling batching can reach here). Targets (issue 28): N clients >= 4x one client's
throughput, p95 <= 3x one client's, 0 errors, peak RSS at the end within 10% of after 50.
"""

import argparse
import base64
import io
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import PIL.Image
import requests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

QUESTIONS = ["What color is the circle?", "How many objects are there?",
             "What shape is on the left?", "Is there a red square?",
             "Where is the triangle?", "What color is the largest object?"]
PROMPTS = ["A red circle on a dark background.", "A small blue square.",
           "Two green triangles.", "A yellow star above a purple cross.",
           "A large white circle.", "Three orange squares."]


def vm_kb(pid: int, field: str) -> int:
  with open(f"/proc/{pid}/status") as f:
    m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
  return int(m.group(1))


def percentile(xs, q):
  return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def scene_urls(n: int, size: int) -> list[str]:
  """n distinct images (the server caches the VQ codes of recent images: each request
  here is a new one, so every request pays its VQ encoding)."""
  from data_pipelines.scenes import render
  base = [render.render_scene(i, size, "validation")[0] for i in range(16)]
  out = []
  for i in range(n):
    image = base[i % 16].copy()
    image[0, 0] = (i % 256, (i // 256) % 256, 7)  # one pixel: a different image
    buf = io.BytesIO()
    PIL.Image.fromarray(image).save(buf, "PNG")
    out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
  return out


class Run:
  def __init__(self, url, pid, deadline):
    self.url, self.pid, self.deadline = url, pid, deadline
    self.served = 0
    self.lock = threading.Lock()
    self.rss_at = {}

  def count(self):
    with self.lock:
      self.served += 1
      for mark in (50, 500):
        if self.served == mark:
          self.rss_at[mark] = vm_kb(self.pid, "VmHWM")

  def phase(self, name, clients, total, make_body, path):
    """`clients` threads share `total` requests; returns the phase's numbers."""
    latencies, errors, lock = [], [], threading.Lock()
    todo = iter(range(total))

    def client():
      s = requests.Session()
      while time.monotonic() < self.deadline:
        with lock:
          i = next(todo, None)
        if i is None:
          return
        t = time.perf_counter()
        try:
          r = s.post(self.url + path, json=make_body(i), timeout=300)
          ok = r.status_code == 200
          if not ok:
            errors.append(f"{r.status_code}: {r.text[:200]}")
        except requests.RequestException as e:
          ok = False
          errors.append(repr(e)[:200])
        with lock:
          if ok:
            latencies.append(time.perf_counter() - t)
        self.count()

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    wall = time.perf_counter() - t0
    res = {"phase": name, "clients": clients, "requests": len(latencies) + len(errors),
           "ok": len(latencies), "errors": len(errors), "wall_s": round(wall, 2),
           "throughput_rps": round(len(latencies) / wall, 2),
           "p50_ms": round(1000 * percentile(latencies, 50), 1),
           "p95_ms": round(1000 * percentile(latencies, 95), 1),
           "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "first_errors": errors[:3]}
    print(json.dumps(res), flush=True)
    return res


def model_calls(args) -> list[dict]:
  """The model calls alone, in this process (no HTTP): ms per batched call by rows, and
  the throughput ceiling batching can give on this machine (rows x t(1) / t(rows))."""
  from data_pipelines.scenes import render
  from synergen_jax.serve.engine import Engine
  engine = Engine.load(args.workdir, args.stage, vq_dir=args.vq_dir, max_batch=args.max_batch)
  image = render.render_scene(0, engine.image_size, "validation")[0]
  answer = engine.answer_prompt(image, [(QUESTIONS[0], None)], args.max_tokens)
  gen = engine.generation_prompt(PROMPTS[0])
  calls = {
      "vq encode (per request)": lambda r: [engine.session.encode_tiles(image)
                                            for _ in range(r)],
      "answer": lambda r: engine.answer_batch([answer] * r, list(range(r)),
                                              [args.max_tokens] * r),
      "generate": lambda r: engine.generate_batch([gen] * r, list(range(r)),
                                                  [engine.default_cfg] * r,
                                                  engine.default_gen_temperature)}
  rows_list = sorted({1, args.gen_clients, args.clients, args.max_batch})
  out = []
  for name, fn in calls.items():
    ms = {}
    for rows in rows_list:
      fn(rows)
      ts = []
      for _ in range(7):
        t = time.perf_counter()
        fn(rows)
        ts.append(time.perf_counter() - t)
      ms[rows] = 1000 * statistics.median(ts)
    row = {"call": name, "ms_by_rows": {r: round(v, 1) for r, v in ms.items()},
           "ceiling_x": {r: round(r * ms[1] / v, 2) for r, v in ms.items()},
           "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)
    out.append(row)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--stage")
  p.add_argument("--vq_dir")
  p.add_argument("--clients", type=int, default=8)
  p.add_argument("--gen_clients", type=int, default=4)
  p.add_argument("--requests", type=int, default=500, help="answering, N-client phase")
  p.add_argument("--gen_requests", type=int, default=500, help="generation, N-client phase")
  p.add_argument("--single_requests", type=int, default=60, help="each one-client phase")
  p.add_argument("--max_tokens", type=int, default=32, help="the API default (warmed up)")
  p.add_argument("--max_batch", type=int, default=8)
  p.add_argument("--batch_window_ms", type=float, default=10.0)
  p.add_argument("--time_limit", type=float, default=1500.0, help="whole run, seconds")
  p.add_argument("--out")
  p.add_argument("--model_calls", action="store_true",
                 help="only time the batched model calls in-process (no server)")
  args = p.parse_args()
  if args.model_calls:
    rows = model_calls(args)
    if args.out:
      with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    return

  cmd = [sys.executable, "-m", "synergen_jax.serve", f"--workdir={args.workdir}",
         "--host=127.0.0.1", "--port=0", f"--max_batch={args.max_batch}",
         f"--batch_window_ms={args.batch_window_ms}", "--max_queue=256", "--warmup"]
  cmd += [f"--stage={args.stage}"] if args.stage else []
  cmd += [f"--vq_dir={args.vq_dir}"] if args.vq_dir else []
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("SYNERGEN_API_KEY", None)
  server = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  try:
    start = time.monotonic()
    url = None
    while url is None:
      line = server.stderr.readline()
      if not line and server.poll() is not None:
        sys.exit(f"the server exited with {server.returncode}")
      m = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
      url = m and m.group(1)
    threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe open
    while True:  # start-up compiles every batch bucket
      try:
        h = requests.get(url + "/healthz", timeout=60).json()
        if not h["warming_up"]:
          break
      except requests.RequestException:
        pass
      time.sleep(0.5)
    ready_s = time.monotonic() - start
    size = h["image_size"]
    print(f"server ready in {ready_s:.0f} s: {h['source']}, image {size}px, "
          f"max_batch {h['max_batch']}, load average {os.getloadavg()}", flush=True)
    images = scene_urls(args.requests + args.single_requests + 64, size)
    run = Run(url, server.pid, time.monotonic() + args.time_limit)

    fresh = itertools.cycle(range(len(images)))  # each request a new image

    def chat(i):
      return {"messages": [{"role": "user", "content": [
          {"type": "image_url", "image_url": {"url": images[next(fresh)]}},
          {"type": "text", "text": QUESTIONS[i % len(QUESTIONS)]}]}],
          "max_tokens": args.max_tokens}

    def gen(i):
      return {"prompt": PROMPTS[i % len(PROMPTS)], "n": 1, "seed": i}

    # Untimed: every path once at every batch size (the server compiled its buckets; this
    # compiles what depends on the input, e.g. the VQ encoder per tile count).
    for c in (1, 2, 4, args.max_batch):
      run.phase(f"warm-up x{c}", c, 2 * c, chat, "/v1/chat/completions")
      run.phase(f"warm-up x{c}", c, 2 * c, gen, "/v1/images/generations")
    run.served = 0
    rss_start = vm_kb(server.pid, "VmHWM")
    phases = [
        run.phase("answer x1", 1, args.single_requests, chat, "/v1/chat/completions"),
        run.phase(f"answer x{args.clients}", args.clients, args.requests, chat,
                  "/v1/chat/completions"),
        run.phase("generate x1", 1, args.single_requests, gen, "/v1/images/generations"),
        run.phase(f"generate x{args.gen_clients}", args.gen_clients, args.gen_requests, gen,
                  "/v1/images/generations"),
    ]
    health = requests.get(url + "/healthz", timeout=60).json()
    rss_end = vm_kb(server.pid, "VmHWM")
  finally:
    server.terminate()
    try:
      server.wait(60)
    except subprocess.TimeoutExpired:
      server.kill()

  def ratios(one, many):
    return {"throughput_x": round(many["throughput_rps"] / one["throughput_rps"], 2),
            "p95_x": round(many["p95_ms"] / one["p95_ms"], 2)}

  answer, generate = ratios(*phases[:2]), ratios(*phases[2:])
  rss50 = run.rss_at.get(50)
  summary = {
      "answer": answer, "generate": generate,
      "errors": sum(p["errors"] for p in phases),
      "requests": sum(p["requests"] for p in phases),
      "peak_rss_mb": {"ready": round(rss_start / 1024, 1),
                      "after_50": rss50 and round(rss50 / 1024, 1),
                      "after_500": run.rss_at.get(500) and round(run.rss_at[500] / 1024, 1),
                      "end": round(rss_end / 1024, 1)},
      "rss_growth_after_50": rss50 and round(rss_end / rss50 - 1, 4),
      "batch_sizes": health["batch_sizes"], "server_ready_s": round(ready_s, 1),
      "load_avg": os.getloadavg(), "phases": phases,
      "targets_met": {
          "answer_throughput_4x": answer["throughput_x"] >= 4,
          "answer_p95_3x": answer["p95_x"] <= 3,
          "generate_throughput_4x": generate["throughput_x"] >= 4,
          "generate_p95_3x": generate["p95_x"] <= 3,
          "zero_errors": all(p["errors"] == 0 for p in phases),
          "memory_flat_10pct": bool(rss50) and rss_end <= 1.1 * rss50}}
  print("\n| phase | clients | requests | errors | req/s | p50 ms | p95 ms | load avg |")
  print("|---|---|---|---|---|---|---|---|")
  for p_ in phases:
    print(f"| {p_['phase']} | {p_['clients']} | {p_['requests']} | {p_['errors']} | "
          f"{p_['throughput_rps']} | {p_['p50_ms']} | {p_['p95_ms']} | "
          f"{p_['load_avg_1m'][0]} -> {p_['load_avg_1m'][1]} |")
  print(json.dumps({k: v for k, v in summary.items() if k != "phases"}, indent=1))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(summary, f, indent=1)


if __name__ == "__main__":
  main()
