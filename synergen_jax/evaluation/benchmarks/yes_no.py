"""Yes/no answer parsing: POPE's three common conventions and MME's.

  pope(text, convention) -> "yes" | "no" | "other"
    "lmms_eval"  (default) lmms-eval tasks/pope/utils.py: text.lower().strip() must
                 be exactly "yes" or "no"; "Yes." or "Yes, there is." is "other" (wrong,
                 and neither positive nor negative in precision / recall).
    "llava"      LLaVA llava/eval/eval_pope.py: keep the text before the first '.',
                 drop ',', split on ' '; "no" if any word is 'No', 'not' or 'no', else
                 "yes" (never "other").
    "vlmevalkit" VLMEvalKit YOrN_Extraction: lower, the VQA punctuation rule, split;
                 'yes' without 'no' -> yes, 'no' without 'yes' -> no, else other.
  mme(text) -> "yes" | "no" | "other"
    lmms-eval tasks/mme/utils.py parse_pred_ans (the official MME calculation.py):
    lower, strip, drop '.'; exactly yes/no; one letter y/n; else 'yes' in the first 4
    characters, else 'no' in them, else other.
"""

from synergen_jax.evaluation.benchmarks import vqa_normalize

POPE_CONVENTIONS = ("lmms_eval", "llava", "vlmevalkit")


def pope(text: str, convention: str = "lmms_eval") -> str:
  if convention == "lmms_eval":
    t = text.lower().strip()
    return t if t in ("yes", "no") else "other"
  if convention == "llava":
    t = text.split(".")[0] if "." in text else text
    words = t.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"
  if convention == "vlmevalkit":
    words = vqa_normalize.process_punctuation(text.lower()).split()
    if "yes" in words and "no" not in words:
      return "yes"
    if "no" in words and "yes" not in words:
      return "no"
    return "other"
  raise ValueError(f"unknown POPE parsing convention {convention!r}; known: {POPE_CONVENTIONS}")


def mme(text: str) -> str:
  t = text.lower().strip().replace(".", "")
  if t in ("yes", "no"):
    return t
  if len(t) == 1:
    return {"y": "yes", "n": "no"}.get(t, "other")
  head = t[:4]
  if "yes" in head:
    return "yes"
  if "no" in head:
    return "no"
  return "other"
