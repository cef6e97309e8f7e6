"""synergen-jax: SynerGen-VL (vision experts + token folding) in JAX/Flax."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements():
  lines = (_HERE / "requirements.txt").read_text().splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith("#")]


setuptools.setup(
    name="synergen-jax",
    version="0.1.0",
    description=(
        "SynerGen-VL: a unified image understanding and generation model "
        "with vision experts and token folding, in JAX/Flax."
    ),
    long_description=(_HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=setuptools.find_packages(
        include=["synergen_jax", "synergen_jax.*", "data_pipelines", "data_pipelines.*"]
    ),
    package_data={"synergen_jax.serve": ["static/*"]},  # the page
    install_requires=_requirements(),
    extras_require={
        # Test-only: pytest (+ xdist: two workers), and CPU torch + transformers for
        # parity references.
        "test": ["pytest", "pytest-xdist", "torch==2.13.0", "transformers",
                 # The server's tests: its deps, a real browser (Selenium + Debian's
                 # chromium), the OpenAI client against the endpoints.
                 "starlette", "uvicorn", "selenium", "openai"],
        # Serving a checkpoint (python -m synergen_jax.serve): an ASGI app + its server.
        "serve": ["starlette", "uvicorn"],
        # Tooling: libtpu for ahead-of-time TPU compilation on CPU.
        "tpu": ["libtpu"],
    },
    entry_points={
        "console_scripts": [
            "synergen-train=synergen_jax.train:run",
            "synergen-demo=synergen_jax.demo:run",
            "synergen-train-vq=synergen_jax.train_vq:run",
            "synergen-count-params=synergen_jax.count_params:run",
            "synergen-import-hf=synergen_jax.weights.import_hf:run",
            "synergen-export-hf=synergen_jax.weights.export_hf:run",
            "synergen-aot=synergen_jax.tpu.aot:run",
            "synergen-evaluate=synergen_jax.evaluate:run",
            "synergen-generate=synergen_jax.generate:run",
            "synergen-answer=synergen_jax.answer:run",
            "synergen-serve=synergen_jax.serve.__main__:run",
            "synergen-score=synergen_jax.score:run",
        ],
    },
)
