"""VQA answer normalisation as the official VQA evaluation does it
(GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py @ c4e6a0e), with
the EvalAI answer processor that lmms-eval and mmf use for TextVQA.

  process_punctuation(text)   the official punctuation rule (quirks kept)
  process_digit_article(text) lower case, number words -> digits, articles dropped,
                              contractions restored
  prediction(text)            official: newline/tab -> space, strip, punctuation, digits
  evalai(text)                EvalAI / lmms-eval: lower, drop ',' and '?', "'s" -> " 's",
                              then punctuation and digits (TextVQA's processor)
  official_gt(answers)        official: punctuation on each GT answer only when the ten
                              answers are not all the same (the release is normalised)
  lmms_eval_pair(pred, answers)  lmms-eval's VQAv2 variant of the same

The rules, exactly as the reference code has them:
- The punctuation marks are ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? ! (':' and "'" are
  not among them). Each mark is deleted when it stands next to a space anywhere in the
  ORIGINAL text, or when the text holds a digit-comma-digit anywhere; otherwise it is
  replaced by a space.
- The period rule `(?!<=\\d)(\\.)(?!\\d)` has a typo (a lookahead, not a lookbehind): it
  deletes every '.' not followed by a digit. It is called with count=re.UNICODE (= 32),
  so at most 32 periods go.
"""

import re

PUNCTUATION = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
               ">", "<", "@", "`", ",", "?", "!"]
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")

# The official table (keys are matched after lower-casing, so "Im" etc. never match).
_CONTRACTION_PAIRS = """aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't
couldn'tve:couldn't've couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't
hadnt:hadn't hadnt've:hadn't've hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd
hed've:he'd've he'dve:he'd've hes:he's howd:how'd howll:how'll hows:how's Id've:I'd've
I'dve:I'd've Im:I'm Ive:I've isnt:isn't itd:it'd itd've:it'd've it'dve:it'd've itll:it'll
let's:let's maam:ma'am mightnt:mightn't mightnt've:mightn't've mightn'tve:mightn't've
mightve:might've mustnt:mustn't mustve:must've neednt:needn't notve:not've oclock:o'clock
oughtnt:oughtn't ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't
shed've:she'd've she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't
shouldnt've:shouldn't've shouldn'tve:shouldn't've somebody'd:somebodyd
somebodyd've:somebody'd've somebody'dve:somebody'd've somebodyll:somebody'll
somebodys:somebody's someoned:someone'd someoned've:someone'd've someone'dve:someone'd've
someonell:someone'll someones:someone's somethingd:something'd somethingd've:something'd've
something'dve:something'd've somethingll:something'll thats:that's thered:there'd
thered've:there'd've there'dve:there'd've therere:there're theres:there's theyd:they'd
theyd've:they'd've they'dve:they'd've theyll:they'll theyre:they're theyve:they've
twas:'twas wasnt:wasn't wed've:we'd've we'dve:we'd've weve:we've werent:weren't
whatll:what'll whatre:what're whats:what's whatve:what've whens:when's whered:where'd
wheres:where's whereve:where've whod:who'd whod've:who'd've who'dve:who'd've wholl:who'll
whos:who's whove:who've whyll:why'll whyre:why're whys:why's wont:won't wouldve:would've
wouldnt:wouldn't wouldnt've:wouldn't've wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll
y'allll:y'all'll yall'd've:y'all'd've y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd
youd've:you'd've you'dve:you'd've youll:you'll youre:you're youve:you've"""
CONTRACTIONS = dict(p.split(":", 1) for p in _CONTRACTION_PAIRS.split())


def process_punctuation(text: str) -> str:
  out = text
  strip_all = _COMMA_STRIP.search(text) is not None
  for p in PUNCTUATION:
    if p + " " in text or " " + p in text or strip_all:
      out = out.replace(p, "")
    else:
      out = out.replace(p, " ")
  return _PERIOD_STRIP.sub("", out, re.UNICODE)  # count=32: the reference's quirk


def process_digit_article(text: str) -> str:
  words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
  words = [w for w in words if w not in ARTICLES]
  return " ".join(CONTRACTIONS.get(w, w) for w in words)


def prediction(text: str) -> str:
  text = text.replace("\n", " ").replace("\t", " ").strip()
  return process_digit_article(process_punctuation(text))


def evalai(text: str) -> str:
  text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
  text = text.replace("\n", " ").replace("\t", " ").strip()
  return process_digit_article(process_punctuation(text))


def official_gt(answers: list[str]) -> list[str]:
  if len(set(answers)) > 1:
    return [process_punctuation(a) for a in answers]
  return list(answers)


def lmms_eval_pair(pred: str, answers: list[str]) -> tuple[str, list[str]]:
  """lmms-eval tasks/vqav2/utils.py: the prediction through the EvalAI processor; GT
  answers stripped; when they differ, GT answers and the prediction (again) through
  punctuation and digits/articles."""
  pred = evalai(pred)
  answers = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
  if len(set(answers)) > 1:
    answers = [process_digit_article(process_punctuation(a)) for a in answers]
    pred = process_digit_article(process_punctuation(pred))
  return pred, answers
