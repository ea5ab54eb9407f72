#!/usr/bin/env python3
"""Checks a logdir written by the tblogd container against what
tblog-stream-every-kind says it sent (scripts/container-test.sh).

  check_logdir.py INSPECT_JSON LOGDIR SENT_JSON [SENT_JSON ...]

INSPECT_JSON is `tblogd inspect --json LOGDIR`. Every tag each sender expects
must be in its run with the expected kind and count, every event file must read
to its end ("ok": neither torn nor corrupt), and each embedding's projector
files must be there with one row per vector. Prints one line per problem and
exits 1 if there is any; prints a summary and exits 0 otherwise.
"""
import json
import pathlib
import sys


def check(inspect, logdir, sent_reports):
    problems = []
    runs = {run["name"]: run for run in inspect["runs"]}
    for run in inspect["runs"]:
        for f in run["files"]:
            if f["state"] != "ok":
                problems.append(f"{run['name']}/{f['name']}: state {f['state']}: {f.get('error', '')}")
    checked = 0
    for sent in sent_reports:
        for want in sent["tags"]:
            where = f"run {want['run']!r} tag {want['tag']!r}"
            run = runs.get(want["run"])
            if run is None:
                problems.append(f"{where}: run missing (runs: {sorted(runs)})")
                continue
            tags = {t["tag"]: t for t in run["tags"]}
            got = tags.get(want["tag"])
            if got is None:
                problems.append(f"{where}: tag missing (tags: {sorted(tags)})")
                continue
            if got["kind"] != want["kind"]:
                problems.append(f"{where}: kind {got['kind']!r}, sent {want['kind']!r}")
            if got["count"] != want["count"]:
                problems.append(f"{where}: {got['count']} values, sent {want['count']}")
            checked += 1
        for emb in sent["embeddings"]:
            run_dir = logdir / emb["run"]
            where = f"embedding {emb['tag']!r} of run {emb['run']!r}"
            config = run_dir / "projector_config.pbtxt"
            if not config.is_file():
                problems.append(f"{where}: {config} missing")
                continue
            if emb["tag"] not in config.read_text():
                problems.append(f"{where}: not named in {config}")
            tensors = [p for p in run_dir.rglob("tensors.tsv") if emb["tag"] in p.parts]
            if len(tensors) != 1:
                problems.append(f"{where}: {len(tensors)} tensors.tsv files, expected 1")
                continue
            rows = [line for line in tensors[0].read_text().splitlines() if line]
            if len(rows) != emb["rows"] or any(len(r.split("\t")) != emb["cols"] for r in rows):
                problems.append(f"{where}: {tensors[0]} is not {emb['rows']} rows of {emb['cols']}")
            checked += 1
    return checked, problems


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    inspect = json.loads(pathlib.Path(argv[1]).read_text())
    logdir = pathlib.Path(argv[2])
    sent = [json.loads(pathlib.Path(p).read_text()) for p in argv[3:]]
    checked, problems = check(inspect, logdir, sent)
    for problem in problems:
        print(f"MISSING/WRONG: {problem}")
    if problems:
        return 1
    files = sum(len(r["files"]) for r in inspect["runs"])
    print(f"logdir ok: {checked} tags/embeddings as sent, {len(inspect['runs'])} runs, "
          f"{files} event files read to their end")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
