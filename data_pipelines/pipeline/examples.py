"""Choosing examples: a pretokenized record -> one training example of a task.

  ExampleBuilder(config, tokenizer, fold, grid, task)(record bytes, rng)
      -> example dict (`batch.EXAMPLE_FIELDS`) or a `packing.skip(reason)` marker
  question_probs(rec, type_weights) -> sampling probabilities of a record's questions
  object_keep_prob(rec, object_keep) -> probability of keeping a record by object count

Understanding: a caption example (probability `data.und_caption_prob`), else a
conversation of up to `data.und_qa_turns` question/answer turns about the image (types
weighted by `data.und_type_weights`); a record with a conversation (e.g. llava) is that
multi-turn conversation, cut at a turn boundary when too long. Generation: a caption as
the prompt, replaced by the unconditional prompt with probability `data.cfg_dropout`.
Scenes are sampled by object count (`data.und_object_keep`, `data.gen_object_keep`).
Over-long examples are dropped or truncated (`data.overlong`). Skip reasons:
undecodable_record, wrong_code_grid, no_image (generation, or a text-only record
without a conversation), no_text, overlong_dropped, bad_conversation,
sampled_out_by_objects (not bad data: `data.und_object_keep` / `gen_object_keep`).
"""

import json

import numpy as np

from data_pipelines.pipeline import packing
from data_pipelines.pipeline import records
from data_pipelines.pipeline import sequences
from data_pipelines.sources import conversations


def question_probs(rec, type_weights) -> np.ndarray | None:
  """Sampling probabilities [num_questions] of a record's questions under
  `data.und_type_weights` ((type, weight) pairs; a type not listed weighs 0), or None
  when the weights are empty (every question equally likely). All zero when the record
  has no question of a weighted type."""
  if not type_weights:
    return None
  weight = {str(t): float(w) for t, w in type_weights}
  types = list(rec.get("question_types") or [])
  if len(types) != len(rec["questions"]):
    types = [""] * len(rec["questions"])  # untyped questions: none is weighted
  w = np.asarray([weight.get(t, 0.0) for t in types], dtype=np.float64)
  total = w.sum()
  return w / total if total > 0 else w


def _understanding_example(rec, rng, config, tok, fold):
  """A caption example, or a conversation of up to `und_qa_turns` question/answer turns
  about the image (distinct questions, random order; fewer when they would not fit the
  task's seq_len)."""
  has_qa = bool(rec["questions"]) and len(rec["questions"]) == len(rec["answers"])
  p = question_probs(rec, config.und_type_weights) if has_qa else None
  has_qa = has_qa and (p is None or bool(p.any()))
  use_caption = bool(rec["captions"]) and (not has_qa or rng.random() < config.und_caption_prob)
  if use_caption:
    answer = rec["captions"][int(rng.integers(len(rec["captions"])))]
    return sequences.build_understanding(tok, rec["und_codes"], config.caption_prompt, answer,
                                         fold, config.system_prompt)
  if not has_qa:
    return None
  k = min(config.und_qa_turns, len(rec["questions"]))
  if p is not None:  # question types weighted (data.und_type_weights)
    k = min(k, int(np.count_nonzero(p)))
    order = [int(i) for i in rng.choice(len(p), size=k, replace=False, p=p)]
  elif k == 1:
    order = [int(rng.integers(len(rec["questions"])))]
  else:
    order = rng.permutation(len(rec["questions"]))[:k]
  turns = [(rec["questions"][i], rec["answers"][i]) for i in order]
  seq_len = config.understanding.seq_len
  while True:
    example = sequences.build_conversation(tok, rec["und_codes"], turns, fold,
                                           config.system_prompt)
    if len(turns) == 1 or len(example["tokens"]) <= seq_len:
      return example
    turns = turns[:-1]


def _generation_example(rec, rng, config, tok, fold):
  if not rec["captions"]:
    return None
  caption = rec["captions"][int(rng.integers(len(rec["captions"])))]
  uncond = rng.random() < config.cfg_dropout
  prompt = sequences.generation_prompt(caption, uncond, config.generation_prefix,
                                       config.uncond_prompt)
  return sequences.build_generation(tok, rec["gen_codes"], prompt, fold, config.system_prompt,
                                   uncond=uncond)


def object_keep_prob(rec, object_keep) -> float:
  """Probability of keeping a record under `data.und_object_keep` ((object count,
  probability) pairs): 1 for a count not listed and for a record without a scene graph."""
  if not object_keep or not rec.get("scene_graph"):
    return 1.0
  try:
    n = len(json.loads(rec["scene_graph"]).get("objects", []))
  except (ValueError, AttributeError):  # not a JSON object: not a scene of this world
    return 1.0
  return float(dict((int(k), float(p)) for k, p in object_keep).get(n, 1.0))


class ExampleBuilder:
  """grain random-map transform: record bytes -> example dict or a skip marker
  (`config`: a `config.DataConfig`)."""

  def __init__(self, config, tokenizer, fold, grid, task):
    self.config, self.tok, self.fold, self.grid, self.task = config, tokenizer, fold, grid, task
    self.seq_len = config.task(task).seq_len

  def __call__(self, data: bytes, rng: np.random.Generator):
    try:
      rec = records.decode_record(data)
    except records.RecordError:
      return packing.skip("undecodable_record")
    if records.has_image(rec):
      codes = rec["und_codes"] if self.task == "understanding" else rec["gen_codes"][None]
      if tuple(codes.shape[1:]) != tuple(self.grid):
        return packing.skip("wrong_code_grid")
    elif self.task == "generation" or not rec["conversation"]:
      return packing.skip("no_image")
    if self.task == "understanding" and rec["conversation"]:
      return self._conversation(rec)
    keep = object_keep_prob(rec, self.config.und_object_keep if self.task == "understanding"
                            else self.config.gen_object_keep)
    if keep < 1.0 and rng.random() >= keep:
      return packing.skip("sampled_out_by_objects")
    build = _understanding_example if self.task == "understanding" else _generation_example
    example = build(rec, rng, self.config, self.tok, self.fold)
    if example is None:
      return packing.skip("no_text")
    fitted = sequences.fit_length(example, self.seq_len, self.config.overlong)
    if fitted is None:
      return packing.skip("overlong_dropped")
    if fitted is not example:
      fitted[packing.TRUNCATED_KEY] = True
    return fitted

  def _conversation(self, rec):
    """The record's multi-turn conversation, cut at a turn boundary when too long."""
    tiles = rec["und_codes"] if records.has_image(rec) else None
    try:
      fitted = sequences.fit_conversation(
          self.tok, tiles, conversations.turns(rec["conversation"]), self.fold,
          self.config.system_prompt, self.seq_len, self.config.overlong)
    except ValueError:  # e.g. <image> twice in a record not written by pretokenize
      return packing.skip("bad_conversation")
    if fitted is None:
      return packing.skip("overlong_dropped")
    example, truncated = fitted
    if truncated:
      example[packing.TRUNCATED_KEY] = True
    return example
