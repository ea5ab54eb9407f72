#!/usr/bin/env python3
"""One node of a multi-node training job, logging into ONE run that every
node of the job shares, each through the tblogd of its own node (a sidecar,
deploy/k8s/multinode; or a second daemon, deploy/docker-compose.yml).

    TBLOG_RUN=multinode/job-1 RANK=0 python3 multinode_example.py

Each node writes tags of its own (node<RANK>/...): TensorBoard's reader needs
the points of one tag in step order, so a tag has one writer; job-wide values
are aggregated first and written by one rank (here rank 0's job/...).

Environment: TBLOG_ADDRESS (this node's tblogd, e.g. unix:/run/tblog/tblogd.sock),
TBLOG_RUN (the shared run, relative to the daemons' logdir), RANK or
JOB_COMPLETION_INDEX (a Kubernetes indexed Job's), NODES, STEPS, STEP_SECONDS.
"""

import math
import os
import random
import time

from tblog import SummaryWriter


def main():
    rank = int(os.environ.get("RANK") or os.environ.get("JOB_COMPLETION_INDEX") or 0)
    nodes = int(os.environ.get("NODES", "2"))
    steps = int(os.environ.get("STEPS", "300"))
    step_seconds = float(os.environ.get("STEP_SECONDS", "0.1"))
    rng = random.Random(rank)
    with SummaryWriter(os.environ.get("TBLOG_RUN", "multinode/example")) as writer:
        for step in range(steps):
            loss = math.exp(-step / 100) * (1 + 0.1 * rng.random()) + 0.05 * rank
            writer.add_scalar(f"node{rank}/loss", loss, step)
            writer.add_scalar(f"node{rank}/samples_per_second", 900 + 50 * rng.random(), step)
            if rank == 0:  # job-wide: one writer for the tag
                writer.add_scalar("job/nodes", nodes, step)
            time.sleep(step_seconds)


if __name__ == "__main__":
    main()
