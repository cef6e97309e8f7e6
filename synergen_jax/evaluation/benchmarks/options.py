"""Option-letter extraction from a free answer, offline (no judge model): VLMEvalKit's
can_infer (vlmeval/utils/matching_util.py), the path VLMEvalKit takes in its
exact-matching mode.

  can_infer_option(answer, choices) -> letter | "Z" | None
    A refusal phrase -> "Z". Otherwise the characters .()[],:;!*#{} become spaces and
    the answer is split on white space; exactly one choice letter among the tokens ->
    that letter, unless 'A' is a token of an answer of more than 3 tokens (then 'A'
    may be the article: None); no letter but a 'Z' token -> "Z"; else None.
  can_infer_text(answer, choices) -> letter | None
    An answer longer than twice the options' total length -> None; else exactly one
    option whose lower-cased text occurs in the lower-cased answer -> its letter.
  extract(answer, choices) -> letter | None: option first, then text.

choices: {letter: option text}.
"""

_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
             "I'm sorry, but without the image provided", "Cannot determine the answer")


def can_infer_option(answer: str, choices: dict) -> str | None:
  if any(r in answer for r in _REFUSALS):
    return "Z"
  mod = answer
  for c in ".()[],:;!*#{}":
    mod = mod.replace(c, " ")
  tokens = mod.split()
  hits = [c for c in choices if c in tokens]
  if len(hits) == 1:
    if "A" in tokens and len(tokens) > 3:
      return None
    return hits[0]
  if not hits and "Z" in tokens:
    return "Z"
  return None


def can_infer_text(answer: str, choices: dict) -> str | None:
  if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
    return None
  low = answer.lower()
  hits = [k for k, v in choices.items() if str(v).lower() in low]
  return hits[0] if len(hits) == 1 else None


def extract(answer: str, choices: dict) -> str | None:
  return can_infer_option(answer, choices) or can_infer_text(answer, choices)
