"""Text tokenizer: a SentencePiece model plus SynerGen-VL's new special tokens.

Id layout (see `special_tokens.py`):

  [0, sp_size)                      the SentencePiece pieces (incl. `<s>`, `</s>` and the
                                    chat-role markers `<|im_start|>`, `<|im_end|>`)
  [sp_size, text_vocab_size)        unused padding (text vocab rounded up to a multiple of 128)
  [text_vocab_size, + NUM_NEW_TOKENS) `<boi>`, `<eoi>`, `<UNCOND>`, `<img>`, reserved

`vocab_size = text_vocab_size + NUM_NEW_TOKENS` is the size of the model's embedding
table. `encode` understands the new tokens written literally in text (e.g. the CFG
prompt "Here is a random image <UNCOND>:"); `encode_text` is for text from data or
users, in which nothing is special (a web caption's `<img>` or `<|im_end|>` stays those
characters); `decode` drops the new tokens (and `<s>`, `</s>`, padding) unless
`skip_special=False`.

Chat template (InternLM2 / Qwen2 style), as ids via `encode_chat` or text via `format_chat`:

  <s><|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n
  <|im_start|>assistant\\n{assistant}

Create with `Tokenizer.load(path)` (any SentencePiece `.model`, e.g. a pretrained
LLM's) or `Tokenizer.train(sentences, path)` (deterministic; character_coverage 1.0).
"""

from __future__ import annotations

import io
import os
import re
from typing import Iterable, Sequence

import sentencepiece as spm

from synergen_jax import files
from synergen_jax import special_tokens

VOCAB_MULTIPLE = 128
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ROLES = ("system", "user", "assistant")
_NEW_TOKEN_RE = re.compile("(" + "|".join(re.escape(t) for t in special_tokens.NEW_TOKENS) + ")")
_CHAT_MARKER_RE = re.compile("(" + re.escape(IM_START) + "|" + re.escape(IM_END) + ")")


def pad_vocab(size: int, multiple: int = VOCAB_MULTIPLE) -> int:
  """`size` rounded up to a multiple of `multiple`."""
  return -(-size // multiple) * multiple


class Tokenizer:
  """SentencePiece wrapper with fixed ids for special and new tokens."""

  def __init__(self, model_proto: bytes, name: str = "<in memory>"):
    self.name = name
    self._sp = spm.SentencePieceProcessor()
    try:
      self._sp.LoadFromSerializedProto(model_proto)
    except Exception as e:  # sentencepiece raises plain RuntimeError/OSError
      raise ValueError(f"{name}: not a valid SentencePiece model ({e})") from e
    self._model_proto = model_proto
    self.sp_size = self._sp.get_piece_size()
    self.text_vocab_size = pad_vocab(self.sp_size)
    self.vocab_size = self.text_vocab_size + special_tokens.NUM_NEW_TOKENS
    self.bos_id = self._control_id(self._sp.bos_id(), "<s>")
    self.eos_id = self._control_id(self._sp.eos_id(), "</s>")
    self.pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else 0
    self.im_start_id = self._piece_id(IM_START)
    self.im_end_id = self._piece_id(IM_END)
    new = lambda t: special_tokens.new_token_id(self.text_vocab_size, t)
    self.boi_id = new(special_tokens.BOI)
    self.eoi_id = new(special_tokens.EOI)
    self.uncond_id = new(special_tokens.UNCOND)
    self.image_id = new(special_tokens.IMAGE)
    self._new_ids = {t: new(t) for t in special_tokens.NEW_TOKENS}

  # ---- construction -------------------------------------------------------------
  @classmethod
  def load(cls, path: str | os.PathLike) -> "Tokenizer":
    """Loads any SentencePiece `.model` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"tokenizer model file not found: {path}")
    with open(path, "rb") as f:
      return cls(f.read(), name=path)

  @classmethod
  def train(cls, sentences: Iterable[str], path: str | os.PathLike | None = None,
            vocab_size: int = 1024, model_type: str = "bpe") -> "Tokenizer":
    """Trains a model on `sentences` (deterministic); writes it to `path` if given.

    Ids: pad 0, unk 1, `<s>` 2, `</s>` 3, then `<|im_start|>`, `<|im_end|>` and a
    newline piece; byte fallback makes every string encodable. `vocab_size` is an
    upper bound (a small corpus may give fewer pieces); it is then padded to a
    multiple of 128 for the model.
    """
    sentences = [s for s in sentences if s]
    if not sentences:
      raise ValueError("Tokenizer.train: the corpus is empty")
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=out,
        vocab_size=vocab_size, model_type=model_type, character_coverage=1.0,
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        user_defined_symbols=[IM_START, IM_END, "\n"], byte_fallback=True,
        split_digits=True, normalization_rule_name="identity",
        add_dummy_prefix=False, remove_extra_whitespaces=False,
        hard_vocab_limit=False, num_threads=1, input_sentence_size=0,
        shuffle_input_sentence=False, minloglevel=2)
    proto = out.getvalue()
    name = "<trained>"
    if path is not None:
      path = os.fspath(path)
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      files.write_atomic(path, proto)
      name = path
    return cls(proto, name=name)

  def save(self, path: str | os.PathLike) -> None:
    files.write_atomic(os.fspath(path), self._model_proto)

  def _piece_id(self, piece: str) -> int | None:
    i = self._sp.piece_to_id(piece)
    if i == self._sp.unk_id() and piece != self._sp.id_to_piece(i):
      return None
    return i

  def _control_id(self, sp_id: int, piece: str) -> int:
    if sp_id >= 0:
      return sp_id
    i = self._piece_id(piece)
    if i is None:
      raise ValueError(f"{self.name}: the SentencePiece model defines no {piece!r} token")
    return i

  # ---- encode / decode ----------------------------------------------------------
  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Text -> ids; new tokens written literally (`<boi>`, `<UNCOND>`, ...) map to their ids."""
    ids = [self.bos_id] if add_bos else []
    for part in _NEW_TOKEN_RE.split(text):
      if not part:
        continue
      if part in self._new_ids:
        ids.append(self._new_ids[part])
      else:
        ids.extend(self._sp.encode(part))
    if add_eos:
      ids.append(self.eos_id)
    return ids

  def encode_text(self, text: str) -> list[int]:
    """Text from data or users -> ids, nothing in it special: new tokens and chat markers
    written in it are encoded as the characters they are (a trained model's chat markers
    are SentencePiece user symbols, which it would match in raw text). Equals `encode` for
    text that holds none of them; `decode` gives the text back."""
    ids = []
    for part in _CHAT_MARKER_RE.split(text):
      if part in (IM_START, IM_END):  # as two halves, so that no user symbol matches
        ids += self._sp.encode(part[:2]) + self._sp.encode(part[2:])
      elif part:
        ids += self._sp.encode(part)
    return ids

  def is_special(self, i: int) -> bool:
    """`<s>`, `</s>`, pad, padding slots and every new token."""
    return i in (self.bos_id, self.eos_id, self.pad_id) or i >= self.sp_size or i < 0

  def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
    """Ids -> text. Keeps chat markers; drops special/new tokens if `skip_special`."""
    inv = {v: k for k, v in self._new_ids.items()}
    out, run = [], []
    controls = {self.bos_id, self.eos_id, self.pad_id}
    for i in (int(x) for x in ids):
      if 0 <= i < self.sp_size and i not in controls:
        run.append(i)
        continue
      if run:
        out.append(self._sp.decode(run))
        run = []
      if not skip_special:
        if i in inv:
          out.append(inv[i])
        elif i in controls:
          out.append(self._sp.id_to_piece(i))
    if run:
      out.append(self._sp.decode(run))
    return "".join(out)

  # ---- chat template ------------------------------------------------------------
  def _require_chat(self) -> None:
    if self.im_start_id is None or self.im_end_id is None:
      raise ValueError(f"{self.name}: the model has no chat markers {IM_START!r}/{IM_END!r}; "
                       "use a tokenizer trained with them or a chat LLM's tokenizer")

  def turn_start(self, role: str) -> list[int]:
    """Ids of `<|im_start|>{role}\\n`."""
    if role not in ROLES:
      raise ValueError(f"unknown chat role {role!r}; expected one of {ROLES}")
    self._require_chat()
    return [self.im_start_id] + self._sp.encode(role + "\n")

  def turn_end(self) -> list[int]:
    """Ids of `<|im_end|>\\n`."""
    self._require_chat()
    return [self.im_end_id] + self._sp.encode("\n")

  @staticmethod
  def format_chat(messages: Sequence[tuple[str, str]], add_generation_prompt: bool = True) -> str:
    """Chat text of (role, content) turns; ends with an open assistant turn if asked."""
    text = "".join(f"{IM_START}{role}\n{content}{IM_END}\n" for role, content in messages)
    if add_generation_prompt:
      text += f"{IM_START}assistant\n"
    return text

  def encode_chat(self, messages: Sequence[tuple[str, str]], add_bos: bool = True,
                  add_generation_prompt: bool = True) -> list[int]:
    """Ids of `<s>` + the chat template of `messages` (contents may hold new tokens)."""
    ids = [self.bos_id] if add_bos else []
    for role, content in messages:
      ids += self.turn_start(role) + self.encode(content) + self.turn_end()
    if add_generation_prompt:
      ids += self.turn_start("assistant")
    return ids
