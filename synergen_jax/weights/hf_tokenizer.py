"""The pretrained LLM's own tokenizer, with SynerGen-VL's new tokens after its padded vocab.

`load_hf_tokenizer(hf_dir, text_vocab_size)`:
- `tokenizer.model` present (InternLM2, Llama-2): our SentencePiece `Tokenizer.load`.
- else `tokenizer.json` (Qwen2, Llama-3): `JsonTokenizer`, read with the Hugging Face
  `tokenizers` library, exposing the same interface as `synergen_jax.tokenizer.Tokenizer`
  (encode / decode / is_special / turn_start / turn_end / format_chat / encode_chat and
  the id attributes).
The new tokens (`<boi>`, `<eoi>`, `<UNCOND>`, `<img>`, ...) get ids from `text_vocab_size`
on: pass the model's `vocab_size` (the HF embedding rows padded to a multiple of 128,
which can exceed the tokenizer's own size, e.g. Qwen2: 151,665 ids, 151,936 rows).

Chat templates (the family's): ChatML `<|im_start|>{role}\\n{content}<|im_end|>\\n` for
Qwen2 and InternLM2; Llama-3 `<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}
<|eot_id|>` when the vocabulary has those markers. Qwen2 has no BOS token: sequences
start with `<|endoftext|>` (its document separator) instead, so the data contract's
leading `<s>` still has an id.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Sequence

import tokenizers  # the Hugging Face tokenizers library (Rust)

from synergen_jax import special_tokens
from synergen_jax.tokenizer import Tokenizer, pad_vocab
from synergen_jax.weights import hf_files

ROLES = ("system", "user", "assistant")
_NEW_TOKEN_RE = re.compile("(" + "|".join(re.escape(t) for t in special_tokens.NEW_TOKENS) + ")")


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
  """A turn is `start + role + role_end + content + end`."""

  name: str
  start: str
  role_end: str
  end: str


CHATML = ChatTemplate("chatml", "<|im_start|>", "\n", "<|im_end|>\n")
LLAMA3 = ChatTemplate("llama3", "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>")


def _set_new_token_ids(tok: Any, text_vocab_size: int) -> None:
  """Puts the new tokens right after `text_vocab_size` (>= the tokenizer's own ids)."""
  if text_vocab_size < tok.sp_size:
    raise ValueError(f"{tok.name}: the tokenizer has {tok.sp_size} ids but the model's text "
                     f"vocabulary (model.vocab_size) is only {text_vocab_size}")
  tok.text_vocab_size = text_vocab_size
  tok.vocab_size = text_vocab_size + special_tokens.NUM_NEW_TOKENS
  new = {t: special_tokens.new_token_id(text_vocab_size, t) for t in special_tokens.NEW_TOKENS}
  tok._new_ids = new
  tok.boi_id, tok.eoi_id = new[special_tokens.BOI], new[special_tokens.EOI]
  tok.uncond_id, tok.image_id = new[special_tokens.UNCOND], new[special_tokens.IMAGE]


def _token_text(value: Any) -> str | None:
  """tokenizer_config.json writes tokens as a string or {"content": ...}."""
  if isinstance(value, dict):
    return value.get("content")
  return value


class JsonTokenizer:
  """A `tokenizer.json` tokenizer with the interface of `synergen_jax.tokenizer.Tokenizer`."""

  def __init__(self, path: str, text_vocab_size: int | None = None,
               special: dict[str, Any] | None = None):
    self.name = path
    try:
      self._tok = tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises plain Exception subclasses
      raise ValueError(f"{path}: not a valid tokenizer.json ({e})") from e
    special = special or {}
    self.sp_size = self._tok.get_vocab_size(with_added_tokens=True)
    vocab = self._tok.get_vocab(with_added_tokens=True)

    def first(*tokens: str | None) -> int | None:  # the first token present (ids may be 0)
      return next((vocab[t] for t in tokens if t and t in vocab), None)

    eos = first(_token_text(special.get("eos_token")), "<|endoftext|>", "</s>")
    if eos is None:
      raise ValueError(f"{path}: no eos token (tokenizer_config.json eos_token, "
                       "<|endoftext|> or </s>)")
    self.eos_id = eos
    bos = first(_token_text(special.get("bos_token")), "<s>", "<|begin_of_text|>",
                "<|endoftext|>")
    self.bos_id = bos if bos is not None else eos
    pad = first(_token_text(special.get("pad_token")))
    self.pad_id = pad if pad is not None else eos
    self.template = LLAMA3 if "<|start_header_id|>" in vocab else CHATML
    self.im_start_id = first(self.template.start)
    self.im_end_id = first(self.template.end.strip("\n"))
    _set_new_token_ids(self, text_vocab_size or pad_vocab(self.sp_size))

  def save(self, path: str) -> None:
    self._tok.save(os.fspath(path))

  def _encode_plain(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Text -> ids; new tokens written literally (`<boi>`, `<UNCOND>`, ...) map to their ids."""
    ids = [self.bos_id] if add_bos else []
    for part in _NEW_TOKEN_RE.split(text):
      if part in self._new_ids:
        ids.append(self._new_ids[part])
      elif part:
        ids.extend(self._encode_plain(part))
    return ids + ([self.eos_id] if add_eos else [])

  def is_special(self, i: int) -> bool:
    """BOS, EOS, pad, padding slots and every new token."""
    return i in (self.bos_id, self.eos_id, self.pad_id) or i >= self.sp_size or i < 0

  def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
    """Ids -> text. Keeps chat markers; drops special/new tokens if `skip_special`."""
    inv = {v: k for k, v in self._new_ids.items()}
    controls = {self.bos_id, self.eos_id, self.pad_id}
    out, run = [], []
    for i in (int(x) for x in ids):
      if 0 <= i < self.sp_size and i not in controls:
        run.append(i)
        continue
      if run:
        out.append(self._tok.decode(run, skip_special_tokens=False))
        run = []
      if not skip_special:
        if i in inv:
          out.append(inv[i])
        elif i in controls:
          out.append(self._tok.id_to_token(i))
    if run:
      out.append(self._tok.decode(run, skip_special_tokens=False))
    return "".join(out)

  # ---- chat template (the family's) ---------------------------------------------
  def _require_chat(self) -> None:
    if self.im_start_id is None or self.im_end_id is None:
      raise ValueError(f"{self.name}: the vocabulary has no {self.template.name} chat markers")

  def turn_start(self, role: str) -> list[int]:
    if role not in ROLES:
      raise ValueError(f"unknown chat role {role!r}; expected one of {ROLES}")
    self._require_chat()
    return self._encode_plain(self.template.start + role + self.template.role_end)

  def turn_end(self) -> list[int]:
    self._require_chat()
    return self._encode_plain(self.template.end)

  def format_chat(self, messages: Sequence[tuple[str, str]],
                  add_generation_prompt: bool = True) -> str:
    t = self.template
    text = "".join(f"{t.start}{role}{t.role_end}{content}{t.end}" for role, content in messages)
    return text + (f"{t.start}assistant{t.role_end}" if add_generation_prompt else "")

  def encode_chat(self, messages: Sequence[tuple[str, str]], add_bos: bool = True,
                  add_generation_prompt: bool = True) -> list[int]:
    ids = [self.bos_id] if add_bos else []
    for role, content in messages:
      ids += self.turn_start(role) + self.encode(content) + self.turn_end()
    return ids + (self.turn_start("assistant") if add_generation_prompt else [])


def load_hf_tokenizer(hf_dir: str, text_vocab_size: int | None = None):
  """The LLM's tokenizer from `hf_dir` (SentencePiece `.model` first, else tokenizer.json)."""
  sp_path = os.path.join(hf_dir, "tokenizer.model")
  json_path = os.path.join(hf_dir, "tokenizer.json")
  if os.path.isfile(sp_path):
    tok = Tokenizer.load(sp_path)
    if text_vocab_size is not None:
      _set_new_token_ids(tok, text_vocab_size)
    return tok
  if os.path.isfile(json_path):
    cfg_path = os.path.join(hf_dir, "tokenizer_config.json")
    special = hf_files.read_json(cfg_path, "") if os.path.isfile(cfg_path) else {}
    return JsonTokenizer(json_path, text_vocab_size, special)
  raise FileNotFoundError(f"no tokenizer.model or tokenizer.json in {hf_dir}")
