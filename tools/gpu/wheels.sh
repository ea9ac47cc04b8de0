#!/usr/bin/env bash
# Downloads (here, where PyPI is reachable) the wheels that give the lent machine the
# transformers 4.x the encoder scripts need (common.sh `legacy_transformers`): transformers
# 4.46.3 and the versions of its Hub and tokenizer packages in tools/.venv, for the machine's
# Python 3.12 on x86-64, without dependencies (numpy, torch, safetensors, regex, tqdm, yaml and
# filelock are the machine's own). ~14 MB into .gpudata/wheels, which the device calls carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpudata/wheels
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 -d .gpudata/wheels \
    transformers==4.46.3 tokenizers==0.20.3 huggingface_hub==0.36.2 \
    requests urllib3 idna charset_normalizer certifi
ls -la .gpudata/wheels
