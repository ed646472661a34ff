"""Prints one copy-paste block of README.md, so that CI runs what the README says, not a copy.

A block is the fenced code block right after a `<!-- readme-check: NAME -->` line (invisible when
the README is rendered). Usage: blocks.py NAME [LINE]: the whole block, or its LINE-th line (1-based).
Exits 1, naming what is missing, when the marker, the block or the line is not there.
"""
import pathlib
import re
import sys


def block(readme: str, name: str) -> list[str]:
    lines = readme.splitlines()
    marker = f"<!-- readme-check: {name} -->"
    for i, line in enumerate(lines):
        if line.strip() != marker:
            continue
        rest = lines[i + 1 :]
        if not rest or not re.match(r"^```\w*\s*$", rest[0]):
            sys.exit(f"README.md: the marker {marker} is not followed by a fenced code block")
        body = []
        for line in rest[1:]:
            if line.startswith("```"):
                return body
            body.append(line)
        sys.exit(f"README.md: the block after {marker} is never closed")
    sys.exit(f"README.md: no {marker}")


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: blocks.py NAME [LINE]")
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    body = block(readme, sys.argv[1])
    if len(sys.argv) == 3:
        n = int(sys.argv[2])
        if not 1 <= n <= len(body):
            sys.exit(f"README.md: the {sys.argv[1]} block has no line {n}")
        print(body[n - 1])
    else:
        print("\n".join(body))


if __name__ == "__main__":
    main()
