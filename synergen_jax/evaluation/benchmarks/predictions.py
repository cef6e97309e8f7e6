"""predictions.jsonl: one {"question_id", "answer", ...the item's fields} per line,
appended as answers are made (a rerun skips the keys already there).

  read(path, key_of) -> ({key: answer}, bad lines)   a missing file reads as empty; a
      torn last line (an interrupted writer) is dropped and counted, not trusted
  line(item, answer) -> dict
  Appender(path): .write(lines) appends and flushes to disk
"""

import json
import os


def read(path: str, key_of) -> tuple[dict, int]:
  out, bad = {}, 0
  if not os.path.exists(path):
    return out, bad
  with open(path, encoding="utf-8") as f:
    for raw in f:
      if not raw.strip():
        continue
      try:
        row = json.loads(raw)
        out[key_of(row)] = str(row["answer"])
      except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        bad += 1
  return out, bad


def line(item: dict, answer: str) -> dict:
  return {"question_id": item["question_id"], **item["fields"], "answer": answer}


class Appender:
  def __init__(self, path: str):
    self.path = path
    # A torn last line (no newline) from an interrupted run: end it so appends stay valid.
    if os.path.exists(path) and os.path.getsize(path):
      with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
          f.write(b"\n")

  def write(self, rows: list[dict]) -> None:
    with open(self.path, "a", encoding="utf-8") as f:
      for r in rows:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
      f.flush()
      os.fsync(f.fileno())
