"""Understanding and generation sequences (METHOD.md section 6), one example each.

An example is a dict of 1-D arrays over its n positions, `batch.EXAMPLE_FIELDS` of the
schema in `synergen_jax/batch.py` (packing adds segment_ids and positions later):

  tokens        int32 [n]          text / special ids; `tokenizer.image_id` at image positions
  image_codes   int32 [n, m*n]     a folded patch's codes (row-major) at image positions, else 0
  is_image      bool  [n]
  patch_index   int32 [n]          patch index inside its tile (restarts per tile)
  text_target   float32 [n]        weight for predicting tokens[t] from t-1
  image_target  float32 [n]        weight for predicting image_codes[t] from t-1

Templates (chat markers from the tokenizer; `[sys]` only if a system prompt is set):
  understanding: <s> [sys] <|im_start|>user\\n <boi> TILES <eoi> {question} <|im_end|>\\n
                 <|im_start|>assistant\\n {answer} <|im_end|>\\n </s>
                                                        targets: answer <|im_end|>\\n </s>
                 (`build_conversation`: several question/answer turns about one image, the
                 image where `<image>` stands in a question, or none: text only;
                 `fit_conversation` cuts an overlong one at a turn boundary)
  generation:    <s> [sys] <|im_start|>user\\n {prefix} {caption} <|im_end|>\\n
                 <|im_start|>assistant\\n <boi> IMG <eoi> </s>  targets: IMG (image), <eoi>, </s>
With `answer=None` / `codes=None` the builders return the inference prompt
(understanding: up to the open assistant turn; generation: up to `<boi>`).
"""

import numpy as np

from data_pipelines.sources import conversations
from synergen_jax import batch as batch_lib
from synergen_jax import image_grid

IMAGE_PLACEHOLDER = conversations.IMAGE_PLACEHOLDER  # where a conversation's image stands


class _Builder:
  """Accumulates positions of one example."""

  def __init__(self, mn: int):
    self.mn = mn
    self.tokens, self.codes, self.is_image = [], [], []
    self.patch_index, self.text_target, self.image_target = [], [], []

  def text(self, ids, target: bool = False) -> None:
    ids = list(ids)
    self.tokens += ids
    self.codes.append(np.zeros((len(ids), self.mn), np.int32))
    self.is_image += [False] * len(ids)
    self.patch_index += [0] * len(ids)
    self.text_target += [float(target)] * len(ids)
    self.image_target += [0.0] * len(ids)

  def image(self, image_id: int, grid: np.ndarray, fold, target: bool) -> None:
    patches = np.asarray(image_grid.fold_grid(np.asarray(grid, np.int32), *fold))  # [P, m*n]
    p = patches.shape[0]
    self.tokens += [image_id] * p
    self.codes.append(patches)
    self.is_image += [True] * p
    self.patch_index += list(range(p))
    self.text_target += [0.0] * p
    self.image_target += [float(target)] * p

  def build(self) -> dict:
    """The example: `batch.EXAMPLE_FIELDS` in their schema dtypes."""
    fields = {"tokens": self.tokens, "image_codes": np.concatenate(self.codes, axis=0),
              "is_image": self.is_image, "patch_index": self.patch_index,
              "text_target": self.text_target, "image_target": self.image_target}
    return {k: np.asarray(fields[k], batch_lib.DTYPES[k]) for k in batch_lib.EXAMPLE_FIELDS}


def _user_turn_start(tok, b: _Builder, system_prompt: str) -> None:
  b.text([tok.bos_id])
  if system_prompt:
    b.text(tok.turn_start("system") + tok.encode(system_prompt) + tok.turn_end())
  b.text(tok.turn_start("user"))


def build_understanding(tok, tiles_codes: np.ndarray, question: str, answer: str | None,
                        fold: tuple[int, int], system_prompt: str = "") -> dict:
  """Image (tiles [T, h, w] of codes) + question -> answer example; see module doc."""
  return build_conversation(tok, tiles_codes, [(question, answer)], fold, system_prompt)


def _placeholder_turn(turns) -> int | None:
  """The turn whose question holds `<image>` (None if none); checks it stands once."""
  at = [i for i, (q, _) in enumerate(turns) if IMAGE_PLACEHOLDER in q]
  count = sum(q.count(IMAGE_PLACEHOLDER) for q, _ in turns)
  if count > 1:
    raise ValueError(f"{IMAGE_PLACEHOLDER} stands {count} times; a conversation has one image")
  if any(a is not None and IMAGE_PLACEHOLDER in a for _, a in turns):
    raise ValueError(f"an answer holds {IMAGE_PLACEHOLDER}; the image goes in a question")
  return at[0] if at else None


def build_conversation(tok, tiles_codes: np.ndarray | None, turns, fold: tuple[int, int],
                       system_prompt: str = "") -> dict:
  """One image and several (question, answer) turns about it (multi-turn chat).

    <s> [sys] <|im_start|>user\\n <boi> TILES <eoi> {q1} <|im_end|>\\n <|im_start|>assistant\\n
    {a1} <|im_end|>\\n <|im_start|>user\\n {q2} <|im_end|>\\n <|im_start|>assistant\\n ...
    {ak} <|im_end|>\\n </s>
  Targets: every answer with the end of its turn (`<|im_end|>\\n`), and the final `</s>`;
  no user turn is a target. One turn is exactly `build_understanding`. The last answer may
  be None: the inference prompt, ending with the open assistant turn (an answer ends at
  the model's `<|im_end|>`).
  A question may hold `<image>` (once in the conversation; LLaVA data): `<boi> TILES <eoi>`
  stands there instead of opening the first turn, the whitespace around the placeholder
  dropped ("<image>\\n{q}" -> `<boi> TILES <eoi> {q}`). `tiles_codes` None (or no tiles):
  a text-only conversation (no placeholder allowed).
  """
  tiles = None
  if tiles_codes is not None:
    tiles = np.asarray(tiles_codes)
    if tiles.ndim != 3:
      raise ValueError(f"tiles_codes must be [T, h, w], got shape {tiles.shape}")
    tiles = tiles if tiles.shape[0] else None
  turns = list(turns)
  if not turns:
    raise ValueError("a conversation needs at least one (question, answer) turn")
  if any(a is None for _, a in turns[:-1]):
    raise ValueError("only the last turn of a conversation may have no answer")
  at = _placeholder_turn(turns)
  if tiles is None and at is not None:
    raise ValueError(f"the conversation shows {IMAGE_PLACEHOLDER} but has no image")
  image_turn = -1 if tiles is None else (at or 0)
  b = _Builder(fold[0] * fold[1])
  _user_turn_start(tok, b, system_prompt)
  for i, (question, answer) in enumerate(turns):
    if i:
      b.text(tok.turn_start("user"))
    if i == image_turn:
      before, after = "", question  # no placeholder: the image opens the first turn
      if at is not None:
        before, _, after = question.partition(IMAGE_PLACEHOLDER)
        before, after = before.rstrip(), after.lstrip()
      if before:
        b.text(tok.encode_text(before))
      b.text([tok.boi_id])
      for tile in tiles:
        b.image(tok.image_id, tile, fold, target=False)
      b.text([tok.eoi_id])
      question = after
    b.text(tok.encode_text(question) + tok.turn_end() + tok.turn_start("assistant"))
    if answer is None:
      break
    end = tok.turn_end() + ([tok.eos_id] if i == len(turns) - 1 else [])
    b.text(tok.encode_text(answer) + end, target=True)
  return b.build()


def fit_conversation(tok, tiles_codes, turns, fold: tuple[int, int], system_prompt: str,
                     seq_len: int, overlong: str) -> tuple[dict, bool] | None:
  """(example, truncated) of a whole conversation that fits `seq_len`, else per `overlong`:
  "truncate" keeps the most leading turns that fit (cut at a turn boundary, so the last
  kept answer ends with `<|im_end|>\\n </s>`; the image only if its turn is kept),
  "drop" (or a first turn alone too long) gives None."""
  turns = list(turns)
  full = build_conversation(tok, tiles_codes, turns, fold, system_prompt)
  if len(full["tokens"]) <= seq_len:
    return full, False
  if overlong not in ("drop", "truncate"):
    raise ValueError(f"data.overlong must be 'drop' or 'truncate', got {overlong!r}")
  if overlong == "drop":
    return None
  at = _placeholder_turn(turns)

  def build(k):
    tiles = tiles_codes if at is None or at < k else None
    return build_conversation(tok, tiles, turns[:k], fold, system_prompt)

  best, lo, hi = None, 1, len(turns) - 1  # the length grows with the number of turns
  while lo <= hi:
    k = (lo + hi) // 2
    example = build(k)
    if len(example["tokens"]) <= seq_len:
      best, lo = example, k + 1
    else:
      hi = k - 1
  return None if best is None else (best, True)


def build_generation(tok, codes: np.ndarray | None, prompt: str,
                     fold: tuple[int, int], system_prompt: str = "",
                     uncond: bool = False) -> dict:
  """Prompt -> image (codes [h, w]) example; `prompt` is the full user text (from
  `generation_prompt`): plain text (`Tokenizer.encode_text`: a caption's `<img>` is not a
  token), or with `uncond` the CFG-dropout prompt, whose `<UNCOND>` is the token."""
  b = _Builder(fold[0] * fold[1])
  _user_turn_start(tok, b, system_prompt)
  ids = tok.encode(prompt) if uncond else tok.encode_text(prompt)
  b.text(ids + tok.turn_end() + tok.turn_start("assistant"))
  b.text([tok.boi_id])
  if codes is not None:
    codes = np.asarray(codes)
    if codes.ndim != 2:
      raise ValueError(f"generation codes must be [h, w], got shape {codes.shape}")
    b.image(tok.image_id, codes, fold, target=True)
    b.text([tok.eoi_id, tok.eos_id], target=True)
  return b.build()


def generation_prompt(caption: str, uncond: bool, prefix: str = "Generate an image of:",
                      uncond_prompt: str = "Here is a random image <UNCOND>:") -> str:
  """The user text of a generation example (the CFG-dropout prompt if `uncond`)."""
  return uncond_prompt if uncond else f"{prefix} {caption}"


def fit_length(example: dict, seq_len: int, overlong: str) -> dict | None:
  """Returns the example, truncated to seq_len ("truncate"), or None ("drop") if longer."""
  n = len(example["tokens"])
  if n <= seq_len:
    return example
  if overlong == "drop":
    return None
  if overlong == "truncate":
    return {k: v[:seq_len] for k, v in example.items()}
  raise ValueError(f"data.overlong must be 'drop' or 'truncate', got {overlong!r}")
