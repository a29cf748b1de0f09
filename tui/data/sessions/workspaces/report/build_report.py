"""Builds out/report.md from data.csv: revenue per region and growth per quarter."""

import csv
from collections import defaultdict
from pathlib import Path

with open("data.csv", newline="") as f:
    rows = list(csv.DictReader(f))
by_region: dict[str, dict[str, int]] = defaultdict(dict)
for row in rows:
    by_region[row["region"]][row["quarter"]] = int(row["revenue"])

lines = ["# Revenue report", "", "| region | Q1 | Q2 | growth |", "|---|---:|---:|---:|"]
for region, quarters in sorted(by_region.items()):
    q1, q2 = quarters["Q1"], quarters["Q2"]
    growth = (q2 - q1) * 100 // q1
    lines.append(f"| {region} | {q1} | {q2} | {growth}% |")
total_q1 = sum(q["Q1"] for q in by_region.values())
total_q2 = sum(q["Q2"] for q in by_region.values())
lines += ["", f"Total: {total_q1} → {total_q2} ({(total_q2 - total_q1) * 100 // total_q1}% growth)"]

Path("out").mkdir(exist_ok=True)
Path("out/report.md").write_text("\n".join(lines) + "\n")
print(f"wrote out/report.md ({len(by_region)} regions)")
