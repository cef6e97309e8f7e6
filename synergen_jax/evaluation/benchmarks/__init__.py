"""The standard benchmarks, offline: loaders for the files as distributed, prompts and
answer parsing after lmms-eval (variants behind flags), scorers that follow the
reference tools, and the runner behind `evaluate --benchmark` / `score`.

  records        ImageRef, Skips (bad rows counted by reason), JSONL / parquet streaming
  load_<name>    one loader per benchmark: load(data_dir, skips, images=True) -> items
  prompts        the prompt of an item (named conventions)
  vqa_normalize  the official VQA answer normalisation (and lmms-eval's variant)
  yes_no         yes/no parsing: POPE (lmms-eval, LLaVA, VLMEvalKit), MME
  options        option-letter extraction (MMBench, VLMEvalKit's can_infer)
  mmmu_parse     MMMU's multiple-choice and open-answer parsing
  score_<name>   the metrics of a benchmark from items + predictions
  geneval_rules  GenEval's rule engine behind a Detector interface
  geneval_summary  GenEval's summary of results.jsonl
  registry       name -> Benchmark (loader, prompt, max tokens, scorer, submission)
  predictions    predictions.jsonl read / append (resume)
  runner         run a workdir's model on a benchmark
  report         report.md

An item is a dict: key (the prediction key), question_id (the benchmark's own id),
question, image (ImageRef or None), gt (what the scorer needs), fields (extra keys a
prediction line carries, e.g. MME's question).
"""

NAMES = ("vqav2", "textvqa", "gqa", "pope", "mme", "mmbench", "mmmu", "geneval")
