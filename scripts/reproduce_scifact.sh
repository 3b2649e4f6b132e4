#!/usr/bin/env bash
# Reproduce every scifact figure in README.md (CPU, ~1-2 h on 2 cores). Each step logs to
# runs/exp/<step>.log and evaluations write runs/exp/<name>/results.json.
# Usage: bash scripts/reproduce_scifact.sh [BEIR_SCIFACT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DATA=${1:-../shared/data/beir/scifact}
EXP=runs/exp
mkdir -p "$EXP"
step() { local name=$1; shift; local t0=$SECONDS; echo "== $name: $*"; "$@" >"$EXP/$name.log" 2>&1; echo "   $name done in $((SECONDS - t0)) s"; }
evaluate() { local name=$1; shift; step "eval_$name" sparse-tune evaluate --dataset "$DATA" --split test --cache-dir "$EXP/cache" --output "$EXP/$name" "$@"; tail -n 3 "$EXP/eval_$name.log" | head -n 1; }
train() { local name=$1 recipe=$2; shift 2; step "train_$name" sparse-tune train "$recipe" --beir_dir "$DATA" --output_dir "$EXP/$name" "$@"; }

# 0. IDF of the scifact corpus with the model's tokenizer (the inference-free query weights).
step idf sparse-tune idf --corpus "$DATA" --tokenizer splade-tiny --output "$EXP/idf_scifact.json"

# 1. SPLADE before training, embedded and through an OpenSearch-compatible server.
evaluate splade_base --model splade-tiny
PORT=${SPARSE_TUNE_EXP_PORT:-9250}
if [ -z "${SPARSE_TUNE_OPENSEARCH_URL:-}" ]; then
  BIN=$(python3 -c "from osmem_server import resolve_binary; print(resolve_binary())")
  "$BIN" --addr "127.0.0.1:$PORT" --no-ja --no-stdin-watch >"$EXP/osmem.log" 2>&1 &
  OSPID=$!; trap 'kill $OSPID 2>/dev/null || true' EXIT
  sleep 2
  export SPARSE_TUNE_OPENSEARCH_URL="http://127.0.0.1:$PORT"
fi
evaluate splade_base_opensearch --model splade-tiny --backend opensearch

evaluate if_base --model splade-tiny --head inference_free --idf-path "$EXP/idf_scifact.json"

# 2. The SPLADE and inference-free recipes (random negatives from the corpus).
train splade_random configs/splade_scifact.yaml
evaluate splade_random --model "$EXP/splade_random"
train if_recipe configs/inference_free_scifact.yaml --idf_path "$EXP/idf_scifact.json"
evaluate if_recipe --model "$EXP/if_recipe"
# The same at lr 5e-5: the InfoNCE baseline of the distillation comparison (all three use 5e-5).
train if_random configs/inference_free_scifact.yaml --idf_path "$EXP/idf_scifact.json" --learning_rate 5e-5
evaluate if_random --model "$EXP/if_random"

# 3. BM25-mined hard negatives instead of random ones (same recipe, budget and seed).
step mine_bm25 sparse-tune mine --dataset "$DATA" --split train --method bm25 --range 2-200 --negatives 8 \
  --seed 42 --output "$EXP/mined_bm25.jsonl"
train splade_mined configs/splade_scifact.yaml --train_file "$EXP/mined_bm25.jsonl"
evaluate splade_mined --model "$EXP/splade_mined"

# 4. Distillation into the inference-free student, same budget and seed as if_random (= InfoNCE only):
#    (b) pre-computed ensemble scores over random-negative groups, (c) live ensemble teachers.
step mine_random sparse-tune mine --dataset "$DATA" --split train --method random --negatives 8 --seed 42 \
  --output "$EXP/random.jsonl"
step score sparse-tune score --input "$EXP/random.jsonl" --output "$EXP/scored.jsonl" \
  --teacher dense:minilm-l6:0.5 --teacher sparse:splade-tiny:0.5 --score-scale 10 --docs-per-query 4
train kd_precomputed configs/config_kd_precomputed.yaml --idf_path "$EXP/idf_scifact.json" \
  --train_file "$EXP/scored.jsonl"
evaluate kd_precomputed --model "$EXP/kd_precomputed"
train kd_live configs/config_kd.yaml --idf_path "$EXP/idf_scifact.json"
evaluate kd_live --model "$EXP/kd_live"

# 5. Variations reported in README: inference-free learning rate and FLOPS weight; mining windows.
train if_lr2e4 configs/inference_free_scifact.yaml --idf_path "$EXP/idf_scifact.json" --learning_rate 2e-4
evaluate if_lr2e4 --model "$EXP/if_lr2e4"
train if_lowflops configs/inference_free_scifact.yaml --idf_path "$EXP/idf_scifact.json" --learning_rate 5e-5 \
  --flops_doc_weight 0.0001
evaluate if_lowflops --model "$EXP/if_lowflops"
step mine_bm25_20 sparse-tune mine --dataset "$DATA" --split train --method bm25 --range 20-200 --negatives 8 \
  --seed 42 --output "$EXP/mined_bm25_20.jsonl"
train splade_mined20 configs/splade_scifact.yaml --train_file "$EXP/mined_bm25_20.jsonl"
evaluate splade_mined20 --model "$EXP/splade_mined20"
step mine_mix sparse-tune mine --dataset "$DATA" --split train --method bm25 --range 20-200 --negatives 8 \
  --random-negatives 8 --seed 42 --output "$EXP/mined_mix.jsonl"
train splade_mix configs/splade_scifact.yaml --train_file "$EXP/mined_mix.jsonl"
evaluate splade_mix --model "$EXP/splade_mix"
# More negatives per query: random vs BM25 ranks 20-200 at 8 documents per query.
train splade8_random configs/splade_scifact.yaml --docs_per_query 8
evaluate splade8_random --model "$EXP/splade8_random"
train splade8_mined configs/splade_scifact.yaml --docs_per_query 8 --train_file "$EXP/mined_bm25_20.jsonl"
evaluate splade8_mined --model "$EXP/splade8_mined"

# 6. Distillation on BM25-mined candidates: (a') InfoNCE vs (b') pre-computed ensemble scores.
train if_mined configs/inference_free_scifact.yaml --idf_path "$EXP/idf_scifact.json" \
  --train_file "$EXP/mined_bm25.jsonl" --learning_rate 5e-5
evaluate if_mined --model "$EXP/if_mined"
step score_mined sparse-tune score --input "$EXP/mined_bm25.jsonl" --output "$EXP/scored_mined.jsonl" \
  --teacher dense:minilm-l6:0.5 --teacher sparse:splade-tiny:0.5 --score-scale 10 --docs-per-query 4
train kd_precomputed_mined configs/config_kd_precomputed.yaml --idf_path "$EXP/idf_scifact.json" \
  --train_file "$EXP/scored_mined.jsonl"
evaluate kd_precomputed_mined --model "$EXP/kd_precomputed_mined"
echo "all done"
