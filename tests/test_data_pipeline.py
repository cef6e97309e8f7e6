"""End to end: TFDS build -> pretokenize -> Grain pipeline (batch contract, state, skips)."""

import dataclasses
import glob
import io
import json
import os
import shutil

import jax
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from flax import serialization
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_pipelines import config as config_lib
from data_pipelines.build import tokenizer_corpus
from data_pipelines.pipeline import examples
from data_pipelines.pipeline import iterator
from data_pipelines.pipeline import multimodal
from data_pipelines.pipeline import pretokenize
from data_pipelines.pipeline import records
from data_pipelines.pipeline import streams
from data_pipelines.scenes import render
from data_pipelines.scenes import tfds_scenes
from data_pipelines.sources import raw_examples
from synergen_jax.tokenizer import Tokenizer

SIZES = {"train": 40, "validation": 8, "test": 0, "compositional": 0}
FOLD, GRID = (2, 2), (8, 8)


def _build(data_dir):
  cfg = tfds_scenes.scene_config(64, SIZES, name="tiny")
  b = tfds_scenes.SynergenScenes(config=cfg, data_dir=str(data_dir), file_format="array_record")
  b.download_and_prepare()
  return b


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  builder = _build(root / "tfds")
  src = builder.as_data_source("train", decoders={"image": tfds.decode.SkipDecoding()})
  tok = Tokenizer.train(tokenizer_corpus(src, []), vocab_size=600)
  cfg = config_lib.default_data_config()
  cfg.source.name = "synergen_scenes/tiny"
  cfg.source.data_dir = str(root / "tfds")
  cfg.pretokenized_dir = str(root / "pretok")
  cfg.num_shards = 2
  cfg.encode_batch_size = 16
  cfg.understanding.batch_size = 8
  cfg.understanding.seq_len = 128
  cfg.generation.batch_size = 8
  cfg.generation.seq_len = 128
  cfg.prefetch_buffer = 0
  cfg = config_lib.resolve(cfg)
  stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(8), split="train")
  return {"root": root, "builder": builder, "tok": tok, "cfg": cfg, "stats": stats}


def test_builder_is_deterministic(env, tmp_path):
  other = _build(tmp_path / "tfds")
  a, b = env["builder"].as_data_source("train"), other.as_data_source("train")
  assert len(a) == len(b) == SIZES["train"]
  for i in range(len(a)):
    ra, rb = a[i], b[i]
    assert ra["id"] == rb["id"] and ra["captions"] == rb["captions"]
    assert ra["questions"] == rb["questions"] and ra["answers"] == rb["answers"]
    np.testing.assert_array_equal(ra["image"], rb["image"])
    split, seed = ra["id"].decode().split("/")
    img, graph = render.render_scene(int(seed), 64, split)
    np.testing.assert_array_equal(ra["image"], img)  # PNG is lossless
    assert json.loads(ra["scene_graph"]) == json.loads(json.dumps(graph))


def test_pretokenize_codes_and_resume(env):
  cfg = env["cfg"]
  assert env["stats"]["written"] == SIZES["train"] and env["stats"]["skipped"] == 0
  files = records.shard_files(cfg.pretokenized_dir, "train")
  assert len(files) == 2
  again = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(8), split="train")
  assert again["shards_skipped"] == 2 and again["written"] == 0
  reader = array_record_module.ArrayRecordReader(files[0])
  rec = records.decode_record(reader.read([0])[0])
  split, seed = rec["id"].split("/")
  img, _ = render.render_scene(int(seed), 64, split)
  want = np.asarray(pretokenize.mean_color_quantizer(8)(img[None]))[0]
  np.testing.assert_array_equal(rec["gen_codes"], want)
  np.testing.assert_array_equal(rec["und_codes"][0], want)  # 1 tile == the whole image
  assert rec["und_codes"].shape == (1, 8, 8) and list(rec["und_grid"]) == [1, 1]


def test_concurrent_shards_write_the_same_files(env, tmp_path, monkeypatch):
  """Shards pretokenized by 1 or 3 threads at a time (`encode_workers`): the same bytes
  and counts (the module's own shards were written by the default 2), and the source is
  opened (all its inputs indexed) at most once per thread, not once per shard."""
  opened = []
  real_split = raw_examples.RawSplit
  monkeypatch.setattr(raw_examples, "RawSplit",
                      lambda *a: opened.append(1) or real_split(*a))
  written = {}
  for workers in (1, 3):
    opened.clear()
    cfg = dataclasses.replace(env["cfg"], num_shards=3, encode_workers=workers,
                              pretokenized_dir=str(tmp_path / f"w{workers}"))
    stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(8), split="train")
    assert stats["written"] == SIZES["train"] and stats["shards_done"] == 3
    files = records.shard_files(cfg.pretokenized_dir, "train")
    assert len(files) == 3
    assert 1 <= len(opened) <= workers
    written[workers] = [open(f, "rb").read() for f in files]
  assert written[1] == written[3]
  with pytest.raises(ValueError, match="encode_workers: 0"):
    dataclasses.replace(env["cfg"], encode_workers=0)


def test_an_image_that_is_its_own_tile_is_encoded_once(env, tmp_path, monkeypatch):
  cfg = dataclasses.replace(env["cfg"], pretokenized_dir=str(tmp_path / "pretok"))
  quantize = pretokenize.mean_color_quantizer(8)
  encoded, encode_batched = [], pretokenize.encode_batched

  def counting(encode, images, devices=None):
    encoded.append(len(images))
    return encode_batched(encode, images, devices)

  monkeypatch.setattr(pretokenize, "encode_batched", counting)
  stats = pretokenize.pretokenize(cfg, quantize, split="train")
  assert stats["written"] == SIZES["train"]
  assert sum(encoded) == SIZES["train"]  # not twice: generation image == the one tile
  for path in records.shard_files(cfg.pretokenized_dir, "train"):
    reader = array_record_module.ArrayRecordReader(path)
    for data in reader.read_all():
      rec = records.decode_record(data)
      split, seed = rec["id"].split("/")
      want = np.asarray(quantize(render.render_scene(int(seed), 64, split)[0][None]))[0]
      np.testing.assert_array_equal(rec["gen_codes"], want)
      np.testing.assert_array_equal(rec["und_codes"], want[None])


def _check_row_contract(b, tok, task):
  L = b["tokens"].shape[1]
  for r in range(b["tokens"].shape[0]):
    seg, pos = b["segment_ids"][r], b["positions"][r]
    tt, it = b["text_target"][r], b["image_target"][r]
    valid = seg > 0
    n = int(valid.sum())
    assert valid[:n].all() and not valid[n:].any()  # padding only at the end
    assert (np.diff(seg[:n]) >= 0).all() and (np.diff(seg[:n]) <= 1).all() and seg[0] == 1
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]] & valid)
    for s, e in zip(starts, list(starts[1:]) + [n]):
      np.testing.assert_array_equal(pos[s:e], np.arange(e - s))  # positions restart
      assert b["tokens"][r, s] == tok.bos_id and tt[s] == 0 and it[s] == 0
      assert b["tokens"][r, e - 1] == tok.eos_id and tt[e - 1] == 1
    assert (tt[~valid] == 0).all() and (it[~valid] == 0).all()
    img = b["is_image"][r]
    np.testing.assert_array_equal(img, b["tokens"][r] == tok.image_id)
    assert (b["patch_index"][r][img] < 16).all() and (b["patch_index"][r][~img] == 0).all()
    assert (b["image_codes"][r][~img] == 0).all()
    if task == "understanding":
      assert it.sum() == 0 and tt[img].sum() == 0
    else:
      np.testing.assert_array_equal(it > 0, img)
      assert set(b["tokens"][r][tt > 0].tolist()) <= {tok.eoi_id, tok.eos_id}
  assert b["image_codes"].shape[2] == 4 and L == 128


def test_batch_contract(env):
  it = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID)
  batch = next(it)
  assert set(batch) == {"understanding", "generation"}
  dtypes = {"tokens": np.int32, "image_codes": np.int32, "is_image": np.bool_,
            "patch_index": np.int32, "segment_ids": np.int32, "positions": np.int32,
            "text_target": np.float32, "image_target": np.float32}
  for task, b in batch.items():
    assert {k: v.dtype for k, v in b.items()} == dtypes
    assert b["tokens"].shape == (8, 128)
    _check_row_contract(b, env["tok"], task)
  m = it.metrics()
  assert 0.5 < m["understanding/packing_efficiency"] <= 1.0
  assert m["generation/examples"] >= 8
  it.close()


def test_multi_turn_conversations(env):
  """und_qa_turns: several distinct questions about one image per example, every answer a
  target; as many turns as fit the task's seq_len."""
  cfg = dataclasses.replace(env["cfg"], und_caption_prob=0.0, und_qa_turns=4)
  tok = env["tok"]
  it = multimodal.make_pipeline(cfg, tok, FOLD, GRID)
  b = it.next_local()["understanding"]
  _check_row_contract(b, tok, "understanding")
  turns = []
  for r in range(b["tokens"].shape[0]):
    seg = b["segment_ids"][r]
    for s in np.unique(seg[seg > 0]):
      ids = b["tokens"][r][seg == s].tolist()
      text = tok.decode(ids)
      users = text.count("<|im_start|>user")
      assert b["is_image"][r][seg == s].sum() == 16  # one image per conversation
      questions = [q.split("<|im_end|>")[0] for q in text.split("<|im_start|>user\n")[1:]]
      assert len(questions) == users and len(set(questions)) == users  # distinct
      # Targets: every answer with its turn end.
      assert (b["tokens"][r][(seg == s) & (b["text_target"][r] > 0)] == tok.im_end_id).sum() \
          == users
      turns.append(users)
  assert max(turns) == 4 and min(turns) >= 1
  it.close()
  cfg = dataclasses.replace(  # too short for 4 turns: fewer, none dropped
      cfg, understanding=dataclasses.replace(cfg.understanding, seq_len=64))
  it = multimodal.make_pipeline(cfg, tok, FOLD, GRID)
  it.next_local()
  assert it.metrics().get("understanding/skipped/overlong_dropped", 0) == 0
  it.close()


def test_question_type_weights_pick_the_mix(env):
  """data.und_type_weights: only the weighted types are asked (colour only here), in every
  conversation; a record without such a question becomes a caption example."""
  cfg = dataclasses.replace(env["cfg"], und_caption_prob=0.0, und_qa_turns=4,
                            und_type_weights=(("color", 1.0),))
  tok = env["tok"]
  it = multimodal.make_pipeline(cfg, tok, FOLD, GRID)
  b = it.next_local()["understanding"]
  asked = 0
  for r in range(b["tokens"].shape[0]):
    text = tok.decode(b["tokens"][r][b["segment_ids"][r] > 0].tolist())
    for q in text.split("<|im_start|>user\n")[1:]:
      q = q.split("<|im_end|>")[0]
      if "caption" not in q:
        assert q.startswith("What color is the "), q
        asked += 1
  assert asked > 0
  it.close()
  rec = {"questions": ["a", "b", "c"], "question_types": ["color", "shape", "count"]}
  np.testing.assert_allclose(examples.question_probs(rec, (("color", 3), ("shape", 1))),
                             [0.75, 0.25, 0.0])
  assert examples.question_probs(rec, ()) is None
  assert not examples.question_probs(rec, (("text", 1.0),)).any()
  with pytest.raises(ValueError, match="und_type_weights"):
    dataclasses.replace(cfg, und_type_weights=(("color", -1.0),))


def test_object_keep_samples_scenes_by_object_count(env):
  """data.und_object_keep / gen_object_keep: scenes of a count kept with probability 0
  never become understanding / generation examples; each skip is counted by its reason;
  a bad pair names the field."""
  rec = {"scene_graph": json.dumps({"objects": [{}, {}]})}
  assert examples.object_keep_prob(rec, ((2, 0.25), (1, 0.0))) == 0.25
  assert examples.object_keep_prob(rec, ((1, 0.0),)) == 1.0  # count not listed
  assert examples.object_keep_prob({"scene_graph": ""}, ((2, 0.0),)) == 1.0  # real data
  assert examples.object_keep_prob(rec, ()) == 1.0
  counts = {}
  src = env["builder"].as_data_source("train", decoders={"image": tfds.decode.SkipDecoding()})
  for i in range(len(src)):
    n = len(json.loads(src[i]["scene_graph"])["objects"])
    counts[n] = counts.get(n, 0) + 1
  drop = min(counts)  # the smallest object count in the test world
  assert sum(counts.values()) > counts[drop] > 0
  cfg = dataclasses.replace(env["cfg"], und_caption_prob=1.0, und_object_keep=((drop, 0.0),),
                            gen_object_keep=((drop, 0.0),))
  it = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)
  batches = it.next_local()
  for task in ("understanding", "generation"):  # data.gen_object_keep: the same for generation
    _check_row_contract(batches[task], env["tok"], task)
    assert it.metrics().get(f"{task}/skipped/sampled_out_by_objects", 0) > 0
  it.close()
  for field in ("und_object_keep", "gen_object_keep"):
    for bad in (((1, 1.5),), (("1", 0.5),), ((1,),)):
      with pytest.raises(ValueError, match=field):
        dataclasses.replace(cfg, **{field: bad})
      with pytest.raises(ValueError, match=rf"^data\.{field}"):
        config_lib.resolve({field: bad})


def test_a_pipeline_of_one_task_gives_the_same_batches(env):
  """tasks=("understanding",): no generation batches are built, and the understanding
  batches are those of the two-task pipeline (each task has its own seeded stream)."""
  both = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID)
  one = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID, tasks=("understanding",))
  for _ in range(2):
    a, b = both.next_local(), one.next_local()
    assert set(b) == {"understanding"}
    for k in a["understanding"]:
      np.testing.assert_array_equal(a["understanding"][k], b["understanding"][k], err_msg=k)
  assert not any(k.startswith("generation/") for k in one.metrics())
  both.close()
  one.close()
  with pytest.raises(ValueError, match="tasks"):
    multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID, tasks=("text",))


def test_extra_task_datasets_join_the_batches(env):
  """Text replay: an extra task's batches come with the vision tasks', checkpointed too."""
  import grain
  tok = env["tok"]
  rows = [{"tokens": np.full((2, 16), i, np.int32), "segment_ids": np.ones((2, 16), np.int32)}
          for i in range(100)]
  extra = {"text": grain.MapDataset.source(rows).to_iter_dataset()}
  it = multimodal.make_pipeline(env["cfg"], tok, FOLD, GRID, extra=extra)
  first = it.next_local()
  assert set(first) == {"understanding", "generation", "text"}
  assert first["text"]["tokens"][0, 0] == 0
  state = it.get_state()
  second = it.next_local()
  it.set_state(state)
  again = it.next_local()
  _same([second], [again])
  assert again["text"]["tokens"][0, 0] == 1
  it.close()
  with pytest.raises(ValueError, match="extra task 'generation'"):
    multimodal.make_pipeline(env["cfg"], tok, FOLD, GRID, extra={"generation": extra["text"]})


def _take(it, n):
  return [it.next_local() for _ in range(n)]


def _same(a, b):
  for x, y in zip(a, b):
    for t in x:
      for k in x[t]:
        np.testing.assert_array_equal(x[t][k], y[t][k])


@pytest.mark.slow
def test_iterator_state_round_trip(env):
  cfg = dataclasses.replace(env["cfg"], prefetch_buffer=2)
  it = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)
  _take(it, 2)
  state = json.loads(json.dumps(it.get_state()))  # what the checkpoint stores
  first = _take(it, 6)  # crosses an epoch boundary (40 records)
  it.set_state(state)
  _same(first, _take(it, 6))
  fresh = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)
  fresh.set_state(state)
  _same(first, _take(fresh, 6))
  it.close()
  fresh.close()


def test_processes_read_disjoint_shards(env):
  cfg = env["cfg"]
  ids = []
  for pi in range(2):
    ds = streams.record_dataset(cfg, "train", seed=0, process_index=pi, process_count=2)
    ids.append({records.decode_record(ds[i])["id"] for i in range(SIZES["train"] // 2)})
  assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == SIZES["train"]


@pytest.mark.slow
def test_input_streams_make_batches_independent_of_the_process_count(env):
  """Two input streams read by one process give the global batches that two processes
  (one stream each) give together, with skip counts summed and resumable state."""
  cfg = env["cfg"]
  one = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID, num_streams=2)
  per_process = [multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID, process_index=i,
                                        process_count=2) for i in range(2)]
  first = _take(one, 3)
  halves = [_take(it, 3) for it in per_process]
  for step, batch in enumerate(first):
    for task, b in batch.items():
      assert b["tokens"].shape == (8, 128)
      for k, v in b.items():
        np.testing.assert_array_equal(
            v, np.concatenate([halves[0][step][task][k], halves[1][step][task][k]]))
  # One stream of 8 rows is another data order (the comparison is not vacuous).
  single = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)
  assert not np.array_equal(_take(single, 1)[0]["generation"]["tokens"],
                            first[0]["generation"]["tokens"])
  m = one.metrics()
  assert m["generation/examples"] == sum(it.metrics()["generation/examples"]
                                         for it in per_process)
  state = json.loads(json.dumps(one.get_state()))
  after = _take(one, 2)
  fresh = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID, num_streams=2)
  fresh.set_state(state)
  _same(after, _take(fresh, 2))
  with pytest.raises(ValueError, match="input streams"):
    fresh.set_state(single.get_state())
  for it in [one, fresh, single] + per_process:
    it.close()


def test_input_stream_counts_are_checked():
  assert streams.input_streams(0, 8, "f", process_index=1, process_count=2) == (2, [1])
  assert streams.input_streams(4, 8, "f", process_index=1, process_count=2) == (4, [2, 3])
  with pytest.raises(ValueError, match="multiple of 2"):
    streams.input_streams(3, 12, "f", process_index=0, process_count=2)
  with pytest.raises(ValueError, match=r"data.generation.batch_size=6 is not divisible"):
    streams.input_streams(4, 6, "data.generation.batch_size", process_index=0,
                           process_count=1)


def test_global_arrays_with_data_sharding(env):
  mesh = Mesh(np.asarray(jax.devices()[:8]), ("data",))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  it = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID, sharding=sharding)
  b = next(it)["generation"]
  assert isinstance(b["tokens"], jax.Array) and b["tokens"].shape == (8, 128)
  assert b["image_codes"].shape == (8, 128, 4)
  assert b["tokens"].sharding.is_equivalent_to(sharding, 2)
  assert len(b["tokens"].addressable_shards) == 8
  it.close()


def _write_records(path, recs):
  w = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
  for r in recs:
    w.write(r)
  w.close()


@pytest.mark.slow
def test_bad_pretokenized_records_skipped_and_counted(env, tmp_path):
  good = records.encode_record({
      "id": "x", "gen_codes": np.ones(GRID, np.int32), "und_codes": np.ones((1,) + GRID, np.int32),
      "und_grid": [1, 1], "captions": ["A red circle."], "questions": ["What color?"],
      "answers": ["red " * 150]})  # this answer is too long for seq_len 128
  short = records.encode_record({
      "id": "w", "gen_codes": np.ones(GRID, np.int32), "und_codes": np.ones((1,) + GRID, np.int32),
      "und_grid": [1, 1], "captions": ["A red circle."], "questions": ["What color?"],
      "answers": ["red"]})
  wrong_grid = records.encode_record({
      "id": "y", "gen_codes": np.ones((4, 4), np.int32), "und_codes": np.ones((1, 4, 4), np.int32),
      "und_grid": [1, 1], "captions": ["A red circle."]})
  no_text = records.encode_record({
      "id": "z", "gen_codes": np.ones(GRID, np.int32), "und_codes": np.ones((1,) + GRID, np.int32),
      "und_grid": [1, 1]})
  d = tmp_path / "bad"
  d.mkdir()
  _write_records(d / "train.array_record-00000-of-00001",
                 [short, good, b"garbage", wrong_grid, no_text, b""] * 4)
  for overlong, reason in (("drop", "overlong_dropped"), ("truncate", "overlong_truncated")):
    cfg = dataclasses.replace(env["cfg"], pretokenized_dir=str(d), und_caption_prob=0.0,
                              overlong=overlong)
    it = multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)
    batch = it.next_local()
    assert batch["generation"]["tokens"].shape == (8, 128)
    m = it.metrics()
    assert m["generation/skipped/undecodable_record"] > 0
    assert m["generation/skipped/wrong_code_grid"] > 0
    assert m["generation/skipped/no_text"] > 0
    assert m[f"understanding/skipped/{reason}"] > 0
    # Counts live in the iterator state: a restore continues them exactly.
    state = it.get_state()
    it.next_local()
    after = {k: v for k, v in it.metrics().items() if "/skipped/" in k}
    it.set_state(state)
    it.next_local()
    assert {k: v for k, v in it.metrics().items() if "/skipped/" in k} == after
    it.close()


def _png(a):
  buf = io.BytesIO()
  PIL.Image.fromarray(a).save(buf, format="PNG")
  return buf.getvalue()


def test_bad_raw_images_skipped_and_counted(env, tmp_path):
  png = _png
  rgb = render.render_scene(0, 64)[0]
  raw = [
      {"img": png(rgb), "txt": "ok rgb"},
      {"img": png(np.concatenate([rgb, np.full((64, 64, 1), 255, np.uint8)], -1)), "txt": "rgba"},
      {"img": png(rgb[..., 0]), "txt": "gray"},
      {"img": png((rgb[..., 0].astype(np.uint16) * 257)), "txt": "16-bit"},
      {"img": png(np.ascontiguousarray(rgb[:40])), "txt": "non-square"},
      {"img": b"not a png", "txt": "garbage"},
      {"img": b"", "txt": "empty"},
      {"txt": "no image"},
  ]
  _write_records(tmp_path / "raw.ar", [serialization.msgpack_serialize(r) for r in raw])
  fields = config_lib.SourceFields(image="img", captions="txt", questions="", answers="",
                                   question_types="", scene_graph="", id="",
                                   conversation=None)
  cfg = dataclasses.replace(
      env["cfg"], source=dataclasses.replace(env["cfg"].source, kind="array_record",
                                             data_dir=str(tmp_path / "*.ar"), fields=fields),
      pretokenized_dir=str(tmp_path / "out"), num_shards=1)
  stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(8), split="train")
  assert stats["written"] == 5 and stats["skipped"] == 3
  assert stats["skip_reasons"] == {"undecodable_image": 2, "missing_image": 1}


def test_undecodable_array_record_records_skipped_and_counted(tmp_path):
  """Issue 14: a raw ArrayRecord entry that is not msgpack (truncated, or garbage with
  extra data) is skipped and counted by pretokenization, as `python -m
  data_pipelines.pretokenize` runs it: its default data config and encoder, these flags
  (the command itself: test_data_formats.py::test_llava_cli_with_field_flags)."""
  good = [serialization.msgpack_serialize(
      {"image": _png(render.render_scene(s, 64)[0]), "captions": f"scene {s}", "id": str(s)})
      for s in range(4)]
  _write_records(tmp_path / "raw.ar", good[:2] + [good[2][:len(good[2]) // 2], b"not msgpack"]
                 + good[2:])
  out = tmp_path / "out"
  cfg = config_lib.default_data_config()
  cfg.source.kind = "array_record"
  cfg.source.data_dir = f"{tmp_path}/*.ar"
  cfg.pretokenized_dir = str(out)
  cfg.num_shards, cfg.encode_batch_size = 1, 8
  stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(cfg.vq_downsample),
                                  split="train")
  assert stats["written"] == 4 and stats["skipped"] == 2
  assert stats["skip_reasons"] == {pretokenize.UNDECODABLE_RECORD: 2}
  [shard] = records.shard_files(str(out), "train")
  reader = array_record_module.ArrayRecordReader(shard)
  ids = [records.decode_record(r)["id"] for r in reader.read_all()]
  reader.close()
  assert ids == ["0", "1", "2", "3"]


def test_undecodable_tfds_record_skipped_and_counted(env, tmp_path):
  """The same for a TFDS source: an example whose proto does not parse."""
  tfds_dir = tmp_path / "tfds"
  shutil.copytree(env["root"] / "tfds", tfds_dir)
  [path] = glob.glob(str(tfds_dir / "**" / "*-train.array_record-*"), recursive=True)
  reader = array_record_module.ArrayRecordReader(path)
  recs = reader.read_all()
  reader.close()
  recs[5] = recs[5][:40]  # truncated tf.Example
  _write_records(path, recs)
  cfg = dataclasses.replace(
      env["cfg"], source=dataclasses.replace(env["cfg"].source, data_dir=str(tfds_dir)),
      pretokenized_dir=str(tmp_path / "out"))
  stats = pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(8), split="train")
  assert stats["written"] == SIZES["train"] - 1 and stats["skipped"] == 1
  assert stats["skip_reasons"] == {pretokenize.UNDECODABLE_RECORD: 1}


def test_config_errors_name_the_field(env):
  with pytest.raises(ValueError, match="overlong: 'wrap'"):
    dataclasses.replace(env["cfg"], overlong="wrap")
  with pytest.raises(TypeError, match="DataConfig"):  # typed configs only
    multimodal.make_pipeline(config_lib.default_data_config(), env["tok"], FOLD, GRID)
  with pytest.raises(ValueError, match="code grid"):
    multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, (16, 16))
  cfg = dataclasses.replace(env["cfg"],
                            pretokenized_dir=os.path.join(str(env["root"]), "missing"))
  with pytest.raises(FileNotFoundError, match="pretokenized_dir"):
    multimodal.make_pipeline(cfg, env["tok"], FOLD, GRID)


def test_orbax_grain_checkpoint_handler_round_trip(env, tmp_path):
  import grain
  from etils import epath
  handler = grain.checkpoint.CheckpointHandler()  # what Orbax's Composite uses for "data"
  it = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID)
  it.next_local()
  handler.save(epath.Path(tmp_path), args=grain.checkpoint.CheckpointSave(it))
  expected = _take(it, 2)
  restored = multimodal.make_pipeline(env["cfg"], env["tok"], FOLD, GRID)
  handler.restore(epath.Path(tmp_path), args=grain.checkpoint.CheckpointRestore(restored))
  _same(expected, _take(restored, 2))
  it.close()
  restored.close()


def test_pod_metrics_on_one_process_are_the_iterator_metrics():
  class Counted:
    def counters(self):
      return {"t/examples": 3, "t/tokens": 10, "t/positions": 20, "t/skipped/no_text": 1}

  assert iterator.sum_over_processes(Counted().counters()) == Counted().counters()
  assert iterator.pod_metrics(Counted()) == {"t/examples": 3, "t/tokens": 10,
                                             "t/skipped/no_text": 1, "t/packing_efficiency": 0.5}
