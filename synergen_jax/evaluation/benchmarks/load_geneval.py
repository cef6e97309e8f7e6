"""GenEval's prompts: evaluation_metadata.jsonl (djghosh13/geneval prompts/), one
{"tag", "prompt", "include": [{class, count, color?, position?}], "exclude"?} per line,
streamed. Items keep the line (GenEval writes it back as each folder's metadata.jsonl)
and its number (the folder name)."""

from synergen_jax.evaluation.benchmarks import records as rec

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def load_metadata(path: str, skips: rec.Skips):
  """(index, metadata dict) per valid line; the index counts every line, valid or not,
  so folder numbers match the line numbers of the file."""
  for n, row in rec.jsonl_rows(path):
    if row is None:
      skips.add(rec.BAD_JSON)
      continue
    if not rec.present(row, "tag", "prompt") or not isinstance(row.get("include"), list):
      skips.add(rec.MISSING_FIELD)
      continue
    yield n - 1, row
