"""Runs `alore-bench ARGS...` with torch, timm and peft made unimportable: a command that reaches for
the training stack fails with "guard: torch imported" instead of paying seconds for it.

    python -m tests.support.no_torch report --results-dir results
"""

import sys

BLOCKED = ("torch", "timm", "peft")


class Guard:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"guard: {name} imported")
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, Guard())
    sys.argv = ["alore-bench", *sys.argv[1:]]
    from alore_bench.cli import main

    main()
