#!/usr/bin/env bash
# The SyN comparison quoted in BENCHMARKS.md: one task at a time, 2 threads each, on this machine.
# Usage: benchmarks/syn_study.sh [OUT]   (default benchmarks/out/syn); needs the `peers` extra.
set -euo pipefail
OUT=${1:-benchmarks/out/syn}
DATA=$(realpath "${PARAREG_DATA:-../shared/data}")
common=(--workers 1 --threads-per-worker 1 --task-threads 2 --no-qc -q)
mkdir -p "$OUT"
# the 1 mm pair (fsaverage_brain -> vxm_t1, aseg labels)
printf "fixed_image,fixed_labels,moving_image,moving_labels\n%s,%s,%s,%s\n" \
  "$DATA/brain_1mm/vxm_t1.nii.gz" "$DATA/brain_1mm/vxm_aseg.nii.gz" \
  "$DATA/brain_1mm/fsaverage_brain.nii.gz" "$DATA/brain_1mm/fsaverage_aseg.nii.gz" > "$OUT/pair_1mm.csv"
# IXI013 -> IXI012, the pair of the data README's baselines
printf "fixed_image,fixed_labels,moving_image,moving_labels\n%s,%s,%s,%s\n" \
  "$DATA/ixi_2mm/t1/IXI012-HH-1211-T1_ds.nii.gz" "$DATA/ixi_2mm/labels/IXI012-HH-1211-T1_ds_DLMUSE.nii.gz" \
  "$DATA/ixi_2mm/t1/IXI013-HH-1212-T1_ds.nii.gz" "$DATA/ixi_2mm/labels/IXI013-HH-1212-T1_ds_DLMUSE.nii.gz" > "$OUT/pair_ixi013_ixi012.csv"
ixi=(--images "$DATA/ixi_2mm/t1/*.nii.gz" --labels "$DATA/ixi_2mm/labels/*.nii.gz")
# PAIRS: how many of the 30 ordered IXI pairs (a seeded sample; 30 = all). Each task runs in its
# own process (~25 s per parareg+greedy pair on 2 cores with start-up and warm-up).
PAIRS=${PAIRS:-30}
parareg bench "${ixi[@]}" --pairs "$PAIRS" --seed 0 --methods parareg:syn,greedy --out "$OUT/ixi" "${common[@]}"
parareg bench --pairs-csv "$OUT/pair_1mm.csv" --methods parareg:syn,greedy,ants --out "$OUT/1mm" "${common[@]}"
parareg bench --pairs-csv "$OUT/pair_ixi013_ixi012.csv" --methods parareg:syn-accurate,ants:syn-full --out "$OUT/accurate" "${common[@]}"
if [ "${WITH_SLOW_PEERS:-0}" = 1 ]; then  # ANTs SyN/SyNQuick and DIPY on the IXI pairs (hours)
  parareg bench "${ixi[@]}" --pairs "$PAIRS" --seed 0 --methods ants,ants:syn-quick,dipy,parareg:syn-accurate --out "$OUT/ixi" "${common[@]}"
fi
