"""Reading an optimized HLO module's text: computations, instructions, array shapes, and
the trip counts of while loops (from XLA's `known_trip_count`, or from the loop condition
`i < N` and the counter's start and step). `hlo_stats` counts on top of it.
"""

import dataclasses
import math
import re

DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1,
               "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
               "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
_ARRAY = re.compile(r"\b([a-z]+[0-9a-z]*)\[([0-9,]*)\]")
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([^\s=]+)\s*=\s*(.*?)\s+([a-z][a-z0-9\-]*)\((.*)$")
_HEADER = re.compile(r"^(?:ENTRY\s+)?%([^\s(]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_NAME = re.compile(r"%([^\s,(){}]+)")


def arrays(shape: str) -> list[tuple[str, tuple[int, ...]]]:
  """[(dtype, dims)] of an HLO shape string (one array or a tuple)."""
  out = []
  for dtype, dims in _ARRAY.findall(re.sub(r"\{[^{}]*\}", "", shape)):
    if dtype in DTYPE_BYTES:
      out.append((dtype, tuple(int(d) for d in dims.split(",") if d)))
  return out


def shape_bytes(shape: str) -> float:
  return float(sum(DTYPE_BYTES[d] * math.prod(dims) for d, dims in arrays(shape)))


@dataclasses.dataclass
class Instr:
  name: str
  shape: str
  opcode: str
  operands: list[str]
  args: str      # the raw text between the parentheses (a constant's literal, ...)
  attrs: str
  root: bool


@dataclasses.dataclass
class Computation:
  name: str
  instrs: list[Instr]
  by_name: dict[str, Instr]

  @property
  def root(self) -> Instr:
    roots = [i for i in self.instrs if i.root]
    return roots[-1] if roots else self.instrs[-1]


def _split_call(rest: str) -> tuple[str, str]:
  """'a, b), attr=...' -> ('a, b', 'attr=...'): the operand list up to its closing paren."""
  depth = 1
  for i, ch in enumerate(rest):
    if ch in "({[":
      depth += 1
    elif ch in ")}]":
      depth -= 1
      if depth == 0:
        return rest[:i], rest[i + 1:]
  return rest, ""


def parse_module(text: str) -> tuple[dict[str, Computation], str]:
  """(computations by name, name of the entry computation) of an HLO module's text."""
  comps: dict[str, Computation] = {}
  entry, current = "", None
  for line in text.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m:
        current = Computation(m.group(1), [], {})
        if line.startswith("ENTRY"):
          entry = m.group(1)
      continue
    if line.rstrip() == "}":
      comps[current.name] = current
      current = None
      continue
    m = _INSTR.match(line)
    if not m:
      if current.instrs:  # an attribute that spans lines (e.g. a kernel's config)
        current.instrs[-1].attrs += "\n" + line
      continue
    operands, attrs = _split_call(m.group(4))
    ins = Instr(m.group(1), m.group(2), m.group(3), _NAME.findall(operands), operands,
                attrs, line.lstrip().startswith("ROOT"))
    current.instrs.append(ins)
    current.by_name[ins.name] = ins
  return comps, entry


def attr(attrs: str, key: str) -> str | None:
  m = re.search(rf"\b{key}=%?([^\s,]+)", attrs)
  return m.group(1) if m else None


def int_list(attrs: str, key: str) -> list[int]:
  m = re.search(rf"\b{key}=\{{([0-9,]*)\}}", attrs)
  return [int(x) for x in m.group(1).split(",") if x] if m else []


# ---- trip counts ----------------------------------------------------------------------------
def _resolve(comps, comp: Computation, name: str, env=None, depth: int = 0):
  """What a scalar value is: ("const", v), ("gte", i) of the computation's parameter
  tuple, ("add", ("gte", i), step), or None."""
  if depth > 12 or name not in comp.by_name:
    return None
  ins = comp.by_name[name]
  op = ins.opcode
  if op == "constant":
    m = re.fullmatch(r"\s*(-?[0-9]+)\s*", ins.args)
    return ("const", int(m.group(1))) if m else None
  if op in ("copy", "bitcast", "convert", "reshape") and ins.operands:
    return _resolve(comps, comp, ins.operands[0], env, depth + 1)
  if op == "get-tuple-element" and ins.operands:
    src = comp.by_name.get(ins.operands[0])
    index = attr(ins.attrs, "index")
    if src is not None and src.opcode == "parameter" and index is not None:
      return ("gte", int(index))
    return None
  if op == "parameter" and env is not None:
    k = int(ins.args) if ins.args.strip().isdigit() else -1
    outer_comp, outer_operands = env
    if 0 <= k < len(outer_operands):
      return _resolve(comps, outer_comp, outer_operands[k], None, depth + 1)
    return None
  if op == "fusion":
    fused = comps.get(attr(ins.attrs, "calls") or "")
    if fused is None:
      return None
    return _resolve(comps, fused, fused.root.name, (comp, ins.operands), depth + 1)
  if op == "add" and len(ins.operands) == 2:
    a = _resolve(comps, comp, ins.operands[0], env, depth + 1)
    b = _resolve(comps, comp, ins.operands[1], env, depth + 1)
    if a and b and a[0] == "gte" and b[0] == "const":
      return ("add", a, b[1])
    if a and b and b[0] == "gte" and a[0] == "const":
      return ("add", b, a[1])
  return None


def _compare(comps, cond: Computation):
  """(counter tuple index, direction, limit) of a loop condition `counter <op> N`."""
  root, comp, env = cond.root, cond, None
  for _ in range(4):
    if root.opcode == "fusion":
      fused = comps.get(attr(root.attrs, "calls") or "")
      if fused is None:
        return None
      env, comp, root = (comp, root.operands), fused, fused.root
    elif root.opcode in ("copy", "bitcast") and root.operands:
      root = comp.by_name[root.operands[0]]
    else:
      break
  if root.opcode != "compare" or len(root.operands) != 2:
    return None
  direction = attr(root.attrs, "direction")
  a = _resolve(comps, comp, root.operands[0], env)
  b = _resolve(comps, comp, root.operands[1], env)
  flip = {"LT": "GT", "GT": "LT", "LE": "GE", "GE": "LE", "NE": "NE", "EQ": "EQ"}
  if a and b and a[0] == "gte" and b[0] == "const":
    return a[1], direction, b[1]
  if a and b and b[0] == "gte" and a[0] == "const":
    return b[1], flip.get(direction, direction), a[1]
  return None


def trip_count(comps, parent: Computation, loop: Instr) -> int | None:
  m = re.search(r'"known_trip_count":\{"n":"([0-9]+)"', loop.attrs)
  if m:
    return int(m.group(1))
  cond = comps.get(attr(loop.attrs, "condition") or "")
  body = comps.get(attr(loop.attrs, "body") or "")
  if cond is None or body is None:
    return None
  cmp = _compare(comps, cond)
  if cmp is None:
    return None
  index, direction, limit = cmp
  init = 0
  if loop.operands:
    tup = parent.by_name.get(loop.operands[0])
    if tup is not None and tup.opcode == "tuple" and index < len(tup.operands):
      v = _resolve(comps, parent, tup.operands[index])
      if v and v[0] == "const":
        init = v[1]
  step = 1
  broot = body.root
  if broot.opcode == "tuple" and index < len(broot.operands):
    v = _resolve(comps, body, broot.operands[index])
    if v and v[0] == "add" and v[1] == ("gte", index) and v[2] != 0:
      step = v[2]
  if direction in ("LT", "NE") and step > 0:
    return max(0, math.ceil((limit - init) / step))
  if direction == "LE" and step > 0:
    return max(0, math.floor((limit - init) / step) + 1)
  if direction == "GT" and step < 0:
    return max(0, math.ceil((init - limit) / -step))
  if direction == "GE" and step < 0:
    return max(0, math.floor((init - limit) / -step) + 1)
  return None
