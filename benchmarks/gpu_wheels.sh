#!/usr/bin/env bash
# Run here (a machine with the package registry) before a GPU session: downloads the wheels benchmarks/gpu_check.sh
# installs on the GPU machine, which has no network, Python 3.12, torch 2.11 and transformers 5.17 but lacks
# pydantic, plotly and diffusers. Writes gpu-wheels/ (git-ignored): those packages with the dependencies they need
# beyond what the GPU machine has, the test tools, and this project as a wheel (its entry points register the
# built-in workloads). Carry it with the device tool: run(carry=["gpu-wheels"], ...); its limit is 64 MiB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-wheels && mkdir gpu-wheels
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64)
# what the GPU machine lacks, without the dependencies it has (torch, transformers, numpy, huggingface-hub, ...)
python -m pip download -q --no-deps -c constraints.txt "${TARGET[@]}" -d gpu-wheels \
  pydantic pydantic-core annotated-types typing-inspection typing-extensions \
  plotly narwhals diffusers importlib-metadata zipp lazy-importer pillow jinja2 markupsafe \
  rich markdown-it-py mdurl pygments psutil nvidia-ml-py \
  pytest pluggy iniconfig hypothesis sortedcontainers attrs
python -m pip wheel -q --no-deps -w gpu-wheels .
du -sh gpu-wheels && ls gpu-wheels
