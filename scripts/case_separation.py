"""How well the demo's case scores separate images: normal vs holding a malignant lesion (Info.txt says which).

    python scripts/case_separation.py CASES_CSV INFO_TXT

Prints each group's case scores and the AUC (the probability that a malignant image scores above a normal
one, ties counting half): 1.0 separates them completely, 0.5 is chance.
"""

from __future__ import annotations

import csv
import sys


def main() -> None:
    cases, info = sys.argv[1], sys.argv[2]
    truth: dict[str, str] = {}
    for line in open(info):
        parts = line.split()
        if len(parts) >= 3:
            label = "normal" if parts[2] == "NORM" else ("malignant" if "M" in parts[3:4] else "benign")
            if truth.get(parts[0]) != "malignant":
                truth[parts[0]] = label
    scores: dict[str, list[float]] = {"normal": [], "benign": [], "malignant": []}
    for row in csv.DictReader(open(cases)):
        if row["level"] == "image" and row["name"] in truth:
            scores[truth[row["name"]]].append(float(row["case_score"]))
    normal, malignant = scores["normal"], scores["malignant"]
    pairs = [(m > n) + 0.5 * (m == n) for m in malignant for n in normal]
    for group, values in scores.items():
        print(f"  {group:9s} case scores: {', '.join(f'{v:.2f}' for v in sorted(values)) or '-'}")
    if pairs:
        print(f"  malignant vs normal images: AUC {sum(pairs) / len(pairs):.2f} ({len(malignant)} vs {len(normal)})")


if __name__ == "__main__":
    main()
