#!/usr/bin/env python3
"""Validate benchmark JSON documents against the ferrite-bench/1 schema.

    scripts/validate_json.py results/mnist-ferrite.json results/mnist-pytorch.json
    scripts/validate_json.py --expect-invalid tests/bench/examples/invalid_*.json

Checks, for every file:
  1. it is strict JSON (NaN / Infinity literals are rejected: Python's json module would accept them);
  2. it validates against schemas/ferrite-bench-1.schema.json (JSON Schema draft 2020-12);
  3. relations a schema cannot express: latency min <= p50 <= p95 <= p99 <= max and min <= mean <= max.

Exit status: 0 when every file passes (with --expect-invalid: when every file FAILS), 1 otherwise,
including when the `jsonschema` package is missing (pip install jsonschema): a missing validator
must fail CI, not skip it. Each problem is printed as `FILE: /json/pointer: message`.
"""
import argparse
import json
import sys
from pathlib import Path

DEFAULT_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "ferrite-bench-1.schema.json"


def pointer(path):
    """A JSON pointer ('/metrics/latency_ms/p50') for a jsonschema error path; '(root)' for the top."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "(root)"


def describe(error):
    """jsonschema's message, except for 'not' rules, whose default message dumps the whole object."""
    if error.validator == "not" and isinstance(error.validator_value, dict):
        forbidden = error.validator_value.get("required", [])
        why = error.validator_value.get("description", "forbidden by the schema")
        return f"forbidden key(s) {forbidden}: {why}"
    return error.message


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON (write non-finite values as an error report)")


def semantic_problems(doc):
    """Ordering of latency statistics, which JSON Schema cannot state."""
    problems = []
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    latency = metrics.get("latency_ms") if isinstance(metrics, dict) else None
    if not isinstance(latency, dict):
        return problems
    keys = ["min", "p50", "p95", "p99", "max"]
    values = [latency.get(k) for k in keys]
    numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    if all(numeric(v) for v in values):
        for (ka, a), (kb, b) in zip(zip(keys, values), zip(keys[1:], values[1:])):
            if a > b:
                problems.append(("/metrics/latency_ms", f"{ka} ({a}) > {kb} ({b}): percentiles must be ordered"))
    mean, lo, hi = latency.get("mean"), latency.get("min"), latency.get("max")
    if numeric(mean) and numeric(lo) and numeric(hi) and not (lo <= mean <= hi):
        problems.append(("/metrics/latency_ms/mean", f"mean ({mean}) lies outside [min ({lo}), max ({hi})]"))
    return problems


def check_file(path, validator):
    """A list of (pointer, message); empty when the document is valid."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f, parse_constant=reject_constant)
    except OSError as e:
        return [("(file)", f"cannot read: {e.strerror or e}")]
    except ValueError as e:  # json.JSONDecodeError and reject_constant; UnicodeDecodeError too
        return [("(file)", f"not valid JSON: {e}")]
    problems = [(pointer(e.absolute_path), describe(e))
                for e in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])]
    return problems + semantic_problems(doc)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON documents to check")
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA, help="schema file (default: %(default)s)")
    parser.add_argument("--expect-invalid", action="store_true",
                        help="succeed only if every file is rejected (for negative test cases)")
    args = parser.parse_args(argv)

    try:
        import jsonschema
    except ImportError:
        print("validate_json.py: the python package 'jsonschema' is missing (pip install jsonschema)",
              file=sys.stderr)
        return 1
    try:
        schema = json.loads(args.schema.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as e:
        print(f"{args.schema}: unusable schema: {e}", file=sys.stderr)
        return 1
    validator = jsonschema.Draft202012Validator(schema)

    failed = False
    for path in args.files:
        problems = check_file(path, validator)
        if args.expect_invalid:
            if not path.is_file():  # a mistyped test file must not pass as "rejected"
                failed = True
                print(f"{path}: no such file", file=sys.stderr)
            elif problems:
                print(f"{path}: rejected as expected: {problems[0][0]}: {problems[0][1]}")
            else:
                failed = True
                print(f"{path}: expected to be INVALID, but it validates", file=sys.stderr)
        elif problems:
            failed = True
            for where, message in problems[:20]:
                print(f"{path}: {where}: {message}", file=sys.stderr)
            if len(problems) > 20:
                print(f"{path}: ... {len(problems) - 20} more problems", file=sys.stderr)
        else:
            print(f"{path}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
