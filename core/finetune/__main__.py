"""``python -m core.finetune``: the entry point torchrun starts on every rank, e.g.

    torchrun --nproc-per-node 4 -m core.finetune demo --corpus finance.txt --epochs 3 --out runs/finance

It takes the flags of ``embedscope finetune`` (without ``--nproc``: torchrun's flags say how many ranks).
"""

from __future__ import annotations

import sys

from core.cli._cmd_finetune import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
