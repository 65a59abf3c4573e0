"""``python -m core.compare._nndescent``: pynndescent's NN-descent graphs, built in a process of their own.

:class:`core.compare._approx.NNDescentWorker` runs this. NN-descent compiles dozens of numba functions at
first use (about 18 s; most cannot be cached on disk) and keeps their code and type information for the life
of the process (about 300 MiB). Here they live in a child that builds every graph one comparison needs and
exits, so a long-lived dashboard server does not keep them.

Each line on standard input is a job, as JSON: ``{"source": rows.npy, "out": graph.npz, "graph_k": 30,
"seed": 0}``. The child reads the rows, writes the graph's neighbour ids and cosine distances to ``out``,
and prints NN-descent's progress (iterations as ``i / n``) then :data:`DONE` on standard output. It exits at
the end of its input.
"""

from __future__ import annotations

import json
import sys

import numpy as np

#: What the child prints when a job's graph is written.
DONE = "embedscope-nndescent: done"


def main() -> int:
    from pynndescent import NNDescent

    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        x = np.load(job["source"])
        graph = NNDescent(x, n_neighbors=int(job["graph_k"]), metric="cosine", random_state=int(job["seed"]),
                          low_memory=True, compressed=True, verbose=True)
        found, dist = graph.neighbor_graph
        np.savez(job["out"], found=found, dist=dist)
        del x, graph, found, dist
        print(DONE, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
