"""The field mapping `data.source.fields`: which field of a raw record holds what.

  NAMES                          the mapped names: image, captions, questions, answers,
                                 question_types, scene_graph, id, conversation
  KIND_DEFAULTS[kind]            the mapping a kind uses for a name left unset (None)
  resolve(source) -> {name: spec}    `source.fields` over the kind's defaults
  lookup(record, spec) -> value | None
  top_level(spec) -> [column]        the record keys a spec reads (parquet projection)

A spec is "" (the record has no such field), a key ("caption"), a dotted path into nested
maps ("json.caption": the `caption` key of the record's `json` member; an exact key with
a dot wins over the path), or alternatives separated by "|", the first one present (not
None) wins ("jpg|jpeg|png|webp"). The caption field feeds both tasks: understanding
(caption the image) and generation (caption -> image), whatever the kind.
"""

NAMES = ("image", "captions", "questions", "answers", "question_types", "scene_graph", "id",
         "conversation")

_SCENES = {"image": "image", "captions": "captions", "questions": "questions",
           "answers": "answers", "question_types": "question_types",
           "scene_graph": "scene_graph", "id": "id", "conversation": "conversations"}
_NONE = {name: "" for name in NAMES}

KIND_DEFAULTS = {
    "tfds": _SCENES,
    "array_record": _SCENES,
    # img2dataset / webdataset: {key}.jpg + {key}.txt and/or {key}.json ("caption" key).
    "webdataset": {**_NONE, "image": "jpg|jpeg|png|webp", "captions": "txt|json.caption",
                   "id": "__key__", "conversation": "json.conversations"},
    # HF datasets exports ("image" struct {bytes, path}, "text") and img2dataset parquet
    # ("jpg" bytes, "caption", "key").
    "parquet": {**_NONE, "image": "image|jpg|jpeg|png|webp",
                "captions": "caption|txt|text", "id": "key|id",
                "conversation": "conversations"},
    # LLaVA instruction data: {"id", "image", "conversations"}.
    "llava": {**_NONE, "image": "image", "id": "id", "conversation": "conversations"},
}


def resolve(source) -> dict:
  """{name: spec} for `source.kind` (a checked `config.Source`): the set fields of
  `source.fields`, else the kind's default."""
  out = dict(KIND_DEFAULTS[source.kind])
  for name in NAMES:
    spec = getattr(source.fields, name)
    if spec is not None:
      out[name] = spec
  return out


def _path(record, path: str):
  if path in record:
    return record[path]
  node = record
  for part in path.split("."):
    if not isinstance(node, dict) or part not in node:
      return None
    node = node[part]
  return node


def lookup(record: dict, spec: str):
  """The first alternative of `spec` present in `record` (None if none is)."""
  if not spec:
    return None
  for alternative in spec.split("|"):
    value = _path(record, alternative.strip())
    if value is not None:
      return value
  return None


def top_level(spec: str) -> list[str]:
  """The top-level record keys `spec` may read, in order."""
  if not spec:
    return []
  out = []
  for alternative in spec.split("|"):
    alternative = alternative.strip()
    out += [alternative, alternative.split(".")[0]]
  return list(dict.fromkeys(out))
