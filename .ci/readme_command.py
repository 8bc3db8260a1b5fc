"""Print the README's Quick start test command, word for word: `.ci/run` runs exactly what a new user copies.

    python .ci/readme_command.py README.md    ->    pip install '.[test]' && python -m pytest -q

The command is the one line of the Quick start's ```bash blocks that runs pytest; exit 1 when there is not
exactly one (the README changed shape: CI must not silently run something else).
"""

from __future__ import annotations

import re
import sys


def quick_start_test_command(readme: str) -> str:
    section = readme.split("\n## Quick start\n", 1)[-1].split("\n## ", 1)[0] if "\n## Quick start\n" in readme else ""
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
             for line in block.splitlines() if "pytest" in line]
    if len(lines) != 1:
        raise ValueError(f"the README's Quick start shows {len(lines)} pytest commands, expected exactly one")
    return lines[0]


if __name__ == "__main__":
    try:
        with open(sys.argv[1] if len(sys.argv) > 1 else "README.md", encoding="utf-8") as handle:
            print(quick_start_test_command(handle.read()))
    except (OSError, ValueError) as error:
        sys.exit(f"readme_command: {error}")
