"""`python -m synergen_jax.serve` as a subprocess: starts, answers /healthz (the key from
$SYNERGEN_API_KEY required), stops cleanly on SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.test_serve_api import serve_tiny

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
def test_cli_starts_serves_and_stops_on_sigterm(tiny_run, tmp_path_factory):
  _, vq_dir = serve_tiny(tiny_run, tmp_path_factory)
  env = dict(os.environ, SYNERGEN_API_KEY="k3y", JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(
      [sys.executable, "-m", "synergen_jax.serve", f"--workdir={tiny_run['straight']}",
       f"--vq_dir={vq_dir}", "--port=0", "--nowarmup"],
      cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  try:
    url, lines, deadline = None, [], time.monotonic() + 180
    while url is None:
      assert time.monotonic() < deadline, "no 'serving ... on http://' line:\n" + "".join(lines)
      line = proc.stderr.readline()
      assert line or proc.poll() is None, "the server exited:\n" + "".join(lines)
      lines.append(line)
      m = re.search(r"on (http://127\.0\.0\.1:\d+/) \(API key required\)", line)
      url = m and m.group(1)
    assert requests.get(url + "healthz", timeout=60).status_code == 401
    r = requests.get(url + "healthz", headers={"authorization": "Bearer k3y"}, timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, "".join(lines) + rest
    assert "stopped" in rest
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait(30)
