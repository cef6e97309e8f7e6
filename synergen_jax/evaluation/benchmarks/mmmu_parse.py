"""MMMU answer parsing as MMMU's own eval_utils.py has it (MMMU-Benchmark/MMMU
mmmu/utils/eval_utils.py, copied into lmms-eval tasks/mmmu/utils.py with the "A."
candidate added).

  multi_choice(response, options, rng) -> letter
    Strip , . ! ? ; : ' from both ends, pad with spaces. Candidates, first rule that
    finds any: "(A)"; "A " (a letter then a space); "A."; then, for a response of more
    than 5 words, options whose text occurs in it (lower case). Several candidates:
    the one whose last "(A)" (bracket rule), " A " (letter rules; -1 when absent) or
    option text occurs latest, the first on ties (np.argmax). None: rng.choice(letters) -- seed rng (per question) so a
    rerun gives the same score.
  open_response(response) -> list of normalised predictions (str / float)
  eval_open(gold, preds) -> bool   a normalised gold string inside a predicted string,
                                   or a number equal to a predicted number
"""

import re

_STRIP = [",", ".", "!", "?", ";", ":", "'"]


def multi_choice(response: str, options: list[str], rng) -> str:
  letters = [chr(ord("A") + i) for i in range(len(options))]
  index2ans = dict(zip(letters, options))
  for ch in _STRIP:
    response = response.strip(ch)
  response = " " + response + " "
  rules = [lambda c: f"({c})", lambda c: f"{c} ", lambda c: f"{c}."]
  candidates, bracket = [], False
  for n, rule in enumerate(rules):
    candidates = [c for c in letters if rule(c) in response]
    if candidates:
      bracket = n == 0
      break
  by_text = False
  if not candidates and len(response.split()) > 5:
    candidates = [c for c in letters if index2ans[c].lower() in response.lower()]
    by_text = True
  if not candidates:
    return rng.choice(letters)
  if len(candidates) == 1:
    return candidates[0]
  if by_text:
    ends = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
  elif bracket:
    ends = [response.rfind(f"({c})") for c in candidates]
  else:  # the reference looks for " X " here whichever rule found the candidates
    ends = [response.rfind(f" {c} ") for c in candidates]
  return candidates[max(range(len(ends)), key=lambda i: (ends[i], -i))]  # np.argmax


def _numbers(text: str) -> list[str]:
  commas = re.findall(r"-?\b\d{1,3}(?:,\d{3})+\b", text)
  sci = re.findall(r"-?\d+(?:\.\d+)?[eE][+-]?\d+", text)
  simple = re.findall(r"-?(?:\d+\.\d+|\.\d+|\d+)(?![eE][+-]?\d+)(?![,\d])", text)
  return commas + sci + simple


def _is_number(text: str) -> bool:
  try:
    float(text.replace(",", ""))
    return True
  except ValueError:
    return False


def normalize(text: str) -> list:
  text = text.strip()
  if _is_number(text):
    return [round(float(text.replace(",", "")), 2)]
  text = text.lower()
  return [" " + text, text + " "] if len(text) == 1 else [text]


def _key_responses(response: str) -> list[str]:
  response = response.strip().strip(".").lower()
  # The reference splits the lower-cased text on r"\.\s(?=[A-Z])": only newlines split.
  subs = re.split(r"\.\s(?=[A-Z])|\n", response)
  indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ",
                "result "]
  keys = []
  for i, resp in enumerate(subs):
    if i == len(subs) - 1:
      indicators = indicators + ["="]
    shortest = None
    for ind in indicators:
      if ind in resp:
        tail = resp.split(ind)[-1].strip()
        if shortest is None or len(tail) < len(shortest):
          shortest = tail
    if shortest and shortest.strip() not in (":", ",", ".", "!", "?", ";", "'"):
      keys.append(shortest)
  return keys or [response]


def open_response(response: str) -> list:
  keys = _key_responses(response)
  preds = list(keys)
  for k in keys:
    preds.extend(_numbers(k))
  out = []
  for p in preds:
    out.extend(normalize(p))
  return list(dict.fromkeys(out))


def eval_open(gold, preds: list) -> bool:
  golds = []
  for g in (gold if isinstance(gold, list) else [gold]):
    golds.extend(normalize(str(g)))
  for p in preds:
    if isinstance(p, str):
      if any(isinstance(g, str) and g in p for g in golds):
        return True
    elif p in golds:
      return True
  return False
