#!/usr/bin/env bash
# Emoji64 comparisons at equal wall-clock: every run of a group trains side by side on one GPU for the same
# minutes (scripts/emoji_compare.py), then scores itself. Each run is cut off after LIMIT seconds (default:
# none), so a call with a deadline still keeps what finished (every run writes its model before scoring).
# REPEATS (default 1): samples per test image for the quality scores. TRAIN_ONLY=1: stop once the runs have
# trained and scored themselves (no paired pass, latents or sweeps after them).
#
#   bash scripts/emoji_runs.sh p8  [MINUTES] [OUT]   # emoji64-p8 and its levers, one change at a time (9 runs)
#   bash scripts/emoji_runs.sh p16 [MINUTES] [OUT]   # emoji64-p16: FARMER, K_R = 32, literal split, no split, Gaussian-prior flow;
#                                                    # then guidance on the FARMER run
#   bash scripts/emoji_runs.sh p16-flip [MINUTES] [OUT] # emoji64-p16 with mirrored training images: FARMER, no split,
#                                                    # flow, d_I = 256, weight decay 0.3; then guidance and γ on FARMER
#   MODEL=runs/emoji/p8/p8/model.safetensors bash scripts/emoji_runs.sh guidance-p8 [MINUTES] [OUT]
#   bash scripts/emoji_runs.sh p16-diag [MINUTES] [OUT]  # one emoji64-p16 FARMER (mirrored, weight decay 0.3) alone,
#                                                    # then what its channels hold, per-token redundant weights, and γ
#   bash scripts/emoji_runs.sh p16-redundant [MINUTES] [OUT]  # emoji64-p16 (mirrored, weight decay 0.3): FARMER, one
#                                                    # redundant mixture per token (gmm-token), couplings among each
#                                                    # token's redundant channels (detail_layers=4), both, no split
#                                                    # (CONTEXT=1: also coupling_depth=2); then paired bits/dim, latents
#   bash scripts/emoji_runs.sh p16-basis [MINUTES] [OUT]  # emoji64-p16 (mirrored, weight decay 0.3), the basis the
#                                                    # split sees: DCT (the preset), Haar, Haar with one redundant
#                                                    # mixture per token, and no split in the pixel and Haar bases;
#                                                    # then paired bits/dim, latents
#   bash scripts/emoji_runs.sh p16-local [MINUTES] [OUT]  # emoji64-p16 (mirrored, weight decay 0.3), a local basis:
#                                                    # DCT split (the preset), one-level Haar (2 × 2 blocks) split
#                                                    # with d_I = 192 and 128, no split in pixels and in one-level
#                                                    # Haar; then paired bits/dim, latents, std temperatures
#   bash scripts/emoji_runs.sh p16-local-levers [MINUTES] [OUT]  # the one-level Haar split (d_I = 192) with one
#                                                    # redundant mixture per token, with detail_layers=4, and no
#                                                    # split; then guidance and temperatures on the split
#   REPEATS=2 bash scripts/emoji_runs.sh p16-seeds [MINUTES] [OUT]  # the one-level Haar split (d_I = 192) and no
#                                                    # split in pixels, two seeds each (single-run FID moves ~10 %)
#   REPEATS=2 bash scripts/emoji_runs.sh p16-pair [MINUTES] [OUT]  # the same two models sharing the GPU two ways,
#                                                    # not four: more steps each (does the split catch up?)
#   bash scripts/emoji_runs.sh p8-local [MINUTES] [OUT]  # emoji64-p8 (mirrored, weight decay 0.3): DCT split (the
#                                                    # preset), one-level Haar split (d_I = 48), no split, flow;
#                                                    # then paired bits/dim
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
group=$1; minutes=${2:-8}; out=${3:-runs/emoji/$group}; limit=${LIMIT:-0}; repeats=${REPEATS:-1}   # samples per test image
mkdir -p "$out"
train() {   # train NAME ARGS...: one run in the background
  local name=$1; shift
  timeout "$limit" python scripts/emoji_compare.py train --minutes "$minutes" --repeats "$repeats" --out "$out/$name" "$@" \
    > "$out/$name.log" 2>&1 &
}
trained() {   # wait for the group's runs; with TRAIN_ONLY set, end there
  wait
  if [[ -n ${TRAIN_ONLY:-} ]]; then tail -n 3 "$out"/*.log; exit 0; fi
}
compare() {   # compare "RUNS" "LATENT_RUNS": paired bits/dim of the runs that wrote a model, then latents
  local ms r
  ms=$(for r in $1; do [[ -f $out/$r/model.safetensors ]] && echo "$out/$r/model.safetensors"; done)
  timeout "$limit" python scripts/emoji_compare.py paired --models $ms --out "$out/paired.json" > "$out/paired.log" 2>&1
  for r in $2; do
    timeout "$limit" python scripts/emoji_compare.py latents --model "$out/$r/model.safetensors" \
      --out "$out/${r}_latents" --device cuda > "$out/${r}_latents.log" 2>&1
  done
}
case $group in
  p8)
    train p8           --preset emoji64-p8                                     # DCT basis + coupling (the preset)
    train p8_literal   --preset emoji64-p8 --set basis=pixel coupling=0         # the paper read literally
    train p8_dct       --preset emoji64-p8 --set coupling=0                     # basis only
    train p8_coupling  --preset emoji64-p8 --set basis=pixel                    # coupling only
    train p8_kr32      --preset emoji64-p8 --set K_R=32                         # fewer redundant components
    train p8_ug        --preset emoji64-p8 --noise uniform+gaussian             # other training noise
    train p8_nosplit   --preset emoji64-p8 --set d_I=192 K_I=64 basis=pixel coupling=0
    train p8_nosplit_dct --preset emoji64-p8 --set d_I=192 K_I=64 coupling=0
    train p8_flow      --preset tarflow-emoji64-p8 ;;
  p16)
    timeout "$limit" bash -c "python scripts/emoji_compare.py train --preset emoji64-p16 --minutes $minutes \
        --repeats $repeats --out $out/p16 \
      && python scripts/emoji_compare.py guidance --model $out/p16/model.safetensors --w 1 2 3 --gamma 1 \
        --repeats $repeats --out $out/p16_guidance" > "$out/p16.log" 2>&1 &
    train p16_literal  --preset emoji64-p16 --set basis=pixel coupling=0
    train p16_kr32     --preset emoji64-p16 --set K_R=32
    train p16_nosplit  --preset emoji64-p16 --set d_I=768 K_I=64 basis=pixel coupling=0
    train p16_flow     --preset tarflow-emoji64-p16 ;;
  p16-flip)
    timeout "$limit" bash -c "python scripts/emoji_compare.py train --preset emoji64-p16 --hflip --minutes $minutes \
        --repeats $repeats --out $out/p16 \
      && python scripts/emoji_compare.py guidance --model $out/p16/model.safetensors --rules resampling --w 1 2 3 \
        --gamma 1 1.5 2 --repeats $repeats --out $out/p16_guidance" > "$out/p16.log" 2>&1 &
    train p16_nosplit  --preset emoji64-p16 --hflip --set d_I=768 K_I=64 basis=pixel coupling=0
    train p16_flow     --preset tarflow-emoji64-p16 --hflip
    train p16_dI256    --preset emoji64-p16 --hflip --set d_I=256
    train p16_wd       --preset emoji64-p16 --hflip --weight-decay 0.3 ;;
  p16-diag)
    m=$out/p16/model.safetensors
    timeout "$limit" bash -c "python scripts/emoji_compare.py train --preset emoji64-p16 --hflip --weight-decay 0.3 \
        --minutes $minutes --repeats $repeats --out $out/p16 \
      && python scripts/emoji_compare.py latents --model $m --out $out/p16_latents --device cuda \
      && python scripts/redundant_tokens.py --model $m --out $out/p16_token_weights --samples 1500 \
      && python scripts/emoji_compare.py guidance --model $m --rules --gamma 0 0.5 1.5 2 --repeats $repeats \
        --out $out/p16_gamma" > "$out/p16.log" 2>&1 & ;;
  p16-redundant)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    train p16          $common
    train p16_token    $common --set redundant=gmm-token
    train p16_detail   $common --set detail_layers=4
    train p16_token_detail $common --set redundant=gmm-token detail_layers=4
    train p16_nosplit  $common --set d_I=768 K_I=64 basis=pixel coupling=0
    [[ -n ${CONTEXT:-} ]] && train p16_context $common --set coupling_depth=2
    trained
    compare "p16 p16_token p16_detail p16_token_detail p16_nosplit p16_context" "p16 p16_detail" ;;
  p16-basis)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    nosplit="d_I=768 K_I=64 coupling=0"
    train p16              $common
    train p16_haar         $common --set basis=haar
    train p16_haar_token   $common --set basis=haar redundant=gmm-token
    train p16_nosplit      $common --set $nosplit basis=pixel
    train p16_nosplit_haar $common --set $nosplit basis=haar
    trained
    compare "p16 p16_haar p16_haar_token p16_nosplit p16_nosplit_haar" "p16_haar p16" ;;
  p16-local)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    nosplit="d_I=768 K_I=64 coupling=0"
    train p16               $common
    train p16_haar1         $common --set basis=haar1 d_I=192
    train p16_haar1_128     $common --set basis=haar1
    train p16_nosplit       $common --set $nosplit basis=pixel
    train p16_nosplit_haar1 $common --set $nosplit basis=haar1
    trained
    for r in p16_haar1 p16_nosplit; do           # std temperatures of every mixture, no guidance
      [[ -f $out/$r/model.safetensors ]] && timeout "$limit" python scripts/emoji_compare.py guidance \
        --model "$out/$r/model.safetensors" --rules --gamma --T-sigma 1 0.9 0.8 0.7 --repeats "$repeats" \
        --out "$out/${r}_temperature" > "$out/${r}_temperature.log" 2>&1 &
    done
    compare "p16 p16_haar1 p16_haar1_128 p16_nosplit p16_nosplit_haar1" "p16_haar1" ;;
  p16-local-levers)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    haar1="basis=haar1 d_I=192"
    train p16_haar1        $common --set $haar1
    train p16_haar1_token  $common --set $haar1 redundant=gmm-token
    train p16_haar1_detail $common --set $haar1 detail_layers=4
    train p16_nosplit      $common --set d_I=768 K_I=64 coupling=0 basis=pixel
    trained
    m=$out/p16_haar1/model.safetensors
    if [[ -f $m ]]; then
      timeout "$limit" python scripts/emoji_compare.py guidance --model "$m" --rules resampling naive --w 1 2 3 5 \
        --gamma --repeats "$repeats" --out "$out/p16_haar1_guidance" > "$out/p16_haar1_guidance.log" 2>&1 &
      timeout "$limit" python scripts/emoji_compare.py guidance --model "$m" --rules --gamma 0.5 1.5 \
        --T-sigma 0.9 0.8 0.7 --repeats "$repeats" --out "$out/p16_haar1_noise" > "$out/p16_haar1_noise.log" 2>&1 &
    fi
    compare "p16_haar1 p16_haar1_token p16_haar1_detail p16_nosplit" "" ;;
  p16-seeds)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    for seed in 1 2; do
      train p16_haar1_s$seed   $common --seed $seed --set basis=haar1 d_I=192
      train p16_nosplit_s$seed $common --seed $seed --set d_I=768 K_I=64 coupling=0 basis=pixel
    done
    trained
    compare "p16_haar1_s1 p16_haar1_s2 p16_nosplit_s1 p16_nosplit_s2" "" ;;
  p16-pair)
    common="--preset emoji64-p16 --hflip --weight-decay 0.3"
    train p16_haar1   $common --set basis=haar1 d_I=192
    train p16_nosplit $common --set d_I=768 K_I=64 coupling=0 basis=pixel
    trained
    compare "p16_haar1 p16_nosplit" "" ;;
  p8-local)
    common="--preset emoji64-p8 --hflip --weight-decay 0.3"
    train p8         $common
    train p8_haar1   $common --set basis=haar1 d_I=48
    train p8_nosplit $common --set d_I=192 K_I=64 basis=pixel coupling=0
    train p8_flow    --preset tarflow-emoji64-p8 --hflip --weight-decay 0.3
    trained
    compare "p8 p8_flow p8_haar1 p8_nosplit" "" ;;
  guidance-p8)
    for rule in naive resampling; do
      timeout "$limit" python scripts/emoji_compare.py guidance --model "$MODEL" --rules $rule --w 0.5 1 2 3 --gamma \
        --repeats "$repeats" --out "$out/$rule" > "$out/$rule.log" 2>&1 &
    done
    timeout "$limit" python scripts/emoji_compare.py guidance --model "$MODEL" --rules --gamma 0 0.5 1 1.5 2 \
      --repeats "$repeats" --out "$out/gamma" > "$out/gamma.log" 2>&1 & ;;
  *) echo "group: expected p8, p16, p16-flip, p16-diag, p16-redundant, p16-basis, p16-local, p16-local-levers, p16-seeds, p16-pair, p8-local or guidance-p8, got $group" >&2
     exit 2 ;;
esac
wait
tail -n 3 "$out"/*.log
