"""MMBench circular and vanilla accuracy, offline (VLMEvalKit's circular evaluation
with the exact-matching extractor; no judge model).

  score(items, preds) -> {circular_accuracy, vanilla_accuracy (0-100),
      circular/<category>, circular/l2/<l2-category>, groups, incomplete_groups,
      unparsed, scored}

Each row's answer goes through options.extract against that row's own options; the row
is right when the letter equals the row's GT letter (a failed extraction is wrong).
Rows with index % 1e6 equal form a question's group (its rotations); a group counts
only when every row of it is right (circular accuracy, over groups; categories from
the group's main row). Vanilla accuracy uses the main rows (index < 1e6) alone. A
group whose rows lack predictions (e.g. --limit) is left out and counted in
incomplete_groups; rows without a GT letter (the test split) are not scored.
"""

import collections

from synergen_jax.evaluation.benchmarks import options as opt
from synergen_jax.evaluation.benchmarks.load_mmbench import ROTATION


def score(items, preds, all_items=None) -> dict:
  """all_items: every loaded row (to tell complete groups); default `items`."""
  size = collections.Counter(it["gt"]["group"] for it in (all_items or items)
                             if it["gt"]["answer"])
  rows = collections.defaultdict(list)
  main = {}
  unparsed = 0
  for it in items:
    gt = it["gt"]
    if not gt["answer"]:
      continue
    letter = opt.extract(preds[it["key"]], gt["options"])
    unparsed += letter is None
    rows[gt["group"]].append(letter == gt["answer"])
    if it["question_id"] < ROTATION:
      main[gt["group"]] = (letter == gt["answer"], gt)
  complete = [g for g in rows if len(rows[g]) == size[g] and g in main]
  hit = {g: all(rows[g]) for g in complete}
  out = {"circular_accuracy": 100 * sum(hit.values()) / len(hit) if hit else 0.0,
         "vanilla_accuracy": 100 * sum(ok for ok, _ in main.values()) / len(main) if main else 0.0,
         "groups": len(complete), "incomplete_groups": len(rows) - len(complete),
         "unparsed": unparsed, "scored": sum(len(v) for v in rows.values())}
  for key, prefix in (("category", "circular/"), ("l2_category", "circular/l2/")):
    cats = collections.defaultdict(list)
    for g in complete:
      cats[main[g][1][key]].append(hit[g])
    out.update({f"{prefix}{c}": 100 * sum(v) / len(v) for c, v in sorted(cats.items())})
  return out
