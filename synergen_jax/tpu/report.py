"""Printing compile reports: the text summary of one stage (`format_report`) and the
markdown table of docs/TPU_FIT.md (`table_row`, `render` of saved JSON reports).
"""

import json


def _g(x: float) -> str:
  return f"{x / 2 ** 30:.2f}"


def format_report(r: dict) -> str:
  m, f = r["memory"], r["flops"]
  tasks = ", ".join(f"{t} {v['rows']} x {v['length']} ({v['rows_per_device']:g}/device)"
                    for t, v in r["tasks"].items())
  lines = [
      f"== {r['experiment']} stage {r['stage']}: {r['topology']} = {r['devices']} x "
      f"{r['device_kind']}, mesh {r['mesh']}",
      f"  batches {tasks}; grad_accum {r['grad_accum_steps']}; remat {r['remat']}; "
      f"attention {r['attention']}; trains {'+'.join(r['trainable'])}",
      f"  compile {r['compile_s']:.1f}s (lower {r['lower_s']:.1f}s)",
      f"  HBM per device {_g(m['total_bytes'])} GiB = arguments {_g(m['argument_bytes'])} + "
      f"outputs {_g(m['output_bytes'])} - donated {_g(m['alias_bytes'])} + temporaries "
      f"{_g(m['temp_bytes'])} + code {_g(m['code_bytes'])}"
      + (f"; capacity {_g(r['hbm_bytes'])} GiB, headroom {r['headroom']:.0%}: "
         f"{'fits' if r['fits'] else 'DOES NOT FIT'}" if r["hbm_bytes"] else ""),
      f"  FLOPs per step: compiled {f['compiled_total']:.4g} (per device "
      f"{f['compiled_per_device']:.4g}, of which splash attention "
      f"{f['compiled_attention_per_device']:.3g}; cost_analysis {f['cost_analysis_per_device']:.3g}"
      f" counts loop bodies once); analytic {f['analytic_total']:.4g}; compiled / analytic "
      f"{f['compiled_over_analytic']:.2f}"
      + (f"; {f['unknown_loops']} loops of unknown trip count counted once"
         if f["unknown_loops"] else ""),
  ]
  if "estimate" in r:
    e = r["estimate"]
    lines.append(f"  estimate: compute {e['compute_s']:.3f}s at {e['peak_flops'] / 1e12:.0f} "
                 f"TFLOP/s, collectives {e['collective_bytes'] / 2 ** 30:.2f} GiB ~ "
                 f"{e['ici_s']:.3f}s at ICI bandwidth"
                 + (f", cross-slice gradients {e['dcn_bytes'] / 2 ** 30:.2f} GiB ~ "
                    f"{e['dcn_s']:.3f}s at DCN bandwidth" if e.get("dcn_s") else "")
                 + f" -> step >= {e['step_s']:.3f}s, "
                 f"MFU <= {e['mfu']:.1%}; collectives not overlapped: step "
                 f"{_serial(r)[0]:.3f}s, MFU {_serial(r)[1]:.1%}")
    if "loss_hbm_s" in e:
      lines.append(f"  the losses' element-wise work: {e['loss_hbm_bytes'] / 2 ** 30:.1f} GiB of "
                   f"HBM traffic ~ {e['loss_hbm_s']:.3f}s ({e['loss_hbm_s'] / e['step_s']:.1%} "
                   "of the bound step; in neither MFU)")
  parts = f.get("compiled_by_part_per_device", {})
  if parts:
    ana = f.get("analytic_by_part", {})
    lines.append("  compiled FLOPs by part (share; compiled / analytic):")
    for k, v in parts.items():
      ratio = v * r["devices"] / ana[k] if ana.get(k) else float("nan")
      lines.append(f"    {k:<30s}{v / max(f['compiled_per_device'], 1):>6.1%}   {ratio:6.2f}")
  lines.append("  collectives per step per device:")
  for kind, c in r["collectives"].items():
    lines.append(f"    {kind:<20s}{c['count']:>10,.0f} x  {c['bytes'] / 2 ** 30:10.3f} GiB  "
                 f"groups {' '.join(c['groups'])}")
  return "\n".join(lines)


def _serial(r: dict) -> tuple[float, float]:
  """(step s, MFU) with the collectives not overlapped (also for reports written before
  the estimate carried them)."""
  e = r["estimate"]
  step = e.get("step_s_serial", e["compute_s"] + e["ici_s"] + e.get("dcn_s", 0.0))
  return step, r["flops"]["analytic_total"] / max(step * e["peak_flops"] * r["devices"], 1e-9)


TABLE_HEADER = (
    "| experiment | stage | topology (chips) | mesh (data, fsdp, tensor) | rows/device x "
    "micro-batches | remat | HBM/device GiB (limit) | fits | compile s | FLOPs/step compiled | "
    "analytic | compiled/analytic | step s (bound / not overlapped) | est. MFU (bound) | "
    "est. MFU (collectives not overlapped) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
  f, m = r["flops"], r["memory"]
  rows = " / ".join(f"{v['rows_per_device']:g}" for v in r["tasks"].values())
  mesh = ", ".join(str(v) for v in r["mesh"].values())
  if "estimate" in r:
    step_serial, mfu_serial = _serial(r)
    mfu = f"{r['estimate']['mfu']:.0%}"
    step = f"{r['estimate']['step_s']:.2f} / {step_serial:.2f}"
    serial = f"{mfu_serial:.0%}"
  else:
    mfu = step = serial = "n/a"
  limit = (1 - r.get("headroom", 0.1)) * r["hbm_bytes"]
  fits = "yes" if r.get("fits", True) else "**no**"
  return (f"| {r['experiment']} | {r['stage']} | {r['topology']} ({r['devices']}) | {mesh} | "
          f"{rows} x {r['grad_accum_steps']} | {r['remat']} | {_g(m['total_bytes'])} "
          f"({_g(limit)}) | {fits} | {r['compile_s']:.0f} | {f['compiled_total']:.3g} | "
          f"{f['analytic_total']:.3g} | {f['compiled_over_analytic']:.2f} | {step} | {mfu} | "
          f"{serial} |")


def render(paths) -> str:
  reports = []
  for p in paths:
    with open(p) as fh:
      reports.extend(json.load(fh))
  return "\n".join([TABLE_HEADER] + [table_row(r) for r in reports])
