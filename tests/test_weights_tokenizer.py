"""The LLM's tokenizer: SentencePiece `.model` when present, else tokenizer.json (tokenizers)."""

import json

import pytest
import tokenizers
from tokenizers import models as tk_models, pre_tokenizers, trainers, decoders

from synergen_jax import special_tokens
from synergen_jax.tokenizer import Tokenizer
from synergen_jax.weights.hf_tokenizer import JsonTokenizer, load_hf_tokenizer

CORPUS = ["a red cube on a blue sphere", "the cat sat on the mat", "Generate an image of: a dog"]


def _qwen_like_dir(tmp_path):
  """A byte-level BPE tokenizer.json with Qwen2's special tokens (no BOS)."""
  tok = tokenizers.Tokenizer(tk_models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
  tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
      vocab_size=300, special_tokens=specials,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  tok.save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "tokenizer_config.json").write_text(json.dumps(
      {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
  return tok


def test_tokenizer_json_interface_and_chatml(tmp_path):
  raw = _qwen_like_dir(tmp_path)
  tok = load_hf_tokenizer(str(tmp_path), text_vocab_size=512)
  assert isinstance(tok, JsonTokenizer)
  assert tok.sp_size == raw.get_vocab_size() and tok.text_vocab_size == 512
  assert tok.boi_id == 512 + special_tokens.NEW_TOKENS.index("<boi>")
  assert tok.vocab_size == 512 + special_tokens.NUM_NEW_TOKENS
  endoftext = raw.token_to_id("<|endoftext|>")
  assert tok.bos_id == endoftext and tok.pad_id == endoftext
  assert tok.eos_id == raw.token_to_id("<|im_end|>")
  text = "Here is a random image <UNCOND>: a red cube"
  ids = tok.encode(text, add_bos=True)
  assert ids[0] == tok.bos_id and tok.uncond_id in ids
  assert tok.decode(ids) == "Here is a random image : a red cube"
  assert tok.decode(ids, skip_special=False) == "<|endoftext|>" + text
  chat = tok.encode_chat([("user", "the cat <boi>")])
  assert chat.count(tok.im_start_id) == 2 and chat.count(tok.im_end_id) == 1
  assert tok.boi_id in chat
  assert tok.decode(chat, skip_special=False) == "<|endoftext|>" + tok.format_chat(
      [("user", "the cat <boi>")])
  with pytest.raises(ValueError, match="model's text vocabulary"):
    load_hf_tokenizer(str(tmp_path), text_vocab_size=128)


def test_sentencepiece_model_is_preferred(tmp_path):
  _qwen_like_dir(tmp_path)
  Tokenizer.train(CORPUS * 20, str(tmp_path / "tokenizer.model"), vocab_size=300)
  tok = load_hf_tokenizer(str(tmp_path), text_vocab_size=1024)
  assert isinstance(tok, Tokenizer)
  assert tok.text_vocab_size == 1024 and tok.eoi_id == 1025
  ids = tok.encode("a red cube <eoi>")
  assert ids[-1] == 1025 and tok.decode(ids) == "a red cube "
