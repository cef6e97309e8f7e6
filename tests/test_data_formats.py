"""Raw data formats (issue 16): webdataset tars, parquet, LLaVA conversations -> pretokenize
-> multi-turn understanding examples. Tiny data written here: 32 px images, mean-colour
codes of 8 px blocks (4 x 4 codes), fold 2 x 2 (4 image tokens per image)."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile

import grain
import jax
import ml_collections
import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from array_record.python import array_record_module
from flax import serialization

from data_pipelines import config as config_lib
from data_pipelines.pipeline import examples
from data_pipelines.pipeline import multimodal
from data_pipelines.pipeline import packing
from data_pipelines.pipeline import pretokenize
from data_pipelines.pipeline import records
from data_pipelines.pipeline import sequences
from data_pipelines.sources import parquet
from synergen_jax import batch as batch_lib
from synergen_jax import image_grid
from synergen_jax.tokenizer import Tokenizer

FOLD, GRID = (2, 2), (4, 4)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = ["a red circle on a blue square", "What colour is the shape?", "Red.",
          "And the shape?", "A circle.", "Describe the picture.", "Look at this:",
          "what is it?", "Tell me a joke.", "Why did the chicken cross the road?",
          "Provide a one-sentence caption for the image.", "Generate an image of:"]
QUANTIZE = pretokenize.mean_color_quantizer(8)
PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def tok():
  return Tokenizer.train(CORPUS * 4, vocab_size=300)


def _image(seed: int, fmt: str = "PNG") -> bytes:
  """A 32 x 32 image of 8 px blocks of random colours, encoded as `fmt`."""
  blocks = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
  buf = io.BytesIO()
  PIL.Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)).save(buf, format=fmt)
  return buf.getvalue()


def _config(tmp_path, kind: str, data_dir: str, **source) -> config_lib.DataConfig:
  return config_lib.resolve(_raw_config(tmp_path, kind, data_dir, **source))


def _raw_config(tmp_path, kind: str, data_dir: str, **source) -> ml_collections.ConfigDict:
  """The data ConfigDict, as the pretokenize command line's flags make it."""
  cfg = config_lib.default_data_config()
  cfg.source.kind = kind
  cfg.source.data_dir = str(data_dir)
  for k, v in source.items():
    if k == "fields":
      for name, spec in v.items():
        cfg.source.fields[name] = spec
    else:
      cfg.source[k] = v
  cfg.pretokenized_dir = str(tmp_path / f"pretok_{kind}")
  cfg.image_size, cfg.vq_downsample = 32, 8
  cfg.num_shards, cfg.encode_batch_size = 1, 16
  cfg.understanding.seq_len = cfg.generation.seq_len = 128
  cfg.prefetch_buffer = 0
  return cfg


def _records(cfg, split="train") -> list[bytes]:
  out = []
  for path in records.shard_files(cfg.pretokenized_dir, split):
    reader = array_record_module.ArrayRecordReader(path)
    out += reader.read_all()
    reader.close()
  return out


def _run(cfg):
  stats = pretokenize.pretokenize(cfg, QUANTIZE, split="train")
  recs = _records(cfg)
  return stats, recs, [records.decode_record(r) for r in recs]


def _codes(image_bytes: bytes) -> np.ndarray:
  rgb = np.asarray(PIL.Image.open(io.BytesIO(image_bytes)).convert("RGB"))
  return np.asarray(QUANTIZE(rgb[None]))[0]


def _tar(path, members):
  """members: [(name, bytes)] in order."""
  with tarfile.open(path, "w") as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


def _json(obj) -> bytes:
  return json.dumps(obj).encode()


CONV_OK = [{"from": "human", "value": "<image>\nWhat colour is the shape?"},
           {"from": "gpt", "value": "Red."},
           {"from": "human", "value": "And the shape?"}, {"from": "gpt", "value": "A circle."}]
CONV_BAD = [{"from": "human", "value": "<image>\nWhat colour?"},
            {"from": "human", "value": "And the shape?"}]


# ---- webdataset ------------------------------------------------------------------------
def test_webdataset_reads_shards_in_order_and_counts_skips(tmp_path, tok):
  d = tmp_path / "wds"
  d.mkdir()
  # Written in reverse name order: the glob is read sorted.
  _tar(d / "shard-00001.tar", [
      ("s10.jpg", _image(10, "JPEG")),                           # missing caption
      ("s11.jpg", _image(11, "JPEG")), ("s11.json", b"{not json"),  # malformed .json
      ("s12.png", _image(12)), ("s12.json", _json({"caption": "x", "conversations": CONV_BAD})),
      ("s13.webp", _image(13, "WEBP")), ("s13.txt", b"a webp image"),
      ("dir/s14.jpeg", _image(14, "JPEG")), ("dir/s14.txt", b"with a conversation"),
      ("dir/s14.json", _json({"conversations": CONV_OK})),
  ])
  _tar(d / "shard-00000.tar", [
      ("s00.jpg", _image(0, "JPEG")), ("s00.txt", "a red circle é".encode()),
      ("s01.txt", b"no image"),                                     # missing image
      ("s02.png", _image(2)), ("s02.json", _json({"caption": "from json", "url": "u"})),
      ("s03.jpg", b"\xff\xd8 corrupt"), ("s03.txt", b"corrupt image"),  # corrupt image
  ])
  cfg = _config(tmp_path, "webdataset", d / "*.tar")
  stats, _, recs = _run(cfg)
  assert stats["skip_reasons"] == {"missing_text": 1, "undecodable_record": 1,
                                   "bad_conversation": 1, "missing_image": 1,
                                   "undecodable_image": 1}
  assert stats["written"] == 4 and stats["skipped"] == 5
  assert [r["id"] for r in recs] == ["s00", "s02", "s13", "dir/s14"]
  assert [r["captions"] for r in recs] == [["a red circle é"], ["from json"],
                                           ["a webp image"], ["with a conversation"]]
  np.testing.assert_array_equal(recs[1]["gen_codes"], _codes(_image(2)))
  np.testing.assert_array_equal(recs[1]["und_codes"], _codes(_image(2))[None])
  assert recs[3]["conversation"] == [t["value"] for t in CONV_OK]
  assert all(r["conversation"] == [] for r in recs[:3])


# ---- parquet ---------------------------------------------------------------------------
def test_parquet_reads_row_groups_lazily_and_counts_skips(tmp_path, tok, monkeypatch):
  d = tmp_path / "pq"
  d.mkdir()
  (tmp_path / "root").mkdir()
  (tmp_path / "root" / "on_disk.png").write_bytes(_image(5))
  img = lambda b, p=None: {"bytes": b, "path": p}
  # HF datasets layout: an image struct, text columns, a column nobody asked for.
  rows = [
      ("p0", img(_image(0)), "first", None),
      ("p1", None, "no image", None),                                # missing image
      ("p2", img(b"garbage"), "corrupt", None),                      # corrupt image
      ("p3", img(_image(3)), None, None),                            # missing caption
      ("p4", img(None, "on_disk.png"), "from a path", None),         # read from image_root
      ("p5", img(None, "gone.png"), "file not there", None),         # missing image
      ("p6", img(_image(6)), "bad turns", json.dumps(CONV_BAD)),     # bad conversation
      ("p7", img(_image(7)), "with turns", json.dumps(CONV_OK)),
      ("p8", img(_image(8)), "malformed JSON", '[{"from": "human", '),  # bad conversation
  ]
  table = pa.table({
      "key": [r[0] for r in rows], "image": [r[1] for r in rows],
      "caption": [r[2] for r in rows], "conversations": [r[3] for r in rows],
      "embedding": [np.zeros(64, np.float32).tolist()] * len(rows)})
  pq.write_table(table, d / "part-0.parquet", row_group_size=3)
  # img2dataset layout: raw "jpg" bytes and "txt" captions.
  pq.write_table(pa.table({"key": ["q0"], "jpg": [_image(8, "JPEG")], "txt": ["jpg column"]}),
                 d / "part-1.parquet")
  reads, read_row_group = [], pq.ParquetFile.read_row_group

  def counting(self, i, columns=None, **kw):
    reads.append((i, tuple(columns)))
    return read_row_group(self, i, columns=columns, **kw)

  monkeypatch.setattr(parquet.pq.ParquetFile, "read_row_group", counting)
  cfg = _config(tmp_path, "parquet", d / "*.parquet", image_root=str(tmp_path / "root"))
  stats, _, recs = _run(cfg)
  assert stats["skip_reasons"] == {"missing_image": 2, "undecodable_image": 1,
                                   "missing_text": 1, "bad_conversation": 2}
  assert [r["id"] for r in recs] == ["p0", "p4", "p7", "q0"]
  assert [r["captions"] for r in recs] == [["first"], ["from a path"], ["with turns"],
                                           ["jpg column"]]
  np.testing.assert_array_equal(recs[1]["gen_codes"], _codes(_image(5)))
  assert recs[2]["conversation"] == [t["value"] for t in CONV_OK]
  # Each row group read once, without the unused column.
  assert [i for i, _ in reads] == [0, 1, 2, 0]
  assert all("embedding" not in cols for _, cols in reads)


# ---- llava -----------------------------------------------------------------------------
def _llava_files(tmp_path):
  root = tmp_path / "images"
  (root / "coco").mkdir(parents=True)
  (root / "coco" / "a.png").write_bytes(_image(1))
  (root / "coco" / "b.jpg").write_bytes(_image(2, "JPEG"))
  (root / "coco" / "bad.jpg").write_bytes(b"not a jpeg")
  conv = lambda *turns: [{"from": "human" if i % 2 == 0 else "gpt", "value": v}
                         for i, v in enumerate(turns)]
  lines = [
      {"id": "l0", "image": "coco/a.png", "conversations": CONV_OK},
      {"id": "l1", "image": "coco/b.jpg",
       "conversations": conv("Look at this: <image> what is it?", "A circle.")},
      {"id": "l2", "conversations": conv("Tell me a joke.", "Why did the chicken cross the road?")},
      {"id": "l3", "image": "coco/missing.jpg", "conversations": CONV_OK},  # missing image
      {"id": "l4", "image": "coco/bad.jpg", "conversations": CONV_OK},      # corrupt image
      {"id": "l5", "image": "coco/a.png", "conversations": CONV_BAD},       # not alternating
      {"id": "l6", "image": "coco/a.png", "conversations": conv("Describe the picture.")},
      {"id": "l7", "image": "coco/a.png"},                                  # no text at all
  ]
  text = "\n".join(json.dumps(x) for x in lines[:3]) + "\n{\"id\": \"l8\", \"image\": \n\n"
  text += "\n".join(json.dumps(x) for x in lines[3:]) + "\n"
  (tmp_path / "llava").mkdir()
  (tmp_path / "llava" / "a.jsonl").write_text(text)
  (tmp_path / "llava" / "b.json").write_text(json.dumps([
      {"id": "m0", "image": "coco/b.jpg", "conversations": conv("Describe the picture.",
                                                                "A red circle.")}]))
  return root


def test_llava_conversations_and_skips(tmp_path, tok):
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*", image_root=str(root))
  stats, _, recs = _run(cfg)
  assert stats["skip_reasons"] == {"undecodable_record": 1, "missing_image": 1,
                                   "undecodable_image": 1, "bad_conversation": 2,
                                   "missing_text": 1}
  assert [r["id"] for r in recs] == ["l0", "l1", "l2", "m0"]
  assert pretokenize.shard_stats(cfg.pretokenized_dir, "train") == {
      "shards": 1, "written": 4, "skipped": 6, "skip_reasons": stats["skip_reasons"]}
  assert recs[0]["conversation"] == [t["value"] for t in CONV_OK]
  np.testing.assert_array_equal(recs[0]["und_codes"], _codes(_image(1))[None])
  assert not records.has_image(recs[2]) and records.has_image(recs[3])
  assert all(r["captions"] == [] for r in recs)


@pytest.mark.slow
def test_llava_cli_with_field_flags(tmp_path):
  """The CLI reads every kind; a field of the mapping is a flag (a placeholder);
  `--stats_only` prints the finished shards' counts. (The suite's only `python -m
  data_pipelines.pretokenize` processes.)"""
  root = _llava_files(tmp_path)
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "data_pipelines.pretokenize", "--data.source.kind=llava",
       f"--data.source.data_dir={tmp_path}/llava/*.jsonl", f"--data.source.image_root={root}",
       "--data.source.fields.id=", f"--data.pretokenized_dir={out}", "--data.image_size=32",
       "--data.num_shards=1", "--splits=train"],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  stats = json.loads(proc.stdout.strip().splitlines()[-1])
  assert stats["written"] == 3 and stats["skipped"] == 6
  reader = array_record_module.ArrayRecordReader(
      records.shard_files(str(out), "train")[0])
  assert [records.decode_record(r)["id"] for r in reader.read_all()] == ["0", "1", "2"]
  reader.close()
  proc = subprocess.run(
      [sys.executable, "-m", "data_pipelines.pretokenize", f"--data.pretokenized_dir={out}",
       "--splits=train", "--stats_only"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
      "split": "train", "shards": 1, "written": 3, "skipped": 6,
      "skip_reasons": stats["skip_reasons"]}


# ---- the same records in three formats -------------------------------------------------
def test_same_records_in_every_format_pretokenize_identically(tmp_path, tok):
  samples = [(f"k{i}", _image(20 + i, "JPEG" if i % 2 else "PNG"), f"caption {i}")
             for i in range(5)]
  samples += [("k5", None, "no image"), ("k6", b"corrupt", "bad bytes"),
              ("k7", _image(27), None)]
  wds = tmp_path / "wds"
  wds.mkdir()
  members = []
  for key, image, caption in samples:
    member = []
    if image is not None:
      ext = "png" if image.startswith(PNG_MAGIC) else "jpg"
      member.append((f"{key}.{ext}", image))
    if caption is not None:
      member.append((f"{key}.txt", caption.encode()))
    members.append(member)
  _tar(wds / "00000.tar", sum(members[:3], []))
  _tar(wds / "00001.tar", sum(members[3:], []))
  par = tmp_path / "par"
  par.mkdir()
  pq.write_table(pa.table({
      "key": [s[0] for s in samples],
      "image": [None if s[1] is None else {"bytes": s[1], "path": None} for s in samples],
      "caption": [s[2] for s in samples]}), par / "a.parquet", row_group_size=3)
  ar = tmp_path / "ar"
  ar.mkdir()
  writer = array_record_module.ArrayRecordWriter(str(ar / "a.ar"), "group_size:1")
  for key, image, caption in samples:
    rec = {"id": key}
    if image is not None:
      rec["img"] = image
    if caption is not None:
      rec["txt"] = caption
    writer.write(serialization.msgpack_serialize(rec))
  writer.close()
  runs = [
      _run(_config(tmp_path, "webdataset", wds / "*.tar")),
      _run(_config(tmp_path, "parquet", par / "*.parquet")),
      _run(_config(tmp_path, "array_record", ar / "*.ar",
                   fields={"image": "img", "captions": "txt"})),
  ]
  for stats, raw, recs in runs:
    assert stats["skip_reasons"] == {"missing_image": 1, "undecodable_image": 1,
                                     "missing_text": 1}
    assert [r["id"] for r in recs] == [f"k{i}" for i in range(5)]
    assert raw == runs[0][1]  # byte-identical pretokenized records
  np.testing.assert_array_equal(runs[0][2][3]["gen_codes"], _codes(samples[3][1]))


def test_multihost_processes_write_disjoint_shards(tmp_path, tok, monkeypatch):
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*", image_root=str(root))
  cfg = dataclasses.replace(cfg, num_shards=3)
  _, whole, _ = _run(cfg)
  parts = []
  for process in range(2):
    c = dataclasses.replace(cfg, pretokenized_dir=str(tmp_path / f"process{process}"))
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda p=process: p)
    stats = pretokenize.pretokenize(c, QUANTIZE, split="train")
    monkeypatch.undo()
    assert stats["shards_done"] == (2 if process == 0 else 1)
    parts.append(sorted(os.listdir(c.pretokenized_dir)))
  assert [p for p in parts[0] if p.endswith("3")] == ["train.array_record-00000-of-00003",
                                                       "train.array_record-00002-of-00003"]
  assert [p for p in parts[1] if p.endswith("3")] == ["train.array_record-00001-of-00003"]
  merged = []
  for name in sorted(parts[0] + parts[1]):
    if name.endswith("3"):
      where = tmp_path / ("process1" if name in parts[1] else "process0") / name
      reader = array_record_module.ArrayRecordReader(str(where))
      merged += reader.read_all()
      reader.close()
  assert merged == whole


def test_bad_source_configs_name_the_field(tmp_path):
  cfg = _raw_config(tmp_path, "csv", tmp_path)
  with pytest.raises(ValueError, match=r"^data\.source\.kind: 'csv': expected one of"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  cfg = _config(tmp_path, "webdataset", tmp_path / "nothing" / "*.tar")
  with pytest.raises(FileNotFoundError, match=r"data.source.data_dir: no tar files match"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  cfg = _raw_config(tmp_path, "parquet", tmp_path / "x.parquet")
  cfg.source.fields = dict(cfg.source.fields.to_dict(), capton="text")
  with pytest.raises(ValueError, match=r"^data\.source\.fields\.capton: unknown field"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  (tmp_path / "x.tar").write_bytes(b"\x1f\x8b" + b"\0" * 600)
  cfg = _config(tmp_path, "webdataset", tmp_path / "x.tar")
  with pytest.raises(ValueError, match="x.tar is not a readable uncompressed tar"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  (tmp_path / "x.json").write_text('[{"id": 1}, ')
  cfg = _config(tmp_path, "llava", tmp_path / "x.json")
  with pytest.raises(ValueError, match="x.json starts with .* not a valid JSON list"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
  cfg = _config(tmp_path, "parquet", tmp_path / "x.parquet")
  with pytest.raises(ValueError, match="x.parquet is not a readable parquet file"):
    pretokenize.pretokenize(cfg, QUANTIZE)
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*.jsonl", image_root=str(root))
  with pytest.raises(ValueError, match=r"\(8, 8\) codes .* data.vq_downsample"):
    pretokenize.pretokenize(cfg, pretokenize.mean_color_quantizer(4))  # a 4x VQ, not 8x


# ---- multi-turn sequences --------------------------------------------------------------
def _expected(tok, parts):
  """[(ids, is_target)] -> (tokens, text_target) as the chat template writes them."""
  tokens = [t for ids, _ in parts for t in ids]
  target = [float(tt) for ids, tt in parts for _ in ids]
  return np.asarray(tokens, np.int32), np.asarray(target, np.float32)


def test_multi_turn_targets_cover_exactly_the_assistant_turns(tmp_path, tok):
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*", image_root=str(root))
  _, raw, recs = _run(cfg)
  builder = examples.ExampleBuilder(cfg, tok, FOLD, GRID, "understanding")
  user, asst, end, img = tok.turn_start("user"), tok.turn_start("assistant"), tok.turn_end(), \
      [tok.image_id] * 4
  image = [tok.boi_id] + img + [tok.eoi_id]
  enc = tok.encode
  cases = {
      "l0": [([tok.bos_id] + user + image + enc("What colour is the shape?") + end + asst, 0),
             (enc("Red.") + end, 1), (user + enc("And the shape?") + end + asst, 0),
             (enc("A circle.") + end + [tok.eos_id], 1)],
      # <image> in the middle of the question: the image stands there.
      "l1": [([tok.bos_id] + user + enc("Look at this:") + image + enc("what is it?") + end
              + asst, 0), (enc("A circle.") + end + [tok.eos_id], 1)],
      # Text only: no image anywhere.
      "l2": [([tok.bos_id] + user + enc("Tell me a joke.") + end + asst, 0),
             (enc("Why did the chicken cross the road?") + end + [tok.eos_id], 1)],
  }
  for rec, data in zip(recs, raw):
    if rec["id"] not in cases:
      continue
    ex = builder(data, np.random.default_rng(0))
    tokens, target = _expected(tok, cases[rec["id"]])
    np.testing.assert_array_equal(ex["tokens"], tokens)
    np.testing.assert_array_equal(ex["text_target"], target)
    np.testing.assert_array_equal(ex["is_image"], tokens == tok.image_id)
    assert ex["image_target"].sum() == 0
    if rec["id"] != "l2":
      np.testing.assert_array_equal(ex["image_codes"][ex["is_image"]],
                                    np.asarray(image_grid.fold_grid(rec["und_codes"][0], *FOLD)))
  gen = examples.ExampleBuilder(cfg, tok, FOLD, GRID, "generation")
  assert [gen(d, np.random.default_rng(0)).get(packing.SKIP_KEY) for d in raw] == \
      ["no_text", "no_text", "no_image", "no_text"]


def test_overlong_conversations_cut_at_a_turn_boundary_or_dropped(tok):
  tiles = np.arange(16, dtype=np.int32).reshape(1, 4, 4)
  turns = [("<image>\nWhat colour is the shape?", "Red."), ("And the shape?", "A circle."),
           ("Describe the picture.", "a red circle on a blue square")]
  lengths = [len(sequences.build_conversation(tok, tiles, turns[:k], FOLD)["tokens"])
             for k in (1, 2, 3)]
  assert lengths[0] < lengths[1] < lengths[2]
  whole = sequences.fit_conversation(tok, tiles, turns, FOLD, "", lengths[2], "drop")
  assert whole[1] is False and len(whole[0]["tokens"]) == lengths[2]
  assert sequences.fit_conversation(tok, tiles, turns, FOLD, "", lengths[2] - 1, "drop") is None
  cut, truncated = sequences.fit_conversation(tok, tiles, turns, FOLD, "", lengths[2] - 1,
                                              "truncate")
  want = sequences.build_conversation(tok, tiles, turns[:2], FOLD)
  assert truncated and set(cut) == set(want)
  for k in want:
    np.testing.assert_array_equal(cut[k], want[k])
  assert cut["tokens"][-1] == tok.eos_id and cut["text_target"][-1] == 1
  assert sequences.fit_conversation(tok, tiles, turns, FOLD, "", lengths[0] - 1,
                                    "truncate") is None  # no whole turn fits


def test_overlong_counts_in_the_pipeline(tmp_path, tok):
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*", image_root=str(root))
  _, raw, recs = _run(cfg)
  l0 = raw[[r["id"] for r in recs].index("l0")]
  full = len(examples.ExampleBuilder(cfg, tok, FOLD, GRID, "understanding")(
      l0, np.random.default_rng(0))["tokens"])
  cfg = dataclasses.replace(cfg, overlong="truncate", understanding=dataclasses.replace(
      cfg.understanding, seq_len=full - 1))
  ex = examples.ExampleBuilder(cfg, tok, FOLD, GRID, "understanding")(l0, None)
  assert ex.pop(packing.TRUNCATED_KEY) is True and len(ex["tokens"]) < full
  assert (ex["tokens"] == tok.im_end_id).sum() == 2  # the first user + assistant turn
  cfg = dataclasses.replace(cfg, overlong="drop")
  ex = examples.ExampleBuilder(cfg, tok, FOLD, GRID, "understanding")(l0, None)
  assert ex == packing.skip("overlong_dropped")


def test_packed_row_of_two_conversations_equals_each_alone(tok):
  tiles = np.arange(16, dtype=np.int32).reshape(1, 4, 4)
  a = sequences.build_conversation(
      tok, tiles, [("<image>\nWhat colour is the shape?", "Red."), ("And the shape?", "A circle.")],
      FOLD)
  b = sequences.build_conversation(tok, None, [("Tell me a joke.", "Why did the chicken cross "
                                                "the road?")], FOLD)
  seq_len = len(a["tokens"]) + len(b["tokens"]) + 5
  ds = grain.MapDataset.source([a, b]).to_iter_dataset()
  row = next(iter(packing.pack_examples(ds, seq_len, 1, tok.pad_id, seed=0)))
  seg, pos = row["segment_ids"], row["positions"]
  assert seg.tolist() == [1] * len(a["tokens"]) + [2] * len(b["tokens"]) + [0] * 5
  for s, ex in ((1, a), (2, b)):
    np.testing.assert_array_equal(pos[seg == s], np.arange(len(ex["tokens"])))
    for k in batch_lib.EXAMPLE_FIELDS:
      np.testing.assert_array_equal(row[k][seg == s], ex[k], err_msg=k)
  assert row["text_target"][seg == 0].sum() == 0


def test_tasks_read_their_own_directories(tmp_path, tok):
  """SFT layout: LLaVA conversations for understanding, caption pairs for generation."""
  root = _llava_files(tmp_path)
  cfg = _config(tmp_path, "llava", tmp_path / "llava" / "*", image_root=str(root))
  _run(cfg)
  (tmp_path / "pairs").mkdir()
  _tar(tmp_path / "pairs" / "0.tar", [m for i in range(4) for m in (
      (f"{i}.png", _image(40 + i)), (f"{i}.txt", f"a red circle {i}".encode()))])
  pairs = _config(tmp_path, "webdataset", tmp_path / "pairs" / "*.tar")
  _run(pairs)
  cfg = dataclasses.replace(
      cfg, understanding=dataclasses.replace(cfg.understanding, batch_size=2),
      generation=dataclasses.replace(cfg.generation, batch_size=2,
                                     pretokenized_dir=pairs.pretokenized_dir))
  assert cfg.task_pretokenized_dir("understanding") == cfg.pretokenized_dir
  assert cfg.task_pretokenized_dir("generation") == pairs.pretokenized_dir
  it = multimodal.make_pipeline(cfg, tok, FOLD, GRID)
  batch = it.next_local()
  und, gen = batch["understanding"], batch["generation"]
  assert und["image_target"].sum() == 0 and und["text_target"].sum() > 0
  assert gen["image_target"].sum() > 0
  assert tok.decode(gen["tokens"][0][gen["segment_ids"][0] == 1].tolist()).startswith(
      "<|im_start|>user\nGenerate an image of: a red circle")
  # The understanding rows are the conversations: some have several user turns.
  users = [(r[s == k] == tok.im_start_id).sum() // 2 for r, s in zip(und["tokens"],
                                                                     und["segment_ids"])
           for k in range(1, s.max() + 1)]
  assert max(users) == 2
  assert not [k for k in it.metrics() if "/skipped/" in k]
  it.close()
