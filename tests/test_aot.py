"""AOT compilation and TPU fit: compiled-HLO statistics, the fit error, the report.

CI has no libtpu: the HLO statistics are checked on a CPU-compiled program (known trip
counts) and on TPU-style HLO text (loops without a known trip count, convolutions for
batched matmuls, Pallas splash kernels, collectives with mesh replica groups); the whole
`compile_stage` path runs on the CPU devices with a per-device memory budget. The TPU
compile itself (libtpu topologies, the Mosaic splash kernel) runs where libtpu is
installed (`pip install -e ".[tpu]"`).
"""

import json
import math
import os

import jax
import jax.numpy as jnp
import pytest

from synergen_jax import hardware, sharding
from synergen_jax.tpu import analysis, compiler, fit, hlo_stats, report
from synergen_jax import experiment

GiB = 2 ** 30


def test_hlo_stats_multiply_loop_bodies_by_their_trip_counts():
  def f(x, w):
    y = jax.lax.scan(lambda c, wi: (jnp.tanh(c @ wi), None), x, w)[0]
    return y @ x.T

  x, w = jnp.ones((64, 128)), jnp.ones((6, 128, 128))
  compiled = jax.jit(f).lower(x, w).compile()
  stats = hlo_stats.hlo_stats(compiled.as_text())
  want = 6 * 2 * 64 * 128 * 128 + 2 * 64 * 128 * 64
  assert stats["matmul_flops"] == want and stats["unknown_loops"] == 0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cost["flops"] < want / 3  # what the issue is about: the loop body counted once


# TPU-style HLO text: a 24-trip while loop whose trip count is only in its condition
# (counter from copy(constant 0), step 1), a batched matmul written as a base-dilated
# convolution inside a fusion, a splash forward kernel whose config spans lines, and
# collectives (an all-gather with mesh replica groups, an async all-reduce).
TPU_HLO = """HloModule jit_step, is_scheduled=true

%fused_conv (p0: bf16[4,128,64], p1: bf16[4,64,256]) -> bf16[4,128,256] {
  %p0 = bf16[4,128,64]{2,1,0:T(8,128)(2,1)} parameter(0)
  %p1 = bf16[4,64,256]{2,1,0:T(8,128)(2,1)} parameter(1)
  ROOT %convolution-base-dilated.1 = bf16[4,128,256]{2,1,0:T(8,128)(2,1)} convolution(%p0, %p1), window={size=4 stride=3 lhs_dilate=4}, dim_labels=0bf_0io->0bf
}

%add.f32 (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %add.9 = f32[] add(%a, %b)
}

%cond (arg: (s32[], bf16[4,128,64], bf16[4,64,256])) -> pred[] {
  %arg = (s32[]{:T(128)}, bf16[4,128,64]{2,1,0}, bf16[4,64,256]{2,1,0}) parameter(0)
  %gte.0 = s32[]{:T(128)} get-tuple-element(%arg), index=0
  %constant.24 = s32[]{:T(128)} constant(24)
  ROOT %lt = pred[]{:T(512)} compare(%gte.0, %constant.24), direction=LT
}

%body (arg.1: (s32[], bf16[4,128,64], bf16[4,64,256])) -> (s32[], bf16[4,128,64], bf16[4,64,256]) {
  %arg.1 = (s32[]{:T(128)}, bf16[4,128,64]{2,1,0}, bf16[4,64,256]{2,1,0}) parameter(0)
  %gte.1 = s32[]{:T(128)} get-tuple-element(%arg.1), index=0
  %copy.1 = s32[]{:T(128)S(6)} copy(%gte.1)
  %one = s32[]{:T(128)} constant(1)
  %next = s32[]{:T(128)} add(%copy.1, %one)
  %x = bf16[4,128,64]{2,1,0} get-tuple-element(%arg.1), index=1
  %w = bf16[4,64,256]{2,1,0} get-tuple-element(%arg.1), index=2
  %fusion.7 = bf16[4,128,256]{2,1,0} fusion(%x, %w), kind=kOutput, calls=%fused_conv
  %q = f32[2,2,512,128]{3,2,1,0} parameter(1)
  %k = f32[2,512,128]{2,1,0} parameter(2)
  %splash_mqa_fwd_segmented_residuals.3 = (f32[2,2,512,128]{3,2,1,0}, f32[2,2,512,128]{3,2,1,0}) custom-call(%q, %k, %k), custom_call_target="tpu_custom_call", backend_config={"custom_call_config": {"body": "multi
line"}}
  %all-gather.5 = bf16[4,64,256]{2,1,0} all-gather(%w), channel_id=3, replica_groups=mesh['axis_0'=4,'axis_1'=2] {'axis_0'}, dimensions={0}, use_global_device_ids=true
  ROOT %tuple.2 = (s32[]{:T(128)}, bf16[4,128,64]{2,1,0}, bf16[4,64,256]{2,1,0}) tuple(%next, %x, %all-gather.5)
}

ENTRY %main (x.1: bf16[4,128,64], w.1: bf16[4,64,256]) -> bf16[4,64,256] {
  %x.1 = bf16[4,128,64]{2,1,0} parameter(0)
  %w.1 = bf16[4,64,256]{2,1,0} parameter(1)
  %zero = s32[]{:T(128)} constant(0)
  %copy.0 = s32[]{:T(128)} copy(%zero)
  %tuple.1 = (s32[]{:T(128)}, bf16[4,128,64]{2,1,0}, bf16[4,64,256]{2,1,0}) tuple(%copy.0, %x.1, %w.1)
  %while.3 = (s32[]{:T(128)}, bf16[4,128,64]{2,1,0}, bf16[4,64,256]{2,1,0}) while(%tuple.1), condition=%cond, body=%body
  %gte.9 = bf16[4,64,256]{2,1,0} get-tuple-element(%while.3), index=2
  %all-reduce-start.1 = f32[1024]{0} all-reduce-start(%gte.9), channel_id=4, replica_groups=[2,4]<=[8], to_apply=%add.f32
  %all-reduce-done.1 = f32[1024]{0} all-reduce-done(%all-reduce-start.1)
  ROOT %copy.9 = bf16[4,64,256]{2,1,0} copy(%gte.9)
}
"""


def test_hlo_stats_of_tpu_style_text():
  stats = hlo_stats.hlo_stats(TPU_HLO, splash_block=128)
  assert stats["unknown_loops"] == 0
  # Batched matmul [4] x [128, 64] @ [64, 256]: one tap on the dilated batch dim.
  assert stats["matmul_flops"] == 24 * 2 * 4 * 128 * 256 * 64
  # Splash forward: 2 matmuls over q [2, 2, 512, 128] x 512 keys, causal 4 blocks: 5/8.
  assert stats["attention_flops"] == 24 * 2 * 2 * (2 * 2 * 512 * 128) * 512 * (5 / 8)
  assert stats["attention_kernels"] == 24
  gather = stats["collectives"]["all-gather"]
  assert gather["count"] == 24 and gather["bytes"] == 24 * 4 * 64 * 256 * 2
  assert gather["groups"] == ["axis_0:4"]
  assert stats["collectives"]["all-reduce"] == {"count": 1, "bytes": 4096, "groups": ["?:4"]}


GMM_HLO = """HloModule m

ENTRY %main (x: bf16[512,128], w: bf16[2,128,256], g: s32[2]) -> bf16[512,256] {
  %x = bf16[512,128]{1,0} parameter(0)
  %w = bf16[2,128,256]{2,1,0} parameter(1)
  %g = s32[2]{0} parameter(2)
  ROOT %gmm.3 = bf16[512,256]{1,0:T(8,128)(2,1)} custom-call(%g, %x, %w), custom_call_target="tpu_custom_call", metadata={op_name="jit(step)/decoder/layers/block/mmoe/shard_map/jit(gmm)/pallas_call" stack_frame_id=1}, backend_config={"custom_call_config":{"body":"abc","cost_estimate":{"bytes_accessed":"734658560","flops":"33554432","remote_bytes_transferred":"0","transcendentals":"0"},"serialization_format":"1"}}
}
"""


def test_hlo_stats_counts_megablox_kernels_from_their_cost_estimate():
  """mmoe_impl="gmm": the Pallas megablox kernels carry their own FLOPs (2 M K N)."""
  stats = hlo_stats.hlo_stats(GMM_HLO)
  assert stats["kernel_flops"] == 2 * 512 * 128 * 256 == 33554432
  assert stats["by_part"] == {"FFN experts (MMoE)": 33554432.0}


# The weight gradients of mmoe_impl="gmm" with the text expert frozen (one tgmm over the
# vision group, [1, K, N]), with the vision expert frozen, and with both trained.
TGMM_HLO = """HloModule m

ENTRY %main (x: bf16[128,512], g: bf16[512,256], s: s32[2]) -> bf16[1,128,256] {
  %x = bf16[128,512]{1,0} parameter(0)
  %g = bf16[512,256]{1,0} parameter(1)
  %s = s32[2]{0} parameter(2)
  %tgmm.1 = bf16[1,128,256]{2,1,0} custom-call(%s, %x, %g), custom_call_target="tpu_custom_call", metadata={op_name="jit(step)/transpose(jvp(decoder))/layers/block/mmoe/shard_map/vision_expert_wgrad/jit(tgmm)/pallas_call"}, backend_config={"custom_call_config":{"body":"a","cost_estimate":{"bytes_accessed":"1","flops":"33554432","transcendentals":"0"}}}
  %tgmm.2 = bf16[1,128,256]{2,1,0} custom-call(%s, %x, %g), custom_call_target="tpu_custom_call", metadata={op_name="jit(step)/transpose(jvp(decoder))/layers/block/mmoe/shard_map/text_expert_wgrad/jit(tgmm)/pallas_call"}, backend_config={"custom_call_config":{"body":"b","cost_estimate":{"bytes_accessed":"1","flops":"33554432","transcendentals":"0"}}}
  ROOT %tgmm.3 = bf16[2,128,256]{2,1,0} custom-call(%s, %x, %g), custom_call_target="tpu_custom_call", metadata={op_name="jit(step)/transpose(jvp(decoder))/layers/block/mmoe/shard_map/jit(tgmm)/pallas_call"}, backend_config={"custom_call_config":{"body":"c","cost_estimate":{"bytes_accessed":"1","flops":"33554432","transcendentals":"0"}}}
}
"""


def test_hlo_stats_counts_a_one_expert_weight_gradient_at_its_share_of_rows():
  """A one-group tgmm visits only its expert's rows (a run-time count): the vision one
  counts image_fraction of its all-rows estimate, the text one the rest; a two-group
  tgmm counts in full."""
  full = 2 * 512 * 128 * 256
  for frac in (0.75, 0.25):
    stats = hlo_stats.hlo_stats(TGMM_HLO, image_fraction=frac)
    assert stats["kernel_flops"] == frac * full + (1 - frac) * full + full == 2 * full
    assert stats["by_part"] == {"FFN experts (MMoE)": 2.0 * full}
  only_vision = TGMM_HLO.replace("text_expert_wgrad/", "vision_expert_wgrad/")
  assert hlo_stats.hlo_stats(only_vision, image_fraction=0.75)["kernel_flops"] == 2.5 * full
  assert hlo_stats.hlo_stats(only_vision, image_fraction=0.25)["kernel_flops"] == 1.5 * full


SPLASH_BWD_HLO = """HloModule m

ENTRY %main (q: f32[2,512,128], k: f32[512,128]) -> f32[512,128] {
  %q = f32[2,512,128]{2,1,0} parameter(0)
  %k = f32[512,128]{1,0} parameter(1)
  %splash_mqa_dkv_segmented_no_residuals.1 = (f32[128,128]{1,0}, f32[128,128]{1,0}, f32[512,128]{1,0}, f32[512,128]{1,0}) custom-call(%q, %k, %k), custom_call_target="tpu_custom_call", backend_config={"custom_call_config": {"body": "a"}}
  %splash_mqa_dkv_segmented_no_residuals.2 = (f32[128,128]{1,0}, f32[128,128]{1,0}, f32[4,2,512,128]{3,2,1,0}, f32[512,128]{1,0}, f32[512,128]{1,0}) custom-call(%q, %k, %k), custom_call_target="tpu_custom_call", backend_config={"custom_call_config": {"body": "b"}}
  ROOT %copy = f32[512,128]{1,0} copy(%k)
}
"""


def test_splash_backward_kernels_are_counted_fused_or_not():
  """A dk/dv kernel is 4 matmuls; the fused backward's (it also writes dq per kv block,
  an extra output) is 5. Causal over 4 blocks of 128: 5/8 of the full product."""
  stats = hlo_stats.hlo_stats(SPLASH_BWD_HLO, splash_block=128)
  one = 2 * (2 * 512 * 128) * 512 * (5 / 8)
  assert stats["attention_flops"] == 4 * one + 5 * one
  assert stats["attention_kernels"] == 2


def test_trip_count_falls_back_to_counting_once_when_unknown():
  text = TPU_HLO.replace("compare(%gte.0, %constant.24), direction=LT",
                         "compare(%gte.0, %gte.0), direction=LT")
  stats = hlo_stats.hlo_stats(text)
  assert stats["unknown_loops"] == 1
  assert stats["matmul_flops"] == 2 * 4 * 128 * 256 * 64


def test_chip_table():
  assert fit.tpu_chip("TPU v5 lite").name == "v5e"
  assert fit.tpu_chip("TPU v5").name == "v5p"
  assert fit.tpu_chip("TPU v6 lite").peak_flops == 918e12
  assert fit.tpu_chip("TPU v4").peak_flops == 275e12
  assert fit.tpu_chip("cpu") is None
  assert fit.tpu_chip_named("v5p").hbm_bytes == 95 * GiB
  # The MFU's peaks (training/flops.py) come from the same table, GPUs and older TPUs
  # included; the TPU fit only knows the chips with HBM and ICI figures.
  assert hardware.chip_for("NVIDIA H100 80GB HBM3").peak_flops == 989e12
  assert hardware.chip_for("TPU v3").peak_flops == 123e12
  assert fit.tpu_chip("TPU v3") is None and fit.tpu_chip_named("H100") is None
  assert hardware.chip_for("cpu") is None


def test_mfu_peak_comes_from_the_chip_table(monkeypatch):
  import types
  from synergen_jax.training import flops
  for kind, peak in (("TPU v5 lite", 197e12), ("TPU v5", 459e12), ("NVIDIA H100 80GB HBM3", 989e12),
                     ("TPU v2", 45e12)):
    monkeypatch.setattr(jax, "devices", lambda *a, k=kind: [types.SimpleNamespace(device_kind=k)])
    assert flops.device_peak_flops() == (peak, f"spec sheet ({kind}, bf16 dense)")
  assert flops.device_peak_flops(5e11) == (5e11, "config")


def test_capacity_counts_cap_generation_targets_at_the_head_budget():
  from synergen_jax.model import ModelConfig
  from synergen_jax.configs import models
  config = ModelConfig.from_config_dict(models.synergen_vl_2_4b())  # max_gen_patches 256
  c = analysis.capacity_counts(config, {"understanding": (2, 4096), "generation": (2, 4096)},
                               0.75)
  assert c["understanding/image_positions"] == 2 * 3072 and c["understanding/image_codes"] == 0
  assert c["generation/image_positions"] == 2 * 256
  assert c["generation/image_codes"] == 2 * 256 * 16
  assert c["generation/context_sum"] == 2 * 4096 * 4097 / 2


@pytest.mark.parametrize("groups", [("vision",), ("vision", "llm_attention"),
                                    ("vision", "llm_attention", "llm")])
def test_analytic_parts_are_hlo_parts_and_a_frozen_weight_costs_two_thirds(groups):
  from synergen_jax.model import ModelConfig
  from synergen_jax.configs import models
  from synergen_jax.training import flops
  config = ModelConfig.from_config_dict(models.synergen_vl_2_4b())
  counts = analysis.capacity_counts(
      config, {"understanding": (3, 8192), "generation": (2, 4096)}, 0.6)
  parts = flops.step_flops_by_part(config, counts, groups)
  assert set(parts) <= {part for _, part in hlo_stats._PARTS} | {"attention kernels (splash)"}
  assert math.isclose(sum(parts.values()), flops.step_flops(config, counts, groups),
                      rel_tol=1e-12)
  # Backward: 2x forward for a trained weight, 1x for a frozen one; scores always 2x.
  full = flops.step_flops_by_part(config, counts, ("vision", "llm_attention", "llm"))
  for part, group in (("attention projections", "llm_attention"), ("token fold MLP", "vision"),
                      ("LM head (vocabulary)", "llm"), ("head classifier (codebook)", "vision")):
    assert math.isclose(parts[part] / full[part], 1.0 if group in groups else 2 / 3), part
  assert parts["attention kernels (splash)"] == full["attention kernels (splash)"]


def _tiny_config():
  here = os.path.join(os.path.dirname(__file__), "..", "experiments", "x.py")
  config = experiment.load_sibling(here, "tiny").get_config()
  config = experiment.resolve_workdir(config, "/nonexistent")
  config.mesh.shape = (1, 2, 4)
  config.stages.text.grad_accum_steps = 2
  config.train.xla_compiler_options = {"xla_backend_optimization_level": 0}
  return config


@pytest.mark.slow
def test_compile_stage_reports_and_refuses_a_step_that_does_not_fit():
  """The real train step of the tiny experiment's text stage (the quickest to compile;
  the multimodal stages take the same path), compiled for 8 CPU devices with a
  per-device memory budget it cannot meet: a FitError naming the numbers and the knobs,
  carrying the full report (HBM, FLOPs, collectives)."""
  config = _tiny_config()
  devices = compiler.topology_devices("cpu:8")
  with pytest.raises(fit.FitError, match=r"stage 'text'.*needs .* GiB per device.*"
                     r"grad_accum_steps") as info:
    compiler.compile_stage(experiment.resolve(config), "text", devices, hbm_bytes=64 * 1024,
                           name="tiny")
  r = info.value.report
  assert r["mesh"] == {"data": 1, "fsdp": 2, "tensor": 4} and not r["fits"]
  assert r["tasks"] == {"text": {"rows": 4, "length": 128, "rows_per_device": 1.0}}
  assert r["memory"]["total_bytes"] > 64 * 1024 and r["memory"]["alias_bytes"] > 0
  f = r["flops"]
  # The compiled program does at least the model's matmuls (and more: padding of the tiny
  # dims to the mesh, replicated work).
  assert f["unknown_loops"] == 0 and f["compiled_total"] > f["analytic_total"] > 0
  assert f["compiled_per_device"] > 2 * f["cost_analysis_per_device"]
  assert r["collectives"]  # FSDP gathers / gradient reductions over the mesh
  row = report.table_row(r)
  assert row.startswith("| tiny | text | cpu (8) | 1, 2, 4 | 1 x 2 |")
  # The same report, with room to spare, fits.
  fit.check_fit(r["memory"], r["memory"]["total_bytes"] * 2, 0.1, "x")
  json.dumps(r)  # --json_out


def test_config_that_cannot_split_over_the_devices_is_an_error_before_compiling():
  config = _tiny_config()
  config.stages.stage1.grad_accum_steps = 4  # 4 rows over 2 batch shards: 2 rows each
  with pytest.raises(experiment.ConfigError, match="do not split"):
    compiler.compile_stage(experiment.resolve(config), "stage1",
                           compiler.topology_devices("cpu:8"))
  config.stages.stage1.grad_accum_steps = 1
  config.mesh.shape = (3, -1, 1)
  with pytest.raises(experiment.ConfigError, match="mesh.shape"):
    compiler.compile_stage(experiment.resolve(config), "stage1",
                           compiler.topology_devices("cpu:8"))


def test_unknown_topology_without_libtpu_is_a_clear_error():
  try:
    import libtpu  # noqa: F401
  except ImportError:
    with pytest.raises(ValueError, match=r"need libtpu"):
      compiler.topology_devices("v5:4x4x8")
  with pytest.raises(ValueError, match="only 8 CPU devices"):
    compiler.topology_devices("cpu:16")


# ---- with libtpu (the `tpu` extra) ------------------------------------------------------------
def test_tpu_topology_compile_with_the_splash_kernel():
  pytest.importorskip("libtpu")
  config = _tiny_config()
  config.mesh.shape = (1, -1, 2)
  devices = compiler.topology_devices("v5e:2x4")
  config.stages.text.grad_accum_steps = 1  # 4 rows over 4 batch shards: one micro-batch
  r = compiler.compile_stage(experiment.resolve(config), "stage1", devices, topology="v5e:2x4",
                             attention="splash", name="tiny")
  assert r["chip"] == "v5e" and r["attention"] == "splash" and r["fits"]
  # The Mosaic kernel itself (interpret mode would lower to plain HLO loops).
  assert r["flops"]["compiled_attention_per_device"] > 0
  assert r["estimate"]["mfu"] > 0


def test_multislice_mesh_puts_the_data_axis_across_slices():
  pytest.importorskip("libtpu")
  devices = compiler.topology_devices("v5e:2x2", num_slices=2)
  mesh = sharding.make_mesh((2, -1, 1), devices)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  for i in range(2):
    assert {d.slice_index for d in mesh.devices[i].flat} == {i}
  with pytest.raises(ValueError, match="multiple of 2"):
    sharding.make_mesh((1, -1, 1), devices)
  assert math.prod(mesh.shape.values()) == 8


def test_multislice_estimate_adds_the_cross_slice_gradient_reduction():
  """2 slices of 64 v5e chips, 1 GiB of trainable f32 gradients: every chip all-reduces
  its 1/64 shard with the other slice over DCN (a ring moves 2 (S-1)/S of it) at 25 Gbps;
  one slice has nothing to reduce across slices."""
  chip = hardware.chip_named("v5e")
  moved, seconds = analysis.dcn_seconds(2.0 ** 30, 128, 2, chip.dcn_bytes_per_s)
  assert moved == 2 * (1 / 2) * 2.0 ** 30 / 64
  assert seconds == moved / (25e9 / 8)
  assert analysis.dcn_seconds(2.0 ** 30, 64, 1, chip.dcn_bytes_per_s) == (0.0, 0.0)
  est = analysis.step_estimates(1e15, compute_s=1.0, ici_s=0.5, peak_flops=1e15, devices=1,
                                dcn_s=2.0)
  assert est["step_s"] == 2.0 and est["step_s_serial"] == 3.5
  assert est["mfu"] == 0.5 and abs(est["mfu_serial"] - 1 / 3.5) < 1e-12


def test_loss_hbm_bytes_count_every_class_of_the_head_budgets():
  """Text head on min(length, max_text_targets) positions of multimodal rows and every
  position of text rows; the image head on max_gen_patches x m*n codes of generation
  rows; bytes per logit by loss implementation."""
  import dataclasses
  from synergen_jax.model import ModelConfig
  model = dataclasses.replace(ModelConfig(), max_text_targets=10, max_gen_patches=4,
                              loss_impl="fused")
  report = {"grad_accum_steps": 2, "tasks": {
      "understanding": {"rows_per_device": 3, "length": 64},
      "generation": {"rows_per_device": 1, "length": 64},
      "text": {"rows_per_device": 1, "length": 32}}}
  v, k, mn = model.total_vocab, model.codebook_size, model.patch_size
  logits = 2 * (3 * 10 * v + 1 * 10 * v + 1 * 4 * mn * k + 1 * 32 * v)
  assert analysis.loss_hbm_bytes(model, report) == 18 * logits
  chunked = dataclasses.replace(model, loss_impl="chunked")
  assert analysis.loss_hbm_bytes(chunked, report) == 30 * logits
