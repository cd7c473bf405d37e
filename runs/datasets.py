"""Datasets for the lab, built by our own code: deterministic, one item per line, nothing downloaded.

    python -m runs.datasets names            # writes data/names.txt and prints its path

names: the distinct first names of the US census lists carried by the `names` package (a registry
    dependency of this project, so it is on every install): 5,163 names, lowercased, a-z only,
    in the packaged order (most common first). When the 32,033-name list that makemore ships is
    beside the checkout (../shared/data/names.txt), tests and benchmarks may read it by that path.
"""

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"


def census_first_names():
    """The distinct first names of the census lists in the `names` package, lowercased."""
    import names  # the package ships its lists as text files beside its module

    package_dir = Path(names.__file__).parent
    seen = {}
    for list_file in ("dist.female.first", "dist.male.first"):
        for line in (package_dir / list_file).read_text().split("\n"):
            if line.strip():
                seen.setdefault(line.split()[0].lower(), None)  # a dict keeps first-seen order
    return [name for name in seen if name.isascii() and name.isalpha()]


def write_items(items, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(item + "\n" for item in items)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def build_names(path=DATA_DIR / "names.txt"):
    return write_items(census_first_names(), path)


BUILDERS = {"names": build_names}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a dataset of the lab into data/.")
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("--output", "-o", type=Path, help="where to write it (default: data/NAME.txt)")
    args = parser.parse_args(argv)
    output = args.output or DATA_DIR / f"{args.name}.txt"
    print(BUILDERS[args.name](output))


if __name__ == "__main__":
    main()
