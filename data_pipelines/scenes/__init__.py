"""The embedded world: procedural scenes, their text, a pixel scorer, TFDS builders.

  palette       shapes, colours, held-out (shape, colour) pairs, glyphs
  render        a scene graph sampled from a seed, drawn with numpy
  text          captions and question/answer pairs of a scene graph
  scorer        pixels -> objects (evaluation: GenEval-style scoring, VQ checks)
  corpus        text-only examples of the same world (facts, arithmetic, sentences)
  tfds_base, tfds_scenes, tfds_text   TFDS ArrayRecord builders: synergen_scenes/<config>,
                synergen_text (built by `python -m data_pipelines.build`)

Imports nothing else of data_pipelines: a raw source like any other once built
(`sources/`, kind "tfds").
"""
