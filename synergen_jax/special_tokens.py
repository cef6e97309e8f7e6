"""The new special tokens SynerGen-VL adds on top of an LLM's text vocabulary.

Token ids are laid out as `[0, text_vocab_size)` for the (padded) text vocabulary of
the LLM, which already holds `<s>`, `</s>` and its chat-role markers, followed by
`NUM_NEW_TOKENS` new tokens whose embeddings are trainable vision-side parameters:

  id = text_vocab_size + NEW_TOKENS.index(name)

Slots past the named ones are reserved (kept so the table size stays fixed).
"""

BOI = "<boi>"
EOI = "<eoi>"
UNCOND = "<UNCOND>"
IMAGE = "<img>"  # placeholder id at folded image positions (its embedding is replaced)

NEW_TOKENS = (BOI, EOI, UNCOND, IMAGE)
NUM_NEW_TOKENS = 8


def new_token_id(text_vocab_size: int, name: str) -> int:
  """Id of one new special token for an LLM whose padded text vocab has this size."""
  if name not in NEW_TOKENS:
    raise ValueError(f"unknown new special token {name!r}; expected one of {NEW_TOKENS}")
  return text_vocab_size + NEW_TOKENS.index(name)
