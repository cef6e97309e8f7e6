"""Per-device statistics of one execution of a compiled HLO module: FLOPs (matmuls and
Mosaic kernels, split by model part) and collectives.

  stats = hlo_stats(compiled.as_text())   # matmul + kernel FLOPs, collectives

Why parse the HLO: XLA's `cost_analysis()` counts the body of every while loop once,
and this model is loops all the way down (layers under `nn.scan`, chunked losses,
gradient accumulation), so its "flops" are far below what a step executes; it also
gives 0 for Pallas kernels (custom calls). `hlo_stats` walks the compiled, partitioned
(per-device) module instead: dot / convolution FLOPs (2 per multiply-add) of every
computation, fusion and call, while-loop bodies multiplied by their trip counts
(`hlo.trip_count`), Mosaic kernels estimated from their shapes (splash attention, causal
block-sparse: the forward does 2 matmuls, the dq kernel 3, the dkv kernel 4; XLA's
grouped matmul for `ragged_dot`, which is how the MMoE runs on TPU; the megablox `gmm` /
`tgmm` kernels of `mmoe_impl="gmm"` from their own cost estimate, a one-expert weight
gradient scaled to that expert's rows: `_megablox_row_share`), and every
collective with its bytes, counted as often as it runs. FLOPs are also split by model
part (`model_part`, from the op names XLA keeps). Element-wise work is not counted (the
analytic count in `flops.py` counts matmuls only, too).
"""

import collections
import dataclasses
import math
import re

from synergen_jax.tpu.hlo import (DTYPE_BYTES, Computation, Instr, arrays, attr, int_list,
                                  parse_module, shape_bytes, trip_count)

COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all",
               "collective-permute", "ragged-all-to-all", "collective-broadcast")


@dataclasses.dataclass
class Stats:
  matmul_flops: float = 0.0       # dot / convolution instructions
  kernel_flops: float = 0.0       # Mosaic kernels (splash, grouped matmul), estimated
  attention_flops: float = 0.0    # of which splash attention
  attention_kernels: float = 0.0  # splash kernel launches
  collectives: dict = dataclasses.field(
      default_factory=lambda: collections.defaultdict(lambda: {"count": 0.0, "bytes": 0.0}))
  collective_groups: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(set))
  unknown_loops: int = 0
  by_part: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(float))

  def add(self, other: "Stats", times: float = 1.0) -> None:
    self.matmul_flops += times * other.matmul_flops
    self.kernel_flops += times * other.kernel_flops
    for k, v in other.by_part.items():
      self.by_part[k] += times * v
    self.attention_flops += times * other.attention_flops
    self.attention_kernels += times * other.attention_kernels
    for k, v in other.collectives.items():
      self.collectives[k]["count"] += times * v["count"]
      self.collectives[k]["bytes"] += times * v["bytes"]
    for k, v in other.collective_groups.items():
      self.collective_groups[k] |= v
    self.unknown_loops += other.unknown_loops

  @property
  def flops(self) -> float:
    return self.matmul_flops + self.kernel_flops


def _taps(size: int, window: int, stride: int, pad_lo: int, lhs_dilate: int,
          rhs_dilate: int, out: int) -> float:
  """Mean number of window taps per output position that land on real input elements
  (not padding, not holes from lhs dilation) along one spatial dim."""
  dilated = (size - 1) * lhs_dilate + 1
  if out * window > 1 << 20:  # large real convolutions: padding is a thin border
    return window / lhs_dilate
  hits = 0
  for o in range(out):
    for t in range(window):
      pos = o * stride + t * rhs_dilate - pad_lo
      hits += 0 <= pos < dilated and pos % lhs_dilate == 0
  return hits / max(out, 1)


def _conv_flops(ins: Instr, comp: Computation) -> float:
  """2 x output elements x multiply-adds per output: the kernel's input features times,
  per spatial dim, the window taps that hit real input. (TPU writes batched and outer
  products as convolutions whose batch dims are spatial dims with lhs dilation or
  padding as large as the window: one tap each.)"""
  out = arrays(ins.shape)
  ops = [comp.by_name.get(o) for o in ins.operands[:2]]
  labels = attr(ins.attrs, "dim_labels")
  if not out or None in ops or len(ops) < 2 or not labels or "->" not in labels:
    return 0.0
  inputs, out_labels = labels.split("->")
  if "_" not in inputs:
    return 0.0
  lhs_labels, rhs_labels = inputs.split("_")
  lhs_arr, rhs_arr = arrays(ops[0].shape), arrays(ops[1].shape)
  if (not lhs_arr or not rhs_arr or len(lhs_arr[0][1]) != len(lhs_labels)
      or len(rhs_arr[0][1]) != len(rhs_labels) or len(out[0][1]) != len(out_labels)):
    return 0.0
  lhs = dict(zip(lhs_labels, lhs_arr[0][1]))
  rhs = dict(zip(rhs_labels, rhs_arr[0][1]))
  res = dict(zip(out_labels, out[0][1]))
  spatial = sorted(l for l in rhs_labels if l.isdigit())
  window = re.search(r"window=\{([^}]*)\}", ins.attrs)
  text = window.group(1) if window else ""

  def field(key, default):
    m = re.search(rf"\b{key}=([0-9_x\-]+)", text)
    if not m:
      return [default] * len(spatial)
    return m.group(1).split("x")

  sizes = [int(v) for v in field("size", 1)] if window else [rhs[l] for l in spatial]
  strides = [int(v) for v in field("stride", 1)]
  pads = [int(str(v).split("_")[0]) for v in field("pad", "0_0")]
  lhs_dil = [int(v) for v in field("lhs_dilate", 1)]
  rhs_dil = [int(v) for v in field("rhs_dilate", 1)]
  taps = 1.0
  for j, l in enumerate(spatial):
    taps *= _taps(lhs.get(l, 1), sizes[j], strides[j], pads[j], lhs_dil[j], rhs_dil[j],
                  res.get(l, 1))
  return 2.0 * math.prod(out[0][1]) * rhs.get("i", 1) * taps


def _dot_flops(ins: Instr, comp: Computation) -> float:
  out = arrays(ins.shape)
  lhs = comp.by_name.get(ins.operands[0]) if ins.operands else None
  if not out or lhs is None or not arrays(lhs.shape):
    return 0.0
  dims = arrays(lhs.shape)[0][1]
  contraction = math.prod(dims[i] for i in int_list(ins.attrs, "lhs_contracting_dims"))
  return 2.0 * math.prod(out[0][1]) * contraction


# Matmuls per kernel of Pallas splash attention (forward; backward dq and dkv kernels;
# a fused backward is one dkv kernel of 5, told apart by its extra dq output).
_SPLASH_MATMULS = (("splash_mqa_fwd", 2), ("splash_mha_fwd", 2), ("splash_mqa_dq", 3),
                   ("splash_mha_dq", 3), ("splash_mqa_dkv", 4), ("splash_mha_dkv", 4))


def _float_operands(ins: Instr, comp: Computation) -> list[tuple[int, ...]]:
  out = []
  for name in ins.operands:
    src = comp.by_name.get(name)
    arr = arrays(src.shape) if src is not None else []
    if arr and arr[0][0] in ("f32", "bf16", "f16") and len(arr[0][1]) >= 2:
      out.append(arr[0][1])
  return out


def _kernel_flops(ins: Instr, comp: Computation, block: int,
                  image_fraction: float) -> tuple[float, str] | None:
  """(FLOPs, part) of a Mosaic kernel (tpu_custom_call), estimated from its shapes:
  splash attention (block-causal) and XLA's grouped matmul for `ragged_dot`
  (2 M K N: every row meets one group's matrix); megablox from its cost estimate."""
  floats = _float_operands(ins, comp)
  matmuls = next((n for prefix, n in _SPLASH_MATMULS if ins.name.startswith(prefix)), None)
  if matmuls is not None and len(floats) >= 2:
    if matmuls == 4 and len(arrays(ins.shape)) >= 5:
      matmuls = 5  # the fused backward: the dk/dv kernel also writes dq (per kv block)
    q, k = floats[0], floats[1]
    kv_len = k[-2]
    nb = max(1, math.ceil(kv_len / block))
    causal = (nb + 1) / (2 * nb)  # block-causal: the diagonal blocks and below
    return matmuls * 2.0 * math.prod(q) * kv_len * causal, "attention kernels (splash)"
  out = arrays(ins.shape)
  if ins.name.startswith("ragged-dot") and len(floats) >= 2 and out:
    rows = floats[0][0]
    other = floats[1] if len(out[0][1]) == 3 else out[0][1]  # weight gradient: [G, K, N]
    return 2.0 * math.prod(floats[0]) * math.prod(other) / max(rows, 1), model_part(ins.attrs)
  if ins.name.startswith(_MEGABLOX):
    # Pallas megablox grouped matmul (mmoe_impl="gmm"): the kernel's own cost estimate,
    # 2 M K N (every row meets one group's matrix), kept in its backend config.
    est = re.search(r"cost_estimate[^{]*\{([^}]*)\}", ins.attrs)
    m = re.search(r'flops[\\"]*:[\\"]*([0-9.e+]+)', est.group(1)) if est else None
    if m:
      share = _megablox_row_share(ins.attrs, image_fraction)
      return share * float(m.group(1)), model_part(ins.attrs)
  return None


_MEGABLOX = ("gmm", "tgmm")  # jax.experimental.pallas.ops.tpu.megablox kernels


def _megablox_row_share(attrs: str, image_fraction: float) -> float:
  """The share of its cost estimate (2 M K N over all M rows) a megablox kernel runs.

  A one-group tgmm (the weight gradient of one expert, the other frozen: mmoe's
  `_expert_gmm`, under the named scope `vision_expert_wgrad` / `text_expert_wgrad`)
  visits only its group's row tiles, a count known at run time only. It is taken as
  `image_fraction` of the rows for the vision expert and the rest for the text expert:
  the share of image tokens the analytic profile (`analysis.capacity_counts`) assumes
  per row (text-only rows, the pad rows and a row tile shared by both groups aside).
  """
  name = _op_name(attrs)
  if "vision_expert_wgrad" in name:
    return image_fraction
  if "text_expert_wgrad" in name:
    return 1.0 - image_fraction
  return 1.0


# Parts of SynerGenVL by the op_name XLA keeps from the trace (first match wins).
_PARTS = (("unfold_head", "unfold head"), ("_image_loss/", "head classifier (codebook)"),
          ("/mmoe/", "FFN experts (MMoE)"), ("/attention/", "attention projections"),
          ("/fold/", "token fold MLP"), ("text_head_loss/", "LM head (vocabulary)"),
          ("d,dv->", "LM head (vocabulary)"))


def _op_name(attrs: str) -> str:
  """An instruction's metadata op_name (the trace's name stack), "" if none."""
  m = re.search(r'op_name="([^"]*)"', attrs)
  return m.group(1) if m else ""


def model_part(attrs: str) -> str:
  """Which part of the model an instruction belongs to, from its metadata op_name."""
  name = _op_name(attrs)
  return next((part for key, part in _PARTS if key in name), "other")


def _group_size(attrs: str) -> tuple[str, int] | None:
  m = re.search(r"replica_groups=mesh\[([^\]]*)\]\s*\{([^}]*)\}", attrs)
  if m:
    sizes = dict((k.strip("' "), int(v)) for k, v in
                 (p.split("=") for p in m.group(1).split(",") if "=" in p))
    axes = [a.strip("' ") for a in m.group(2).split(",") if a.strip("' ")]
    return ",".join(axes), math.prod(sizes.get(a, 1) for a in axes)
  m = re.search(r"replica_groups=\[([0-9,]+)\]<=", attrs)
  if m:
    return "", int(m.group(1).split(",")[-1])
  m = re.search(r"replica_groups=\{\{([0-9,]*)\}", attrs)
  if m:
    return "", len([x for x in m.group(1).split(",") if x])
  return None


def _computation_stats(comps, name: str, memo: dict, block: int,
                       image_fraction: float) -> Stats:
  if name in memo:
    return memo[name]
  memo[name] = Stats()  # guards against cycles
  comp = comps[name]
  st = Stats()
  for ins in comp.instrs:
    op = ins.opcode
    if op in ("convolution", "dot"):
      f = _conv_flops(ins, comp) if op == "convolution" else _dot_flops(ins, comp)
      st.matmul_flops += f
      st.by_part[model_part(ins.attrs)] += f
    elif op == "while":
      body, cond = attr(ins.attrs, "body"), attr(ins.attrs, "condition")
      n = trip_count(comps, comp, ins)
      if n is None:
        st.unknown_loops += 1
        n = 1
      inner = Stats()
      for c in (body, cond):
        if c in comps:
          inner.add(_computation_stats(comps, c, memo, block, image_fraction))
      st.add(inner, n)
    elif op == "conditional":
      names = re.findall(r"%([^\s,{}]+)", (re.search(r"branch_computations=\{([^}]*)\}",
                                                       ins.attrs) or [None, ""])[1])
      names += [attr(ins.attrs, k) for k in ("true_computation", "false_computation")]
      branches = [_computation_stats(comps, c, memo, block, image_fraction)
                  for c in names if c in comps]
      if branches:
        st.add(max(branches, key=lambda s: s.flops))
    elif op == "custom-call" and 'custom_call_target="tpu_custom_call"' in ins.attrs:
      k = _kernel_flops(ins, comp, block, image_fraction)
      if k is not None:
        st.kernel_flops += k[0]
        st.by_part[k[1]] += k[0]
        if k[1].startswith("attention kernels"):
          st.attention_flops += k[0]
          st.attention_kernels += 1
    base = op[:-len("-start")] if op.endswith("-start") else op
    if base in COLLECTIVES:
      if op.endswith("-start"):
        size = max((DTYPE_BYTES[d] * math.prod(s) for d, s in arrays(ins.shape)), default=0)
      else:
        size = max(shape_bytes(ins.shape),
                   sum(shape_bytes(comp.by_name[o].shape) for o in ins.operands
                       if o in comp.by_name))
      st.collectives[base]["count"] += 1
      st.collectives[base]["bytes"] += size
      group = _group_size(ins.attrs)
      if group is not None:
        st.collective_groups[base].add(group)
    for key in ("calls", "to_apply"):
      callee = attr(ins.attrs, key)
      if callee in comps and op not in COLLECTIVES and base not in COLLECTIVES and op not in (
          "reduce", "reduce-window", "scatter", "select-and-scatter", "sort", "map"):
        st.add(_computation_stats(comps, callee, memo, block, image_fraction))
  memo[name] = st
  return st


def hlo_stats(text: str, splash_block: int = 128, image_fraction: float = 0.75) -> dict:
  """Per-device statistics of one execution of a compiled HLO module (see module doc).

  `image_fraction`: the share of rows that are image tokens, as the analytic profile
  assumes (`analysis.capacity_counts`, the report's "image_fraction"); it scales the
  megablox weight gradient of one expert (`_megablox_row_share`).

  Returns {"matmul_flops", "kernel_flops" (of which "attention_flops"), "flops",
  "attention_kernels",
  "collectives": {kind: {"count", "bytes", "groups"}}, "unknown_loops",
  "by_part": {part of the model: FLOPs}}.
  """
  comps, entry = parse_module(text)
  if not entry:
    raise ValueError("no ENTRY computation in the HLO text")
  st = _computation_stats(comps, entry, {}, splash_block, image_fraction)
  return {
      "matmul_flops": st.matmul_flops,
      "kernel_flops": st.kernel_flops,
      "attention_flops": st.attention_flops,
      "flops": st.flops,
      "attention_kernels": st.attention_kernels,
      "collectives": {k: {"count": v["count"], "bytes": v["bytes"],
                          "groups": sorted(f"{a or '?'}:{n}" for a, n in
                                           st.collective_groups.get(k, ()))}
                      for k, v in sorted(st.collectives.items())},
      "unknown_loops": st.unknown_loops,
      "by_part": dict(sorted(st.by_part.items(), key=lambda kv: -kv[1])),
  }
