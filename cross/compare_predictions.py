"""Compares two `ismf classify --json` outputs study by study and prints the top-1 agreement and
the largest class-probability difference. Exit 1 when the studies differ, a top class differs,
or a probability differs by more than the tolerance.

    python3 cross/compare_predictions.py A.jsonl B.jsonl TOLERANCE
"""
import json
import sys


def load(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {r["study_instance_uid"]: r for r in rows}


def main():
    a_path, b_path, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
    a, b = load(a_path), load(b_path)
    if not a or set(a) != set(b):
        sys.exit(f"{a_path} and {b_path} hold different studies: {sorted(a)} vs {sorted(b)}")
    agree, worst, problems = 0, 0.0, []
    for uid, ra in sorted(a.items()):
        rb = b[uid]
        diff = max(abs(p - rb["probabilities"][k]) for k, p in ra["probabilities"].items())
        worst = max(worst, diff)
        if ra["top_class"] == rb["top_class"]:
            agree += 1
        else:
            problems.append(f"study {uid}: top class {ra['top_class']} vs {rb['top_class']}")
        if diff > tolerance:
            problems.append(f"study {uid}: probabilities differ by {diff:.2e} > {tolerance:g}")
    print(f"{a_path} vs {b_path}: {len(a)} studies, top-1 agreement {agree}/{len(a)}, "
          f"max probability difference {worst:.2e} (tolerance {tolerance:g})")
    if problems:
        sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
