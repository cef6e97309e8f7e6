"""GenEval's summary (djghosh13/geneval evaluation/summary_scores.py) of the official
scorer's results.jsonl (one line per image: filename, tag, prompt, correct, reason,
metadata, details).

  summarize(rows) -> {overall, <tag>, correct_images, correct_prompts, images, prompts}
    <tag>: the share of that tag's images judged correct; overall: the unweighted mean
    of the tag scores (GenEval's "Overall score (avg. over tasks)"); correct_prompts:
    the share of prompts (grouped by metadata) with at least one correct image. All in
    0-1, as GenEval prints and papers report them.
  read_results(path) -> rows (streamed JSONL; lines without tag / correct are counted
    as skipped)
"""

import collections

from synergen_jax.evaluation.benchmarks import records as rec


def read_results(path: str, skips: rec.Skips) -> list[dict]:
  rows = []
  for _, row in rec.jsonl_rows(path):
    if row is None:
      skips.add(rec.BAD_JSON)
    elif "tag" not in row or "correct" not in row:
      skips.add(rec.MISSING_FIELD)
    else:
      rows.append(row)
  return rows


def summarize(rows: list[dict]) -> dict:
  by_tag = collections.defaultdict(list)  # tag -> [bool], in first-seen order
  by_prompt = collections.defaultdict(list)
  for r in rows:
    by_tag[r["tag"]].append(bool(r["correct"]))
    meta = r.get("metadata")
    by_prompt[meta if isinstance(meta, str) else repr(sorted(meta.items())) if isinstance(
        meta, dict) else r.get("prompt")].append(bool(r["correct"]))
  tags = {t: sum(v) / len(v) for t, v in by_tag.items()}
  out = dict(tags)
  out["overall"] = sum(tags.values()) / len(tags) if tags else 0.0
  out["images"] = len(rows)
  out["prompts"] = len(by_prompt)
  out["correct_images"] = sum(bool(r["correct"]) for r in rows) / len(rows) if rows else 0.0
  out["correct_prompts"] = (sum(any(v) for v in by_prompt.values()) / len(by_prompt)
                            if by_prompt else 0.0)
  return out
