"""Evaluation of a trained workdir (the library behind `python -m synergen_jax.evaluate`).

  run_evaluation(workdir, stage=None, step=None, vq_dir=None, out_dir=None,
                 parts=PARTS, overrides=None, mesh=None) -> flat metrics dict

Writes out_dir (default W/eval): metrics.json, generated.png, report.md, samples.json;
see synergen_jax/evaluate.py for the keys.
"""

import os
import time

import jax
import numpy as np

from data_pipelines.sources import image_io
from synergen_jax import files
from synergen_jax import workdir as workdir_lib
from synergen_jax.evaluation import data
from synergen_jax.evaluation import geneval
from synergen_jax.evaluation import text_retention
from synergen_jax.evaluation import timing
from synergen_jax.evaluation import vqa
from synergen_jax.evaluation.montage import image_montage
from synergen_jax.inference.session import InferenceSession, pad_prompts

PARTS = ("vqa", "gen", "text", "timing")


def log(msg: str) -> None:
  print(f"[evaluate] {msg}", flush=True)


def evaluate_vqa(session, e) -> tuple[dict, list]:
  metrics, samples = {}, []
  for split in e.vqa_splits:
    t = time.time()
    records, skipped = data.records(session.experiment, split)
    items = vqa.questions(records, int(e.vqa_questions))
    examples = [session.understanding_prompt(it["image"], it["question"],
                                             int(e.max_answer_tokens)) for it in items]
    preds = session.answer_examples(examples, max_new_tokens=int(e.max_answer_tokens),
                                    seed=int(e.seed))
    prefix = "vqa" if split == "validation" else f"vqa/{split}"
    m = vqa.score(items, preds, prefix)
    m[f"{prefix}/skipped_records"] = skipped
    metrics.update(m)
    control = split == "validation" and e.swapped_image_control
    if control and len({it["id"] for it in items}) < 2:
      log("vqa validation: the swapped-image control needs questions about >= 2 images "
          "(raise eval.vqa_questions); skipped")
    elif control:
      swapped = vqa.swap_images(items)
      examples = [session.understanding_prompt(it["image"], it["question"],
                                               int(e.max_answer_tokens)) for it in swapped]
      swapped_preds = session.answer_examples(examples, max_new_tokens=int(e.max_answer_tokens),
                                              seed=int(e.seed))
      sw = vqa.score(swapped, swapped_preds, "vqa/swapped_image")
      sw["vqa/swapped_image/same_answer"] = vqa.same_answer_rate(preds, swapped_preds)
      metrics.update(sw)
      log(f"vqa {split}, each question about another image: exact match "
          f"{sw.get('vqa/swapped_image/overall', 0):.3f}, answer unchanged for "
          f"{sw['vqa/swapped_image/same_answer']:.0%}")
    samples += [{"split": split, "type": it["type"], "question": it["question"],
                 "answer": it["answer"], "prediction": p}
                for it, p in list(zip(items, preds))[:12]]
    log(f"vqa {split}: {len(items)} questions, exact match {m.get(f'{prefix}/overall', 0):.3f} "
        f"({time.time() - t:.1f}s)")
  return metrics, samples


def evaluate_generation(session, e) -> tuple[dict, list]:
  """GenEval-style scores; returns (metrics, grid rows [(prompt, images [k, H, W, 3])])."""
  t = time.time()
  records, skipped = data.records(session.experiment, e.gen_split)
  scenes = [data.scene_graph(r) for r in records]
  by_seed = {s["seed"]: r.image for s, r in zip(scenes, records) if s is not None}
  items = geneval.prompts([s for s in scenes if s is not None], int(e.gen_prompts))
  if not items:
    raise ValueError(f"split {e.gen_split!r} of {session.experiment.data.source.name!r} has no scene "
                     "graphs to build generation prompts from")
  k = int(e.gen_samples)
  prompts = [it["prompt"] for it in items for _ in range(k)]
  images = session.generate(prompts, seed=int(e.seed), cfg_scale=e.guidance,
                            sampling=e.sampling)
  per_item = [images[i * k:(i + 1) * k] for i in range(len(items))]
  metrics = geneval.score(items, per_item, "gen")
  # The dataset's own images as the training data saw them (centre crop to image_size).
  real = np.stack([image_io.resize_center_crop(by_seed[it["scene"]["seed"]],
                                               session.image_size) for it in items])
  metrics.update(geneval.score(items, [[im] for im in real], "gen/reference"))
  recon = session.decode_images(session.encode_images(real))
  metrics.update(geneval.score(items, [[im] for im in recon], "gen/vq_reconstruction"))
  # The prompt-dependence control: each prompt scored on the dataset image of another
  # prompt of its category (rotated by half the category; categories may share scenes):
  # what a generator that ignores its prompt but draws perfect scenes would score.
  metrics.update(geneval.score(items, [[real[j]] for j in geneval.other_prompt_index(items)],
                               "gen/other_prompt_image"))
  # The prompt-following control: each prompt scored on the images generated for another
  # prompt of its category (the same rotation): a generator that ignores its prompt
  # scores here what it scores on its own prompts.
  metrics.update(geneval.score(items, [per_item[j] for j in geneval.other_prompt_index(items)],
                               "gen/generated_other_prompt"))
  metrics["gen/objects_per_prompt"] = geneval.objects_per_prompt(items)
  metrics["gen/prompts"] = len(items)
  metrics["gen/skipped_records"] = skipped
  log(f"generation: {len(prompts)} images, overall {metrics['gen/overall']:.3f} "
      f"({time.time() - t:.1f}s)")
  # Grid: the first prompts of each category in turn.
  order = sorted(range(len(items)), key=lambda i: (
      [j for j in range(len(items)) if items[j]["category"] == items[i]["category"]].index(i),
      geneval.CATEGORIES.index(items[i]["category"])))
  rows = [(f"[{items[i]['category']}] {items[i]['prompt']}", per_item[i])
          for i in order[:int(e.grid_prompts)]]
  return metrics, rows


def evaluate_text(session, e, workdir: str, stage: str) -> dict:
  t = time.time()
  batches = text_retention.text_batches(session.experiment, session.tokenizer,
                                        int(e.text_batches))
  m = text_retention.metrics(session.model, session.mesh, session.variables["params"], batches)
  out = {f"text/{k}": v for k, v in m.items()}
  out["text/batches"] = len(batches)
  where = workdir_lib.start_params_dir(workdir, session.experiment, stage)
  start = (None if where is None else
           workdir_lib.restore_params(where, session.model_config, session.mesh))
  if start is not None:
    s = text_retention.metrics(session.model, session.mesh, start, batches)
    out.update({f"text/start/{k}": v for k, v in s.items()})
    out["text/perplexity_ratio_vs_start"] = m["perplexity"] / s["perplexity"]
    log(f"text: perplexity {m['perplexity']:.3f} vs {s['perplexity']:.3f} at the start of "
        f"stage {stage} ({where}) ({time.time() - t:.1f}s)")
  else:
    log(f"text: perplexity {m['perplexity']:.3f} (the stage's starting params are not at "
        f"hand) ({time.time() - t:.1f}s)")
  pre = workdir_lib.text_pretrained_params_dir(workdir, session.experiment, stage)
  if pre is not None:
    p = (s if pre == where else
         text_retention.metrics(session.model, session.mesh,
                                workdir_lib.restore_params(pre, session.model_config,
                                                           session.mesh), batches))
    out.update({f"text/pretrained/{k}": v for k, v in p.items()})
    out["text/perplexity_ratio_vs_pretrained"] = m["perplexity"] / p["perplexity"]
    log(f"text: perplexity {m['perplexity']:.3f} vs {p['perplexity']:.3f} after text "
        f"pretraining ({pre}): {out['text/perplexity_ratio_vs_pretrained']:.3f}x")
  return out


def evaluate_timing(session, e) -> dict:
  n = int(e.timing_images)
  cond = [session.generation_prompt("A red circle on a dark background.")] * n
  rows = cond + [session.generation_prompt("", uncond=True)] * n
  scale = e.guidance
  prompt = pad_prompts(rows if scale is not None else cond, 2 * n if scale is not None else n,
                       session.tokenizer.pad_id, session.model_config.patch_size)
  t = timing.fold_vs_no_fold(session.model, session.variables, prompt,
                             session.tokenizer.image_id, session.mesh, cfg_scale=scale,
                             sampling=e.sampling)
  log(f"timing: {t['fold_s_per_image'] * 1e3:.1f} ms/image folded "
      f"({t['fold_llm_steps_per_image']} LLM steps) vs {t['no_fold_s_per_image'] * 1e3:.1f} "
      f"ms/image no-fold ({t['no_fold_llm_steps_per_image']} steps): "
      f"{t['speedup']:.2f}x")
  return {f"gen/{k}": v for k, v in t.items()}


def markdown(metrics: dict, samples: list, info: dict) -> str:
  fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
  lines = ["# Evaluation", "", f"Params: {info['source']}  ", f"Devices: {info['devices']}  ",
           f"Wall time: {info['wall_s']:.0f} s", ""]
  types = sorted({k.split("/")[1][:-len("_questions")] for k in metrics
                  if k.startswith("vqa/") and k.endswith("_questions") and k.count("/") == 1})
  if types:
    splits = [("validation", "vqa")] + [(s, f"vqa/{s}") for s in info["vqa_splits"]
                                        if s != "validation"]
    swapped = "vqa/swapped_image/overall" in metrics
    if swapped:
      splits.append(("val., another image", "vqa/swapped_image"))
    lines += ["## Understanding: VQA exact match", "",
              "| type | " + " | ".join(s for s, _ in splits) + " | majority answer (val.) |",
              "|---|" + "---|" * (len(splits) + 1)]
    for t in types + ["overall"]:
      vals = " | ".join(fmt(metrics.get(f"{p}/{t}", "-")) for _, p in splits)
      lines.append(f"| {t} | {vals} | {fmt(metrics.get(f'vqa/{t}_majority', '-'))} |")
    lines += ["", "The majority column answers every question of a type with its most "
              "common answer: the score of a model that ignores the image."]
    if swapped:
      lines += ["\"val., another image\" asks each validation question about another "
                "image of the split (the image-dependence control): a model that looks "
                "falls towards the majority column; "
                f"{metrics['vqa/swapped_image/same_answer']:.0%} of its answers did not "
                "change."]
    lines.append("")
  if "gen/overall" in metrics:
    lines += ["## Generation: GenEval-style (scene scorer on generated pixels)", "",
              f"{metrics['gen/prompts']} prompts x {info['gen_samples']} samples, CFG scale "
              f"{info['cfg_scale']}, temperature {info['gen_temperature']}.", "",
              "| category | generated | generated for another prompt | dataset images "
              "(ceiling) | VQ reconstructions | another prompt's image (floor) |",
              "|---|---|---|---|---|---|"]
    for c in list(geneval.CATEGORIES) + ["overall", "objects_per_image"]:
      if f"gen/{c}" in metrics:
        lines.append(f"| {c} | {fmt(metrics[f'gen/{c}'])} | "
                     f"{fmt(metrics.get(f'gen/generated_other_prompt/{c}', '-'))} | "
                     f"{fmt(metrics.get(f'gen/reference/{c}', '-'))} | "
                     f"{fmt(metrics.get(f'gen/vq_reconstruction/{c}', '-'))} | "
                     f"{fmt(metrics.get(f'gen/other_prompt_image/{c}', '-'))} |")
    lines += ["", "The last column scores each prompt on the dataset image of another prompt: "
              "what a generator that ignores its prompt but draws the dataset's scenes would "
              "score. \"Generated for another prompt\" scores each prompt on the images "
              "generated for another prompt of its category: a generator that follows its "
              "prompts scores far less there than on its own (one that scatters objects "
              "scores alike on both). objects_per_image: objects the scorer finds per image "
              f"(the prompts name {metrics.get('gen/objects_per_prompt', 0):.2f} on average).",
              "", "![generated](generated.png)", ""]
  if "gen/fold_s_per_image" in metrics:
    lines += ["## Generation speed: token folding vs no-fold", "",
              "| | LLM steps / image | s / image |", "|---|---|---|",
              f"| folded | {metrics['gen/fold_llm_steps_per_image']} | "
              f"{metrics['gen/fold_s_per_image']:.4f} |",
              f"| no fold (m = n = 1) | {metrics['gen/no_fold_llm_steps_per_image']} | "
              f"{metrics['gen/no_fold_s_per_image']:.4f} |", "",
              f"Speed-up {metrics['gen/speedup']:.2f}x ({metrics['gen/images_per_call']} "
              "images per call, CFG doubles the rows; compile excluded).", ""]
  if "text/perplexity" in metrics:
    lines += ["## Text-skill retention (text-only split)", "", "| params | perplexity | "
              "next-token accuracy |", "|---|---|---|",
              f"| evaluated | {metrics['text/perplexity']:.3f} | {metrics['text/accuracy']:.4f} |"]
    if "text/start/perplexity" in metrics:
      lines.append(f"| start of the stage | {metrics['text/start/perplexity']:.3f} | "
                   f"{metrics['text/start/accuracy']:.4f} |")
    if "text/pretrained/perplexity" in metrics:
      lines.append(f"| after text pretraining | {metrics['text/pretrained/perplexity']:.3f} | "
                   f"{metrics['text/pretrained/accuracy']:.4f} |")
    lines.append("")
  if samples:
    lines += ["## Sample answers", "", "| split | type | question | answer | model |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['split']} | {s['type']} | {s['question']} | {s['answer']} | "
              f"{s['prediction']} |" for s in samples[:24]]
  return "\n".join(lines) + "\n"


def run_evaluation(workdir: str, stage: str | None = None, step: int | None = None,
                   vq_dir: str | None = None, out_dir: str | None = None,
                   parts=PARTS, overrides: dict | None = None, mesh=None) -> dict:
  for p in parts:
    if p not in PARTS:
      raise ValueError(f"--parts: {p!r} is not one of {PARTS}")
  t0 = time.time()
  exp = workdir_lib.read_experiment(workdir)
  if overrides:  # checked like the config's own eval fields
    exp = exp.replace_eval(**{k: v for k, v in overrides.items() if v is not None})
  e = exp.eval
  session = InferenceSession.load(workdir, stage, step, vq_dir, mesh, batch_size=e.batch_size)
  session.experiment = exp
  stage = stage or workdir_lib.latest_stage(workdir, exp)[0]
  out_dir = out_dir or os.path.join(os.path.abspath(workdir), "eval")
  os.makedirs(out_dir, exist_ok=True)
  log(f"params: {session.source} on {jax.device_count()} device(s); writing {out_dir}")

  metrics, samples = {}, []
  if "vqa" in parts:
    m, samples = evaluate_vqa(session, e)
    metrics.update(m)
  if "gen" in parts:
    m, rows = evaluate_generation(session, e)
    metrics.update(m)
    image_montage(rows).save(os.path.join(out_dir, "generated.png"))
  if "text" in parts:
    metrics.update(evaluate_text(session, e, workdir, stage))
  if "timing" in parts and int(e.timing_images):
    metrics.update(evaluate_timing(session, e))
  info = {"source": session.source, "devices": f"{jax.device_count()} x "
          f"{jax.devices()[0].device_kind}", "wall_s": time.time() - t0,
          "vqa_splits": tuple(e.vqa_splits), "gen_samples": e.gen_samples,
          "cfg_scale": e.cfg_scale, "gen_temperature": e.gen_temperature}
  metrics = {k: (float(v) if not isinstance(v, int) else v) for k, v in metrics.items()}
  _write_json(os.path.join(out_dir, "metrics.json"), metrics)
  _write_json(os.path.join(out_dir, "samples.json"), samples)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(markdown(metrics, samples, info))
  log(f"done in {time.time() - t0:.0f}s: {out_dir}/metrics.json, report.md")
  return metrics


def _write_json(path: str, obj) -> None:
  files.write_json(path, obj, sort_keys=isinstance(obj, dict))
