"""LLaVA / ShareGPT conversation turns -> alternating user / assistant texts.

  parse(value) -> [user_1, assistant_1, user_2, assistant_2, ...]   (list[str])
  turns(flat) -> [(user_1, assistant_1), ...]
  has_placeholder(flat) -> bool

`value` is a list of {"from": "human" | "gpt", "value": text} (LLaVA; "role" / "content"
and "user" / "assistant" are accepted too), or that list as a JSON string (a parquet text
column). A conversation must start with a human turn, alternate human / gpt and end with a
gpt turn; the image placeholder `<image>` may stand once, in a human turn. Anything else
raises `BadConversation` (the record is skipped and counted).
"""

import json

IMAGE_PLACEHOLDER = "<image>"
_USER = ("human", "user")
_ASSISTANT = ("gpt", "assistant")


class BadConversation(ValueError):
  """The conversation is empty, malformed or its turns do not alternate human / gpt."""


def _turn(t, i: int) -> tuple[str, str]:
  if not isinstance(t, dict):
    raise BadConversation(f"turn {i} is a {type(t).__name__}, expected a map")
  role = t.get("from", t.get("role"))
  text = t.get("value", t.get("content"))
  if role in _USER:
    role = "user"
  elif role in _ASSISTANT:
    role = "assistant"
  else:
    raise BadConversation(f"turn {i} has role {role!r}; expected one of "
                          f"{list(_USER + _ASSISTANT)}")
  if not isinstance(text, str):
    raise BadConversation(f"turn {i} has no text value (got {type(text).__name__})")
  return role, text


def parse(value) -> list[str]:
  """The alternating turn texts of a conversation; see the module docstring."""
  if isinstance(value, (bytes, bytearray)):
    value = bytes(value).decode("utf-8", errors="replace")
  if isinstance(value, str):
    try:
      value = json.loads(value)
    except json.JSONDecodeError as e:
      raise BadConversation(f"conversation is not valid JSON: {e}") from None
  if not isinstance(value, (list, tuple)) or not value:
    raise BadConversation("conversation is empty or not a list of turns")
  flat = []
  for i, t in enumerate(value):
    role, text = _turn(t, i)
    want = "user" if i % 2 == 0 else "assistant"
    if role != want:
      raise BadConversation(f"turn {i} is a {role} turn; turns must alternate human / gpt, "
                            "starting with human")
    if role == "assistant" and IMAGE_PLACEHOLDER in text:
      raise BadConversation(f"turn {i} (gpt) holds the image placeholder {IMAGE_PLACEHOLDER}")
    flat.append(text)
  if len(flat) % 2:
    raise BadConversation("conversation ends with a human turn (no answer)")
  if sum(t.count(IMAGE_PLACEHOLDER) for t in flat) > 1:
    raise BadConversation(f"the image placeholder {IMAGE_PLACEHOLDER} stands more than once")
  return flat


def turns(flat) -> list[tuple[str, str]]:
  """[u1, a1, u2, a2, ...] -> [(u1, a1), (u2, a2), ...]."""
  flat = list(flat)
  return list(zip(flat[0::2], flat[1::2]))


def has_placeholder(flat) -> bool:
  return any(IMAGE_PLACEHOLDER in t for t in flat)
