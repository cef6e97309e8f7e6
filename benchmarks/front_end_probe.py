"""How many images does the folding front-end need to see shapes? The LLM taken out.

  python benchmarks/front_end_probe.py --vq=runs/demo/vq --task=shape --scenes=2400
  python benchmarks/front_end_probe.py --vq=runs/demo/vq --task=named --scenes=12000 --steps=4000

The demo model's image input is `TokenFold` (VQ-code table from the VQ codebook, as stage 1
starts it, + 2-D position embedding, folded m x n, LayerNorm -> Linear -> GELU -> Linear).
This probe trains that same module, at the experiment's sizes, with the smallest reader on
top instead of the LLM, on freshly rendered scenes encoded by the VQ tokenizer:

  --task=shape  the shape of the only object of single-object scenes (5 classes): folded
                tokens -> mean -> linear. Can the tokens be read at all, and from how many
                distinct images?
  --task=named  the colour of the object named by its shape and the shape of the object
                named by its colour, in scenes of 1-4 objects (the VQA's colour and shape
                questions; only objects the name picks out uniquely): a query embedding of
                the name + `--layers` pre-LN transformer blocks over [query, folded
                tokens] -> linear at the query. Binding, the skill every question that
                names an object needs.

Every `--eval_every` steps it prints accuracy on held-out validation scenes and on 1,000 of
the training examples (a wide gap = memorised images, not learnt shapes). The numbers say
how many examples the skill costs with the LLM out of the way: a lower bound on what the
demo's recipe must show the model (benchmarks/grounding_probe.py measures the LLM itself).
`--shift=K` moves each training image by up to K codes in x and y (background code fill).
`--slot_shared` starts the fold's fc1 slot-shared (model.fold_slot_shared_init).
`--cell=C --max_objects=M` render the in-cell world (data_pipelines/scenes/render.py placement);
the default (0, 4) is the free world.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from data_pipelines.pipeline import augment  # noqa: E402
from data_pipelines.scenes import palette  # noqa: E402
from data_pipelines.scenes import render as scene_render  # noqa: E402
from synergen_jax import image_grid, sharding  # noqa: E402
from synergen_jax.model.folding import TokenFold  # noqa: E402
from synergen_jax import experiment  # noqa: E402
from synergen_jax.training import vq_code_init  # noqa: E402
from synergen_jax.vq_training import vq_checkpoint  # noqa: E402

SHAPES = palette.SHAPES
COLORS = palette.COLOR_NAMES
NAMES = SHAPES + COLORS  # query vocabulary (the name in the question)
ANSWERS = SHAPES + COLORS
TRAIN_EVAL = 1000


def render(task: str, split: str, count: int, image_size: int, cell: int = 0,
           max_objects: int = 4):
  """(images uint8 [N, S, S, 3], examples [(image index, name id, answer id)])."""
  images, examples, seed = [], [], 0
  while len(images) < count:
    scene = scene_render.sample_scene(seed, image_size, split, cell=cell, max_objects=max_objects)
    seed += 1
    objects = scene["objects"]
    if task == "shape":
      if len(objects) != 1 or scene["text"]:
        continue
      examples.append((len(images), 0, ANSWERS.index(objects[0]["shape"])))
    else:
      shapes = [o["shape"] for o in objects]
      colors = [o["color"] for o in objects]
      for o in objects:
        if shapes.count(o["shape"]) == 1:  # "What color is the <shape>?"
          examples.append((len(images), NAMES.index(o["shape"]), ANSWERS.index(o["color"])))
        if colors.count(o["color"]) == 1:  # "What shape is the <colour> object?"
          examples.append((len(images), NAMES.index(o["color"]), ANSWERS.index(o["shape"])))
    images.append(scene_render.draw_scene(scene))
  return np.stack(images), np.asarray(examples, np.int32)


class Reader(nn.Module):
  """TokenFold as the model builds it + the smallest reader for the task."""
  task: str
  layers: int
  model_config: object
  slot_shared: bool = False

  @nn.compact
  def __call__(self, codes, names):  # codes [B, h, w]; names [B]
    c = self.model_config
    m, n = c.fold
    patches = image_grid.fold_grid(codes, m, n)  # [B, P, m*n]
    p = patches.shape[1]
    x = TokenFold(c.codebook_size, c.code_embed_dim, tuple(c.tile_grid), (m, n), c.embed_dim,
                  init_scale=c.fold_init_scale, slot_shared=self.slot_shared, name="fold")(
                      patches, jnp.broadcast_to(jnp.arange(p), patches.shape[:2]))  # [B, P, d]
    if self.task == "shape":
      return nn.Dense(len(ANSWERS))(nn.LayerNorm()(x.mean(axis=1)))
    x = x + self.param("token_position", nn.initializers.normal(0.02), (p, c.embed_dim))
    h = jnp.concatenate([nn.Embed(len(NAMES), c.embed_dim)(names)[:, None], x], axis=1)
    for _ in range(self.layers):  # [B, 1 + P, d]
      h = h + nn.SelfAttention(num_heads=4)(nn.LayerNorm()(h))
      h = h + nn.Dense(c.embed_dim)(nn.gelu(nn.Dense(4 * c.embed_dim)(nn.LayerNorm()(h))))
    return nn.Dense(len(ANSWERS))(nn.LayerNorm()(h[:, 0]))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--vq", required=True, help="VQ tokenizer workdir (e.g. runs/demo/vq)")
  p.add_argument("--config", default="experiments/demo.py", help="experiment: model sizes")
  p.add_argument("--task", choices=("shape", "named"), default="shape")
  p.add_argument("--scenes", type=int, default=2400, help="distinct training images")
  p.add_argument("--val_scenes", type=int, default=1000)
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--layers", type=int, default=1, help="--task=named: transformer blocks")
  p.add_argument("--shift", type=int, default=0)
  p.add_argument("--slot_shared", action="store_true", help="fc1 starts slot-shared")
  p.add_argument("--cell", type=int, default=0, help="0 = free world; else in-cell")
  p.add_argument("--max_objects", type=int, default=4)
  p.add_argument("--eval_every", type=int, default=100)
  p.add_argument("--codes_cache", default="", help=".npz of the encoded scenes: written on "
                 "the first run, read by later runs with the same data flags")
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args()

  path = os.path.abspath(args.config)
  config = experiment.load_sibling(path, os.path.splitext(os.path.basename(path))[0]).get_config()
  model_config = config.model
  tok, variables, _ = vq_checkpoint.load_tokenizer(args.vq)
  encode = tok.batch_encoder(variables)
  size = int(config.data.image_size)
  t0 = time.time()
  data = {}
  key = f"{args.task}_{args.scenes}_{args.val_scenes}_{args.cell}_{args.max_objects}"
  if args.codes_cache and os.path.isfile(args.codes_cache):
    with np.load(args.codes_cache) as z:
      if str(z["key"]) != key:
        raise SystemExit(f"--codes_cache {args.codes_cache} holds {z['key']}, not {key}")
      data = {s: (z[f"{s}_codes"], z[f"{s}_examples"]) for s in ("train", "validation")}
  for split, count in (("train", args.scenes), ("validation", args.val_scenes)):
    if split in data:
      continue
    images, examples = render(args.task, split, count, size, args.cell, args.max_objects)
    codes = np.concatenate([np.asarray(encode(images[i:i + 256]))
                            for i in range(0, len(images), 256)])
    data[split] = (codes, examples)
  if args.codes_cache and not os.path.isfile(args.codes_cache):
    np.savez(args.codes_cache, key=key, **{f"{s}_{k}": v for s, (c, e) in data.items()
                                           for k, v in (("codes", c), ("examples", e))})
  print(json.dumps({"task": args.task, "train_images": args.scenes, "shift": args.shift,
                    "slot_shared": args.slot_shared, "cell": args.cell,
                    "train_examples": len(data["train"][1]),
                    "val_examples": len(data["validation"][1]),
                    "data_s": round(time.time() - t0, 1)}), flush=True)

  reader = Reader(args.task, args.layers, model_config, args.slot_shared)
  codes, examples = data["train"]
  params = sharding.unbox(reader.init(jax.random.PRNGKey(args.seed), codes[:2],
                                      examples[:2, 1])["params"])
  table = np.asarray(params["fold"]["code_embed"])
  params["fold"]["code_embed"] = table + vq_code_init.structured_table(
      vq_code_init.codebook_of(args.vq), table.shape[1], float(np.sqrt(np.mean(table**2))),
      args.seed)
  tx = optax.adamw(args.lr, b1=0.9, b2=0.95, weight_decay=0.0)
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, opt_state, codes, names, answers):
    def loss_fn(params):
      logits = reader.apply({"params": params}, codes, names)
      return optax.softmax_cross_entropy_with_integer_labels(logits, answers).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda params, c, n: reader.apply({"params": params}, c, n).argmax(-1))

  def accuracy(params, split, limit=None) -> dict:
    codes, ex = data[split]
    ex = ex[:limit]
    right = np.asarray(predict(params, codes[ex[:, 0]], ex[:, 1])) == ex[:, 2]
    out = {"all": round(float(right.mean()), 3)}
    if args.task == "named":
      asks_color = ex[:, 1] < len(SHAPES)  # named by its shape -> colour answer
      out.update(color=round(float(right[asks_color].mean()), 3),
                 shape=round(float(right[~asks_color].mean()), 3))
    return out

  rng = np.random.default_rng(args.seed)
  train_s, losses = 0.0, []
  for step in range(1, args.steps + 1):
    pick = examples[rng.integers(len(examples), size=args.batch)]
    batch_codes = codes[pick[:, 0]]
    if args.shift:
      batch_codes = augment.shift_codes(batch_codes, args.shift, rng)
    t = time.time()
    params, opt_state, loss = train_step(params, opt_state, batch_codes, pick[:, 1], pick[:, 2])
    losses.append(float(loss))
    train_s += time.time() - t
    if step % args.eval_every == 0 or step == args.steps:
      print(json.dumps({"step": step, "examples_seen": step * args.batch,
                        "loss": round(float(np.mean(losses[-args.eval_every:])), 3),
                        "val": accuracy(params, "validation"),
                        "train": accuracy(params, "train", TRAIN_EVAL),
                        "train_s": round(train_s, 1)}), flush=True)


if __name__ == "__main__":
  main()
