"""The prompt an item is asked with, per benchmark, after lmms-eval's task defaults
(the most used harness); other conventions are named variants (`--prompt=`).

  PROMPTS[benchmark] -> {variant: fn(item) -> str}; DEFAULT[benchmark] -> variant
  build(benchmark, item, variant=None) -> str

  vqav2, gqa, pope  lmms_eval: "{question}\\nAnswer the question using a single word or
                    phrase."   plain: the question alone
  textvqa           lmms_eval: "{question.capitalize()}\\nAnswer ..." (lmms-eval's
                    default ocr: false)   lmms_eval_ocr: with "\\nReference OCR token:
                    {tokens}" before the instruction
  mme               as_given (default): the question as the file has it, ending with
                    " Please answer yes or no." (MME's own protocol; VLMEvalKit keeps it)
                    lmms_eval (tasks/mme/utils.py with mme.yaml's default post_prompt):
                    that sentence removed and "\\nAnswer the question using a single
                    word or phrase." added
  mmbench           lmms_eval (en_utils.py mmbench_doc_to_text): "{hint} {question} There
                    are several options:\\nA. ..\\nB. ..\\nAnswer with the option's letter
                    from the given choices directly." (no hint: "{question} There ...")
                    vlmevalkit: "Hint: {hint}\\nQuestion: {question}\\nOptions:\\nA. ..\\n
                    Please select the correct answer from the options above. \\n"
  mmmu              lmms_eval: "{question}\\n{A. opt\\nB. opt ...}\\n\\nAnswer with the option's
                    letter from the given choices directly." (open questions:
                    "{question}\\n\\nAnswer the question using a single word or phrase.");
                    "<image i>" tags stay in the text (lmms-eval's interleaved_format: false)
"""

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "Answer with the option's letter from the given choices directly."


def _short(item):
  return f"{item['question']}{SHORT}"


def _plain(item):
  return item["question"]


def _textvqa(item):
  return f"{item['question'].capitalize()}{SHORT}"


def _textvqa_ocr(item):
  ocr = f"\nReference OCR token: {', '.join(item.get('ocr_tokens') or [])}"
  return f"{item['question'].capitalize()}{ocr}{SHORT}"


def _mme_lmms(item):
  return f"{item['question'].strip().replace(' Please answer yes or no.', '')}{SHORT}"


def _options(options: dict) -> str:
  return "".join(f"{k}. {v}\n" for k, v in options.items())


def _mmbench_lmms(item):
  gt = item["gt"]
  opts = ("There are several options:\n" + _options(gt["options"])).rstrip("\n")
  query = (f"{gt['hint']} {item['question']} {opts}" if gt["hint"] else
           f"{item['question']} {opts}")
  return f"{query}\n{LETTER}"


def _mmbench_vlmevalkit(item):
  gt = item["gt"]
  hint = f"Hint: {gt['hint']}\n" if gt["hint"] else ""
  return (f"{hint}Question: {item['question']}\nOptions:\n{_options(gt['options'])}"
          "Please select the correct answer from the options above. \n")


def _mmmu(item):
  gt = item["gt"]
  if gt["question_type"] == "multiple-choice" and gt["options"]:
    opts = "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(gt["options"]))
    return f"{item['question']}\n{opts}\n\n{LETTER}"
  return f"{item['question']}\n\nAnswer the question using a single word or phrase."


PROMPTS = {
    "vqav2": {"lmms_eval": _short, "plain": _plain},
    "gqa": {"lmms_eval": _short, "plain": _plain},
    "pope": {"lmms_eval": _short, "plain": _plain},
    "textvqa": {"lmms_eval": _textvqa, "lmms_eval_ocr": _textvqa_ocr},
    "mme": {"as_given": _plain, "lmms_eval": _mme_lmms},
    "mmbench": {"lmms_eval": _mmbench_lmms, "vlmevalkit": _mmbench_vlmevalkit},
    "mmmu": {"lmms_eval": _mmmu},
}
DEFAULT = {"vqav2": "lmms_eval", "gqa": "lmms_eval", "pope": "lmms_eval",
           "textvqa": "lmms_eval", "mme": "as_given", "mmbench": "lmms_eval",
           "mmmu": "lmms_eval"}


def build(benchmark: str, item: dict, variant: str | None = None) -> str:
  variant = variant or DEFAULT[benchmark]
  if variant not in PROMPTS[benchmark]:
    raise ValueError(f"--prompt={variant!r} is not a {benchmark} prompt; known: "
                     f"{sorted(PROMPTS[benchmark])}")
  return PROMPTS[benchmark][variant](item)
